// Audit records as a SIEM ingests them, one JSON object per line. Pure: data in, text out.
//
// jsonl (default): `{"schema":"hoop.audit.v1","type":"transcript.event",…}` with the event exactly as
// chained (seq, hash, prev_hash: a receiver can re-verify a session's chain) and the session's identity
// beside it, so no record needs a join. Session requests the broker refused are `session.denied`.
//
// ocsf: the same facts as OCSF 1.1 events. Statements and connections are Datastore Activity (class
// 6005), session opening/ending Authentication (class 3002), refused session requests Authentication
// failures; what OCSF has no attribute for is kept under `unmapped`.
import type { TranscriptEvent } from './event.js';
import type { DenialRecord, ExportSession } from '../store/store.js';

export type ExportFormatName = 'jsonl' | 'ocsf';

export const EXPORT_SCHEMA = 'hoop.audit.v1';

/** The identity claims every exported record carries (those present in the token). */
const SESSION_CLAIMS = [
  'repository',
  'repository_id',
  'repository_owner',
  'workflow',
  'workflow_ref',
  'job_workflow_ref',
  'run_id',
  'run_number',
  'run_attempt',
  'actor',
  'actor_id',
  'sha',
  'ref',
  'event_name',
  'environment',
] as const;

export type ExportRecord =
  | { type: 'transcript.event'; session: ExportSession; event: TranscriptEvent }
  | { type: 'session.denied'; denial: DenialRecord & { id: string } };

function sessionBlock(s: ExportSession): Record<string, unknown> {
  const out: Record<string, unknown> = { id: s.id, issuer: s.issuer, policy: s.policy };
  for (const k of SESSION_CLAIMS) if (s.identity[k] !== undefined) out[k] = s.identity[k];
  return out;
}

/** What a denial's detail says about who asked (the token's claims, when it was verified). */
function denialWho(d: DenialRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['issuer', 'repository', 'run_id', 'policy', 'client'])
    if (d.detail[k] !== undefined && d.detail[k] !== null) out[k] = d.detail[k];
  return out;
}

export function toJsonlRecord(r: ExportRecord): Record<string, unknown> {
  if (r.type === 'transcript.event')
    return {
      schema: EXPORT_SCHEMA,
      type: r.type,
      at: r.event.at,
      session: sessionBlock(r.session),
      event: r.event,
    };
  const d = r.denial;
  return {
    schema: EXPORT_SCHEMA,
    type: r.type,
    at: d.at.toISOString(),
    session: denialWho(d),
    denial: { id: d.id, kind: d.kind, reasons: d.reasons, detail: d.detail },
  };
}

const PRODUCT = { name: 'hoop broker', vendor_name: 'hoop-action' };

/** OCSF status: 1 Success, 2 Failure; severity: 1 Informational, 3 Medium. */
function outcome(decision: string): {
  status_id: number;
  status: string;
  severity_id: number;
  severity: string;
} {
  return decision === 'deny' || decision === 'hold'
    ? { status_id: 2, status: 'Failure', severity_id: 3, severity: 'Medium' }
    : { status_id: 1, status: 'Success', severity_id: 1, severity: 'Informational' };
}

export function toOcsfRecord(r: ExportRecord): Record<string, unknown> {
  if (r.type === 'session.denied') {
    const d = r.denial;
    const who = denialWho(d);
    return {
      class_uid: 3002,
      class_name: 'Authentication',
      category_uid: 3,
      category_name: 'Identity & Access Management',
      activity_id: 1,
      activity_name: 'Logon',
      type_uid: 300201,
      time: d.at.getTime(),
      ...outcome('deny'),
      status_detail: d.reasons.join('; '),
      message: `session request refused: ${d.kind}`,
      metadata: { version: '1.1.0', product: PRODUCT, uid: `denial-${d.id}`, log_name: EXPORT_SCHEMA },
      ...(who.repository ? { actor: { user: { name: String(who.repository), type: 'Other' } } } : {}),
      unmapped: { kind: d.kind, detail: d.detail },
    };
  }
  const { session, event } = r;
  const id = session.identity;
  const actor = {
    user: { name: String(id.actor ?? ''), uid: id.actor_id === undefined ? undefined : String(id.actor_id) },
    session: { uid: session.id, issuer: session.issuer },
  };
  const common = {
    time: Date.parse(event.at),
    ...outcome(event.decision),
    ...(event.reasons.length ? { status_detail: event.reasons.join('; ') } : {}),
    metadata: {
      version: '1.1.0',
      product: PRODUCT,
      uid: `${session.id}:${event.seq}`,
      log_name: EXPORT_SCHEMA,
      correlation_uid: String(id.run_id ?? ''),
    },
    actor,
    unmapped: {
      hoop_kind: event.kind,
      decision: event.decision,
      policy: session.policy,
      seq: event.seq,
      hash: event.hash,
      prev_hash: event.prev_hash,
      session: sessionBlock(session),
      ...(event.rows !== undefined ? { rows: event.rows } : {}),
      ...(event.masked !== undefined ? { masked: event.masked } : {}),
      ...(event.duration_ms !== undefined ? { duration_ms: event.duration_ms } : {}),
    },
  };
  if (event.kind.startsWith('session.')) {
    const logoff = event.kind !== 'session.opened';
    return {
      class_uid: 3002,
      class_name: 'Authentication',
      category_uid: 3,
      category_name: 'Identity & Access Management',
      activity_id: logoff ? 2 : 1,
      activity_name: logoff ? 'Logoff' : 'Logon',
      type_uid: logoff ? 300202 : 300201,
      message: event.kind,
      ...common,
    };
  }
  // Datastore Activity: 4 Query for statements (and their denials), 99 Other for connections
  const statement = typeof event.operation.statement === 'string' ? event.operation.statement : undefined;
  const activity = statement !== undefined ? 4 : 99;
  return {
    class_uid: 6005,
    class_name: 'Datastore Activity',
    category_uid: 6,
    category_name: 'Application Activity',
    activity_id: activity,
    activity_name: activity === 4 ? 'Query' : 'Other',
    type_uid: 600500 + activity,
    message: event.kind,
    database: { name: event.target ?? '', type: 'PostgreSQL', type_id: 99 },
    ...(statement !== undefined ? { query_info: { query_string: statement } } : {}),
    ...common,
  };
}

export function formatRecord(r: ExportRecord, format: ExportFormatName): string {
  return JSON.stringify(format === 'ocsf' ? toOcsfRecord(r) : toJsonlRecord(r));
}
