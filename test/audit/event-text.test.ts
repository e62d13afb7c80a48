// Event texts (the recorder's hot path) must chain to exactly what chainEvent makes of the same event:
// same seq, prev_hash and hash, and a stored body that restores to the same event.
import { describe, expect, it } from 'vitest';
import { chainEventText, eventText } from '../../service/audit/event-text.js';
import { chainEvent, GENESIS_HASH, type NewEvent, verifyChain } from '../../service/audit/event.js';
import { restoreChunk } from '../../service/store/sql.js';

const AT = '2026-12-01T10:00:00.000Z';

// a small deterministic generator (no dependency, reproducible failures)
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const NASTY = [
  'select 1',
  "select 'a\nb' -- newline\r\n",
  'select $$\u0000$$',
  "select '\u2028\u2029' /* separators */",
  'select "\\"quoted\\""',
  'select \ud800 lone surrogate',
  'select 😀 emoji, é, ß',
  '"reasons":["x"],"seq":1,"target":"y"}',
  '\n\n\n',
  '',
];

function randomEvent(r: () => number, i: number): NewEvent {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const ev: Record<string, unknown> = {
    target: pick(['db', null, 'weird "target"\n', 'ü']),
    kind: pick(['pg.statement', 'pg.denied', 'session.opened', 'k\u0001']),
    operation:
      r() < 0.5
        ? // keys in order, flat: the gateways' statement events (written by hand in eventText)
          {
            conn_id: `c${i}`,
            ...(r() < 0.3 ? { error: pick(['42501', 'XX000']) } : {}),
            protocol: pick(['simple', 'extended']),
            ...(r() < 0.2 ? { rows_hint: pick([NaN, 1.5, -0, 7]) } : {}),
            statement: pick(NASTY),
            statement_kind: pick(['SELECT', 'UNKNOWN', 'ü"\\']),
          }
        : // keys deliberately out of order, nested
          {
            statement: pick(NASTY),
            protocol: pick(['simple', 'extended']),
            conn_id: `c${i}`,
            ...(r() < 0.3
              ? { nested: { z: [1, { b: 2, a: 1 }], a: null, m: -0, big: 1e21, f: 0.1 + 0.2 } }
              : {}),
            ...(r() < 0.2 ? { when: new Date(Date.UTC(2026, 0, 2)) } : {}),
          },
    decision: pick(['allow', 'deny', 'hold', 'info']),
    reasons: r() < 0.2 ? [] : [pick(NASTY), 'grant db: read'],
  };
  if (r() < 0.7) ev.rows = Math.floor(r() * 1000);
  if (r() < 0.7) ev.bytes = Math.floor(r() * 1e6);
  if (r() < 0.7) ev.duration_ms = Math.round(r() * 1e6) / 1e3;
  if (r() < 0.5) ev.masked = Math.floor(r() * 10);
  // numbers JSON writes in its own way
  if (r() < 0.1) ev.duration_ms = pick([NaN, Infinity, -0, 1e21, 5e-7, -1.5e300]);
  if (r() < 0.2) ev.approval = { by: 'octocat', at: AT, note: pick(NASTY) };
  if (r() < 0.2) ev.at = '2025-01-01T00:00:00.000Z';
  if (r() < 0.1) ev.rows = undefined;
  // fields outside NewEvent's: the event travels as plain JSON
  if (r() < 0.1) ev[pick(['extra', 'aaa', 'sequence', 'zzz', 'seq_note'])] = { target: 'x', reasons: ['y'] };
  return ev as unknown as NewEvent;
}

describe('event texts', () => {
  it('chain to chainEvent’s hashes and restore to chainEvent’s events (2,000 random events)', () => {
    const r = rng(20261201);
    let prevObj: ReturnType<typeof chainEvent> | null = null;
    let prevText: { seq: number; hash: string } | null = null;
    const bodies: string[] = [];
    const events: ReturnType<typeof chainEvent>[] = [];
    const sessionId = 'ses_"odd"\nid';
    for (let i = 0; i < 2000; i++) {
      const ev = randomEvent(r, i);
      const viaObject = chainEvent(prevObj, sessionId, ev, AT);
      const text = eventText(ev, AT);
      const viaText = chainEventText(prevText, sessionId, text, AT);
      expect(viaText.seq).toBe(viaObject.seq);
      expect(viaText.prev_hash).toBe(viaObject.prev_hash);
      expect(viaText.hash, `event ${i}: ${text}`).toBe(viaObject.hash);
      const { session_id: _s, seq: _q, prev_hash: _p, ...rest } = viaObject;
      expect(JSON.parse(viaText.body)).toEqual(JSON.parse(JSON.stringify(rest)));
      prevObj = viaObject;
      prevText = viaText;
      bodies.push(viaText.body);
      events.push(viaObject);
    }
    // what the store reads back from a chunk of these bodies verifies as a chain
    const restored = restoreChunk(sessionId, 1, GENESIS_HASH, JSON.parse(`[${bodies.join(',')}]`));
    expect(verifyChain(restored)).toEqual({ ok: true, head: events.at(-1)!.hash });
  });

  it('have three parts whatever a statement holds, and fall back to plain JSON for unknown fields', () => {
    const ev: NewEvent = {
      target: 'db',
      kind: 'pg.statement',
      operation: { statement: 'select 1;\nselect 2;\r\n\u0000' },
      decision: 'allow',
      reasons: ['a\nb'],
    };
    expect(eventText(ev, AT).split('\n')).toHaveLength(3);
    const odd = { ...ev, extra: 1 } as NewEvent;
    const plain = eventText(odd, AT);
    expect(plain).not.toContain('\n');
    expect(JSON.parse(plain)).toMatchObject({ extra: 1, at: AT });
  });

  it('refuses a text that is neither three parts nor JSON', () => {
    expect(() => chainEventText(null, 's', 'a\nb', AT)).toThrow(/three parts/);
    expect(() => chainEventText(null, 's', 'a\nb\nc\nd', AT)).toThrow(/three parts/);
    expect(() => chainEventText(null, 's', '{not json', AT)).toThrow(SyntaxError);
  });
});
