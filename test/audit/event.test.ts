// The transcript hash chain's format is a contract: stored transcripts and exported evidence are
// verified against it later, so a faster implementation must hash exactly as before.
import { describe, expect, it } from 'vitest';
import { canonicalJson, chainEvent, type NewEvent, verifyChain } from '../../service/audit/event.js';

/** The definition, written plainly: keys sorted at every depth, undefined dropped (null in arrays). */
function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : reference(v))).join(',')}]`;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return reference(JSON.parse(JSON.stringify(value)));
  const obj = value as Record<string, unknown>;
  const parts = Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${reference(obj[k])}`);
  return `{${parts.join(',')}}`;
}

/** A deterministic pseudo-random generator, so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const KEYS = ['a', 'b', 'z', 'A', '10', '2', '0', 'é', 'key with space', '__proto_', 'hash', 'seq', ''];
const STRINGS = [
  '',
  'plain',
  'quote " back \\ slash',
  'nul \u0000',
  'lone \ud800',
  'emoji 🦄',
  'line\nbreak',
];

function randomValue(next: () => number, depth: number): unknown {
  const r = next();
  if (depth > 3 || r < 0.35) {
    const pick = Math.floor(next() * 9);
    return [
      null,
      true,
      false,
      0,
      -0,
      1.5e300,
      Number.NaN,
      STRINGS[Math.floor(next() * STRINGS.length)],
      undefined,
    ][pick];
  }
  if (r < 0.55) return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
  if (r < 0.6) return new Date(Math.floor(next() * 2e12));
  const obj: Record<string, unknown> = {};
  const n = Math.floor(next() * 5);
  for (let i = 0; i < n; i++) obj[KEYS[Math.floor(next() * KEYS.length)]!] = randomValue(next, depth + 1);
  return obj;
}

describe('canonicalJson', () => {
  it('equals the plain definition for 5,000 random values (sorted and unsorted keys, integer keys, Dates, undefined)', () => {
    const next = rng(20261123);
    for (let i = 0; i < 5000; i++) {
      const v = randomValue(next, 0);
      expect(canonicalJson(v), JSON.stringify(v)).toBe(reference(v));
    }
  });

  it('takes no shortcut on objects that only look sorted: class instances, toJSON, null prototypes', () => {
    class Point {
      constructor(
        readonly y: number,
        readonly x: number,
      ) {}
    }
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { b: 1, a: 2 });
    const withToJson = { a: 1, toJSON: () => ({ z: 1, y: 2 }) };
    for (const v of [new Point(1, 2), bare, withToJson, { a: () => 1 }, [() => 1, Symbol('s')]]) {
      expect(canonicalJson(v)).toBe(reference(v));
    }
    expect(canonicalJson(withToJson)).toBe('{"y":2,"z":1}');
  });
});

describe('chainEvent', () => {
  const t0 = new Date('2026-01-02T03:04:05.678Z');
  const statement: NewEvent = {
    target: 'db',
    kind: 'pg.statement',
    operation: {
      statement: 'SELECT 1 -- é \u0000 \ud800',
      statement_kind: 'SELECT',
      protocol: 'simple',
      conn_id: 'pgc_1',
    },
    decision: 'allow',
    reasons: ['grant db: read'],
    rows: 1,
    bytes: 10,
    duration_ms: 0.5,
    masked: 0,
  };
  const revoked: NewEvent = {
    target: null,
    kind: 'session.revoked',
    operation: { by: 'admin', nested: { z: 1, a: [1, { y: null, b: 'x' }], 10: 'ten', 2: 'two' } },
    decision: 'info',
    reasons: [],
    approval: { by: 'mona' },
  };

  it('hashes exactly as the recorded format requires (pinned values)', () => {
    const e1 = chainEvent(null, 'ses_golden', statement, t0);
    const e2 = chainEvent(e1, 'ses_golden', revoked, new Date('2026-01-02T03:04:06Z'));
    expect(e1.hash).toBe('8cb1bbac7fc625e2f48df767b2897c8035af87b72b62cad908dc0192812faceb');
    expect(e2.hash).toBe('4cf12e7b78724688b97348fbd96a8514eaa440ff22d63f68427ba1478fd4fbe9');
    expect(e2).toMatchObject({ seq: 2, prev_hash: e1.hash, at: '2026-01-02T03:04:06.000Z' });
    expect(verifyChain([e1, e2])).toEqual({ ok: true, head: e2.hash });
  });

  it('takes the time as a Date or an ISO string, keeps a caller-supplied at, and ignores chain fields from the caller', () => {
    const a = chainEvent(null, 's', statement, t0);
    const b = chainEvent(null, 's', statement, t0.toISOString());
    expect(b.hash).toBe(a.hash);
    const forged = chainEvent(
      null,
      's',
      { ...statement, seq: 99, hash: 'x', prev_hash: 'y' } as NewEvent,
      t0,
    );
    expect(forged).toMatchObject({ seq: 1, hash: a.hash });
    const dated = chainEvent(null, 's', { ...statement, at: '2020-01-01T00:00:00.000Z' }, t0);
    expect(dated.at).toBe('2020-01-01T00:00:00.000Z');
  });

  it('covers fields outside the schema in the hash, so tampering with them is detected', () => {
    const extra = chainEvent(null, 's', { ...statement, note: 'kept' } as NewEvent, t0);
    expect((extra as unknown as { note: string }).note).toBe('kept');
    const tampered = { ...extra, note: 'changed' };
    expect(verifyChain([tampered]).ok).toBe(false);
    expect(verifyChain([extra]).ok).toBe(true);
  });
});
