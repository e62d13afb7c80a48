// Transcript events as text, for the recorder's hot path. An event's hash is sha256(prev_hash + the
// canonical JSON of the event without `hash`); in that JSON, sorted by key, the three fields only the
// store knows sit at fixed places:
//
//   {approval?,at,bytes?,decision,duration_ms?,kind,masked?,operation, prev_hash, reasons,rows?, seq,session_id, target}
//
// So the broker serializes each event once, as the canonical JSON of the three runs of fields around
// them, and the store chains it by splicing its fields in and hashing the text: no parse, no object,
// no second serialization, where chaining an object (chainEvent) did all three. The hash is the same
// as chainEvent's by construction, and test/audit/event-text.test.ts holds it to that.
//
// The text: `{"at":…,"operation":{…}` LF `"reasons":[…],"rows":1` LF `"target":…}`. JSON.stringify
// escapes every control character inside strings, so LF appears in it only as the separator, whatever
// a statement contains. An event this shape cannot carry (a field outside NewEvent's) travels as its
// plain JSON instead (one part), and the store chains that with chainEvent.
import {
  canonicalJson,
  chainEvent,
  GENESIS_HASH,
  type NewEvent,
  sha256Hex,
  type TranscriptEvent,
} from './event.js';

const SEP = '\n';

/** The fields a three-part text carries; anything else sends the event as plain JSON. */
const TEXT_KEYS = new Set([
  'approval',
  'at',
  'bytes',
  'decision',
  'duration_ms',
  'kind',
  'masked',
  'operation',
  'reasons',
  'rows',
  'target',
]);

/**
 * The event as the store chains it (chainEventText): three canonical JSON parts when it has only
 * NewEvent's fields, else its plain JSON. `at`: the event's time when it has none of its own.
 * @throws TypeError from JSON.stringify for what JSON cannot hold (a cycle, a BigInt)
 */
export function eventText(ev: NewEvent, at: string): string {
  const fields = ev as unknown as Record<string, unknown>;
  let plain = !Array.isArray(ev.reasons) || ev.target === undefined;
  for (const k in fields) {
    if (Object.hasOwn(fields, k) && !TEXT_KEYS.has(k) && fields[k] !== undefined) plain = true;
  }
  if (plain) return JSON.stringify({ ...ev, at: ev.at ?? at });
  // keys in sorted order: canonicalJson's fast path
  const head: Record<string, unknown> = {};
  if (ev.approval !== undefined) head.approval = ev.approval;
  head.at = ev.at ?? at;
  if (ev.bytes !== undefined) head.bytes = ev.bytes;
  head.decision = ev.decision;
  if (ev.duration_ms !== undefined) head.duration_ms = ev.duration_ms;
  head.kind = ev.kind;
  if (ev.masked !== undefined) head.masked = ev.masked;
  head.operation = ev.operation;
  const mid = ev.rows !== undefined ? { reasons: ev.reasons, rows: ev.rows } : { reasons: ev.reasons };
  const a = canonicalJson(head); // `{"at":…}`: never empty, `at` is always there
  const b = canonicalJson(mid); // `{"reasons":…}`
  const c = canonicalJson({ target: ev.target }); // `{"target":…}`
  return `${a.slice(0, -1)}${SEP}${b.slice(1, -1)}${SEP}${c.slice(1)}`;
}

/** A chained event as the store keeps it: where it sits in the chain and its stored body. */
export interface ChainedText {
  seq: number;
  prev_hash: string;
  hash: string;
  /** the event's JSON without session_id, seq and prev_hash (a chunk body's element: sql.ts chunkEventsJson) */
  body: string;
}

/**
 * Chain an event text (eventText) after `prev` (or the genesis). Equivalent to chainEvent on the event
 * the text was made from. `at`: the time for a plain-JSON event without one.
 */
export function chainEventText(
  prev: Pick<TranscriptEvent, 'seq' | 'hash'> | null,
  sessionId: string,
  text: string,
  at: string,
): ChainedText {
  const i = text.indexOf(SEP);
  const j = i < 0 ? -1 : text.indexOf(SEP, i + 1);
  if (i < 0) {
    const event = chainEvent(prev, sessionId, JSON.parse(text) as NewEvent, at);
    const { session_id: _s, seq: _q, prev_hash: _p, ...body } = event;
    return { seq: event.seq, prev_hash: event.prev_hash, hash: event.hash, body: JSON.stringify(body) };
  }
  if (j < 0 || text.indexOf(SEP, j + 1) >= 0) throw new TypeError('not an event text: expected three parts');
  const head = text.slice(0, i); // `{…,"operation":{…}`
  const mid = text.slice(i + 1, j); // `"reasons":[…],"rows":n`
  const tail = text.slice(j + 1); // `"target":…}`
  const seq = (prev?.seq ?? 0) + 1;
  const prevHash = prev?.hash ?? GENESIS_HASH;
  const canonical = `${head},"prev_hash":${JSON.stringify(prevHash)},${mid},"seq":${seq},"session_id":${JSON.stringify(sessionId)},${tail}`;
  const hash = sha256Hex(prevHash + canonical);
  return {
    seq,
    prev_hash: prevHash,
    hash,
    body: `${head},${mid},${tail.slice(0, -1)},"hash":"${hash}"}`,
  };
}
