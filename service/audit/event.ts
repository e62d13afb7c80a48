// Transcript events: one append-only, hash-chained stream per session (DESIGN.md contract).
import crypto from 'node:crypto';
import Type, { type Static } from 'typebox';
import type { Grant } from '../config/schema.js';
import type { PgProtocol, SshOperation } from '../policy/operation.js';

export const Verdict = Type.Union([
  Type.Literal('allow'),
  Type.Literal('deny'),
  Type.Literal('hold'),
  Type.Literal('info'),
]);
export type Verdict = Static<typeof Verdict>;

export const TranscriptEvent = Type.Object({
  seq: Type.Integer({ minimum: 1 }),
  at: Type.String({ description: 'ISO-8601 time the event was recorded' }),
  session_id: Type.String(),
  target: Type.Union([Type.String(), Type.Null()]),
  kind: Type.String({
    description: 'session.opened, pg.statement, pg.denied, pg.connection.opened, session.revoked, …',
  }),
  operation: Type.Record(Type.String(), Type.Unknown()),
  decision: Verdict,
  reasons: Type.Array(Type.String()),
  rows: Type.Optional(Type.Integer()),
  bytes: Type.Optional(Type.Integer()),
  duration_ms: Type.Optional(Type.Number()),
  masked: Type.Optional(Type.Integer()),
  approval: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  prev_hash: Type.String(),
  hash: Type.String(),
});
export type TranscriptEvent = Static<typeof TranscriptEvent>;

/**
 * What a caller hands to the recorder: the store assigns seq and the chain. The store takes any event
 * (it round-trips whatever a transcript holds, including kinds a newer broker wrote); what the broker
 * itself writes is a BrokerEvent, typed by kind.
 */
export type NewEvent = Omit<TranscriptEvent, 'seq' | 'session_id' | 'prev_hash' | 'hash' | 'at'> & {
  at?: string;
};

// ── The events the broker writes, typed by kind. Keys are listed in sorted order, as the builders
// (audit/operation-events.ts, sessions/service.ts) write them: canonical JSON then needs no sorting.

/** session.opened: who, under which policy, with which grants, until when. */
export type SessionOpenedRecord = {
  client: string | null;
  expires_at: string;
  grants: Grant[];
  identity: Record<string, unknown>;
  issuer: string;
  policy: string;
};
export type SessionRevokedRecord = { by: string; reason: string };
export type SessionExpiredRecord = { expires_at: string };

/** {gateway}.connection.opened / .closed: one client connection (pg) or ssh connection. */
export type ConnectionOpenedRecord = {
  application_name: string;
  client: string;
  conn_id: string;
  tls: boolean;
};
/** {gateway}.connection.desync: the broker's protocol model and the server disagreed; the connection was closed. */
export type ConnectionDesyncRecord = { conn_id: string; reason: string };
export type ConnectionClosedRecord = {
  application_name: string;
  client: string;
  conn_id: string;
  reason: string;
};

/**
 * {gateway}.connection.lost: the replica that held this connection died (its heartbeat stopped) with the
 * connection open; `last_seq` is the connection's last recorded event, so a reader knows the statements
 * after it (up to the group-commit window) may be missing.
 */
export type ConnectionLostRecord = {
  conn_id: string;
  last_seq: number;
  opened_at: string;
  replica: string;
};

/** pg.statement: an allowed statement (or FunctionCall, or COPY) that ran; `error`: its SQLSTATE if it failed. */
export type PgStatementRecord = {
  conn_id: string;
  error?: string;
  protocol: PgProtocol;
  statement: string;
  statement_kind: string;
};
/**
 * pg.statement.result: the outcome of a statement recorded before it was forwarded (target `recording:
 * before_forward`), the next result of that connection (its statements complete in the order they were
 * forwarded); rows, bytes, duration_ms and masked are on the event.
 */
export type PgStatementResultRecord = {
  conn_id: string;
  error?: string;
  protocol: PgProtocol;
  statement_kind: string;
};
/** pg.denied: a statement refused before it reached the database. */
export type PgDeniedRecord = {
  conn_id: string;
  protocol: PgProtocol;
  rule: string;
  statement: string;
  statement_kind: string;
};

/** A terminal recording beside the transcript (audit/asciicast.ts): the chain covers its sha256. */
export type SshRecordingRef = {
  bytes: number;
  events: number;
  hidden_input_chars?: number;
  id: string;
  sha256: string;
  truncated: boolean;
};

/**
 * ssh.exec / ssh.shell / ssh.sftp / ssh.forward, allowed; ssh.denied with `rule` when refused (also
 * for ssh.request: a refused pty, env variable, agent or X11 forwarding, subsystem). `bytes_in` is
 * what the client sent (stdin, uploads), `bytes_out` what it received.
 */
export type SshOperationRecord = {
  bytes_in?: number;
  bytes_out?: number;
  command?: string;
  conn_id: string;
  direction?: 'local' | 'remote';
  error?: string;
  exit_code?: number;
  host?: string;
  mode?: string;
  name?: string;
  op?: string;
  path?: string;
  port?: number;
  recording?: SshRecordingRef;
  request?: string;
  rule?: string;
  signal?: string;
  target_path?: string;
  term?: string;
  type: SshOperation['kind'];
};

/** k8s.request, allowed (with the response status); k8s.denied with `rule` when refused. */
export type K8sRequestRecord = {
  api_group: string;
  api_version?: string;
  /** exec/attach output, asciicast v2, when the grant records output */
  asciicast?: string;
  asciicast_truncated?: boolean;
  command?: string[];
  conn_id?: string;
  container?: string;
  ended?: string;
  error?: string;
  exit_code?: number;
  name?: string;
  namespace?: string;
  path?: string;
  ports?: number[];
  protocol?: string;
  resource?: string;
  rule?: string;
  status?: number;
  stderr_bytes?: number;
  stdin_bytes?: number;
  stdout_bytes?: number;
  subresource?: string;
  transport?: string;
  tty?: boolean;
  verb?: string;
};

/**
 * approval.requested / .granted / .denied / .expired / .abandoned: an operation held for a human's
 * approval (service/approvals/), and how its wait ended: who decided, through which channel, how long
 * the operation waited. The operation itself is recorded by its gateway's own event after this one.
 */
export type ApprovalRecord = {
  approval_id: string;
  approvers?: { min: number; teams: string[]; users: string[] };
  /** the decider (granted: the approvers, comma-separated, in order) */
  by?: string;
  channel?: string;
  conn_id: string;
  expires_at?: string;
  operation_kind: string;
  operation_sha256: string;
  reason?: string;
  rule: string;
  summary: string;
  votes?: { at: string; by: string; channel: string; decision: string; reason?: string }[];
  waited_ms?: number;
};

/** Every kind of event the broker writes, with the shape of its `operation`. */
export interface EventOperations {
  'session.opened': SessionOpenedRecord;
  'session.revoked': SessionRevokedRecord;
  'session.expired': SessionExpiredRecord;
  'pg.connection.opened': ConnectionOpenedRecord;
  'pg.connection.closed': ConnectionClosedRecord;
  'pg.connection.desync': ConnectionDesyncRecord;
  'pg.connection.lost': ConnectionLostRecord;
  'pg.statement': PgStatementRecord;
  'pg.statement.result': PgStatementResultRecord;
  'pg.denied': PgDeniedRecord;
  'ssh.connection.opened': ConnectionOpenedRecord;
  'ssh.connection.closed': ConnectionClosedRecord;
  'ssh.connection.lost': ConnectionLostRecord;
  'ssh.exec': SshOperationRecord;
  'ssh.shell': SshOperationRecord;
  'ssh.sftp': SshOperationRecord;
  'ssh.forward': SshOperationRecord;
  'ssh.request': SshOperationRecord;
  'ssh.denied': SshOperationRecord;
  'k8s.request': K8sRequestRecord;
  'k8s.denied': K8sRequestRecord;
  'approval.requested': ApprovalRecord;
  'approval.granted': ApprovalRecord;
  'approval.denied': ApprovalRecord;
  'approval.expired': ApprovalRecord;
  'approval.abandoned': ApprovalRecord;
}
export type BrokerEventKind = keyof EventOperations;

/** An event the broker writes: NewEvent with its kind and operation typed. */
export type BrokerEvent = {
  [K in BrokerEventKind]: Omit<NewEvent, 'kind' | 'operation'> & { kind: K; operation: EventOperations[K] };
}[BrokerEventKind];

/** The first event's prev_hash. */
export const GENESIS_HASH = '0'.repeat(64);

/** Canonical JSON: keys sorted at every depth, undefined dropped; so the hash does not depend on key order. */
export function canonicalJson(value: unknown): string {
  // Hot path (one call per recorded statement). When every object in the tree already has its keys in
  // order and holds only JSON values, JSON.stringify writes exactly the canonical form, several times
  // faster than assembling it here; chainEvent builds events that way.
  return isCanonicalOrder(value, 0) ? (JSON.stringify(value) ?? 'null') : canonicalSlow(value);
}

/** Plain data whose objects all have sorted keys (so JSON.stringify's output is canonical)? */
function isCanonicalOrder(value: unknown, depth: number): boolean {
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return true;
    case 'object':
      break;
    default:
      return false; // undefined, function, symbol, bigint: leave them to the general path
  }
  if (depth > 64) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (v !== undefined && !isCanonicalOrder(v, depth + 1)) return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false; // Dates, class instances, toJSON
  const obj = value as Record<string, unknown>;
  let prev: string | null = null;
  for (const k in obj) {
    if (!Object.hasOwn(obj, k)) return false;
    if (prev !== null && !(prev < k)) return false;
    prev = k;
    const v = obj[k];
    if (v !== undefined && !isCanonicalOrder(v, depth + 1)) return false;
  }
  return true;
}

function canonicalSlow(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      out += v === undefined ? 'null' : canonicalSlow(v);
    }
    return `${out}]`;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return canonicalSlow(JSON.parse(JSON.stringify(value)));
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(k)}:${canonicalSlow(v)}`;
  }
  return `${out}}`;
}

/** SHA-256, hex. crypto.hash (Node >= 20.12) skips the Hash object: a third of the cost for small inputs. */
export const sha256Hex: (data: string) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'hex')
    : (data) => crypto.createHash('sha256').update(data).digest('hex');

/** hash = sha256(prev_hash || canonical JSON of every other field). */
export function eventHash(event: Omit<TranscriptEvent, 'hash'>): string {
  return sha256Hex(event.prev_hash + canonicalJson(event));
}

/**
 * Chain a new event after `prev` (or the genesis). Pure: the caller supplies seq, time and session
 * (`now` as a Date, or already as an ISO-8601 string when chaining many events at one time).
 */
export function chainEvent(
  prev: Pick<TranscriptEvent, 'seq' | 'hash'> | null,
  sessionId: string,
  ev: NewEvent,
  now: Date | string,
): TranscriptEvent {
  // Keys in sorted order, so canonicalJson takes its fast path (any extra key is still hashed: it only
  // sends the event down the general path).
  const base: Record<string, unknown> = {};
  if (ev.approval !== undefined) base.approval = ev.approval;
  base.at = ev.at ?? (typeof now === 'string' ? now : now.toISOString());
  if (ev.bytes !== undefined) base.bytes = ev.bytes;
  base.decision = ev.decision;
  if (ev.duration_ms !== undefined) base.duration_ms = ev.duration_ms;
  base.kind = ev.kind;
  if (ev.masked !== undefined) base.masked = ev.masked;
  base.operation = ev.operation;
  base.prev_hash = prev?.hash ?? GENESIS_HASH;
  base.reasons = ev.reasons;
  if (ev.rows !== undefined) base.rows = ev.rows;
  base.seq = (prev?.seq ?? 0) + 1;
  base.session_id = sessionId;
  base.target = ev.target;
  for (const k in ev) {
    if (Object.hasOwn(ev, k) && !(k in base) && !CHAINED_KEYS.has(k)) {
      const v = (ev as Record<string, unknown>)[k];
      if (v !== undefined) base[k] = v;
    }
  }
  const event = base as Omit<TranscriptEvent, 'hash'> as TranscriptEvent;
  event.hash = eventHash(event);
  return event;
}

/** Fields chainEvent sets itself; a caller's values for them are ignored. */
const CHAINED_KEYS = new Set(['at', 'seq', 'session_id', 'prev_hash', 'hash']);

export type ChainCheck = { ok: true; head: string } | { ok: false; seq: number; problem: string };

/** Verify a whole transcript: contiguous seq from 1, each prev_hash links, each hash recomputes. */
export function verifyChain(events: readonly TranscriptEvent[]): ChainCheck {
  let prevHash = GENESIS_HASH;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.seq !== i + 1) return { ok: false, seq: e.seq, problem: `expected seq ${i + 1}, found ${e.seq}` };
    if (e.prev_hash !== prevHash)
      return { ok: false, seq: e.seq, problem: 'prev_hash does not link to the previous event' };
    const { hash, ...rest } = e;
    if (eventHash(rest) !== hash)
      return { ok: false, seq: e.seq, problem: 'hash does not match the event content' };
    prevHash = hash;
  }
  return { ok: true, head: prevHash };
}
