// Transcript events: one append-only, hash-chained stream per session (DESIGN.md contract).
import { createHash } from 'node:crypto';
import Type, { type Static } from 'typebox';

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

/** What a caller hands to the recorder: the store assigns seq and the chain. */
export type NewEvent = Omit<TranscriptEvent, 'seq' | 'session_id' | 'prev_hash' | 'hash' | 'at'> & {
  at?: string;
};

/** The first event's prev_hash. */
export const GENESIS_HASH = '0'.repeat(64);

/** Canonical JSON: keys sorted at every depth, undefined dropped; so the hash does not depend on key order. */
export function canonicalJson(value: unknown): string {
  // Hot path (one call per recorded statement): plain loops and string concatenation, no temporaries.
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      out += v === undefined ? 'null' : canonicalJson(v);
    }
    return `${out}]`;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return canonicalJson(JSON.parse(JSON.stringify(value)));
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(k)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

/** hash = sha256(prev_hash || canonical JSON of every other field). */
export function eventHash(event: Omit<TranscriptEvent, 'hash'>): string {
  return createHash('sha256').update(event.prev_hash).update(canonicalJson(event)).digest('hex');
}

/** Chain a new event after `prev` (or the genesis). Pure: the caller supplies seq, time and session. */
export function chainEvent(
  prev: Pick<TranscriptEvent, 'seq' | 'hash'> | null,
  sessionId: string,
  ev: NewEvent,
  now: Date,
): TranscriptEvent {
  const base: Omit<TranscriptEvent, 'hash'> = {
    ...ev,
    at: ev.at ?? now.toISOString(),
    seq: (prev?.seq ?? 0) + 1,
    session_id: sessionId,
    prev_hash: prev?.hash ?? GENESIS_HASH,
  };
  return { ...base, hash: eventHash(base) };
}

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
