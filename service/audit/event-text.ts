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

/** Is this one of the fields a three-part text carries? (Anything else sends the event as plain JSON.) */
function textKey(k: string): boolean {
  switch (k) {
    case 'approval':
    case 'at':
    case 'bytes':
    case 'decision':
    case 'duration_ms':
    case 'kind':
    case 'masked':
    case 'operation':
    case 'reasons':
    case 'rows':
    case 'target':
      return true;
    default:
      return false;
  }
}

/**
 * The event as the store chains it (chainEventText): three canonical JSON parts when it has only
 * NewEvent's fields, else its plain JSON. `at`: the event's time when it has none of its own.
 * @throws TypeError from JSON.stringify for what JSON cannot hold (a cycle, a BigInt)
 */
export function eventText(ev: NewEvent, at: string): string {
  const fields = ev as unknown as Record<string, unknown>;
  let plain = !Array.isArray(ev.reasons) || ev.target === undefined;
  for (const k in fields) {
    if (!textKey(k) && Object.hasOwn(fields, k) && fields[k] !== undefined) plain = true;
  }
  if (plain) return JSON.stringify({ ...ev, at: ev.at ?? at });
  // written by hand, keys in sorted order: one event per statement, so this is the gateways' hot path
  let head = '{';
  if (ev.approval !== undefined) head += `"approval":${canonicalJson(ev.approval)},`;
  head += `"at":${JSON.stringify(ev.at ?? at)}`;
  if (ev.bytes !== undefined) head += `,"bytes":${json(ev.bytes)}`;
  if (ev.decision !== undefined) head += `,"decision":${json(ev.decision)}`;
  if (ev.duration_ms !== undefined) head += `,"duration_ms":${json(ev.duration_ms)}`;
  if (ev.kind !== undefined) head += `,"kind":${json(ev.kind)}`;
  if (ev.masked !== undefined) head += `,"masked":${json(ev.masked)}`;
  if (ev.operation !== undefined) head += `,"operation":${flatJson(ev.operation)}`;
  let mid = `"reasons":${ev.reasons.length === 0 ? '[]' : canonicalJson(ev.reasons)}`;
  if (ev.rows !== undefined) mid += `,"rows":${json(ev.rows)}`;
  return `${head}${SEP}${mid}${SEP}"target":${json(ev.target)}}`;
}

/** Printable ASCII but `"` and `\\`: a string JSON writes as it is, between quotes. */
const PLAIN = /^[ !#-[\]-~]*$/;

/** A value's canonical JSON, with the common scalars first. */
function json(v: unknown): string {
  if (typeof v === 'string') return PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
  // JSON writes a finite number as String() does (-0 as 0 too); NaN and the infinities as null
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  return canonicalJson(v);
}

/**
 * canonicalJson of an object, written here when it is flat (string and number values) with its keys in
 * order and plain (a statement event's operation); anything else goes to canonicalJson.
 */
function flatJson(obj: Record<string, unknown>): string {
  if (obj === null || typeof obj !== 'object' || Object.getPrototypeOf(obj) !== Object.prototype)
    return canonicalJson(obj);
  let out = '{';
  let prev = '';
  for (const k in obj) {
    const v = obj[k];
    if (v === undefined || !(prev < k) || !PLAIN.test(k) || !Object.hasOwn(obj, k)) return canonicalJson(obj);
    if (typeof v === 'string')
      out += `${prev === '' ? '' : ','}"${k}":${PLAIN.test(v) ? `"${v}"` : JSON.stringify(v)}`;
    else if (typeof v === 'number')
      out += `${prev === '' ? '' : ','}"${k}":${Number.isFinite(v) ? String(v) : 'null'}`;
    else return canonicalJson(obj);
    prev = k;
  }
  return `${out}}`;
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
