import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../service/config/load.js';

const BASE = `listen:
  http: { port: 8080 }
  postgres: { port: 6432 }
issuers:
  - name: github
    issuer: https://token.actions.githubusercontent.com
    audience: https://hoop.example.com
targets:
  - name: orders-db
    kind: postgres
    host: db.internal
    database: orders
    user: ci_migrator
    password: { env: ORDERS_DB_PASSWORD }
policies:
  - name: pull-requests-read-only
    when: { repository_id: "123456", ref: ["/refs/heads/.*/", main] }
    ttl: 15m
    grants:
      - target: orders-db
        access: read
        mask: [{ column: "customers.email" }, { detector: credit_card }]
        deny: [{ statement: [DROP, TRUNCATE] }, { table: [secrets] }]
`;

/** Deterministic PRNG (mulberry32) so a failure reproduces. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ' :-[]{},"\'\n\t#&*!|>?%@`abz019.';

function mutate(text: string, next: () => number): string {
  let out = text;
  const edits = 1 + Math.floor(next() * 3);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(next() * out.length);
    const choice = next();
    if (choice < 0.35) out = out.slice(0, at) + out.slice(at + 1);
    else if (choice < 0.7)
      out = out.slice(0, at) + ALPHABET[Math.floor(next() * ALPHABET.length)] + out.slice(at);
    else {
      const lines = out.split('\n');
      const a = Math.floor(next() * lines.length);
      const b = Math.floor(next() * lines.length);
      [lines[a], lines[b]] = [lines[b] ?? '', lines[a] ?? ''];
      out = lines.join('\n');
    }
  }
  return out;
}

describe('loadConfigText robustness', () => {
  it('answers every mangled config with a result, never a throw, and errors that are placed and sorted', () => {
    const next = random(20260301);
    let invalid = 0;
    for (let i = 0; i < 600; i++) {
      const text = mutate(BASE, next);
      const result = loadConfigText(text, 'fuzz.yaml');
      if (result.ok) continue;
      invalid++;
      expect(result.errors.length, text).toBeGreaterThan(0);
      const lineCount = text.split('\n').length;
      for (const error of result.errors) {
        expect(error.line, text).toBeGreaterThanOrEqual(1);
        expect(error.line, text).toBeLessThanOrEqual(lineCount);
        expect(error.column, text).toBeGreaterThanOrEqual(1);
        expect(error.message.length, text).toBeGreaterThan(0);
      }
      const positions = result.errors.map((error) => error.line * 10_000 + error.column);
      expect(positions, text).toEqual([...positions].sort((a, b) => a - b));
    }
    expect(invalid).toBeGreaterThan(300);
  });
});
