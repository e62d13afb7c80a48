// Differential fuzz of the extended-protocol bookkeeping (issue 12): seeded random message sequences,
// through the broker and straight to the same real PostgreSQL, must give the same replies (denials
// aside), and a masked column must never come out raw. Bounded in time here; `npm run fuzz:pg` runs
// long. A failure prints its seed and sequence: FUZZ_SEED=<seed> replays it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FuzzEnv, type FuzzReport, fuzz, startFuzzEnv } from '../../fixtures/pg-fuzz.js';

let env: FuzzEnv;
const SEED = Number(process.env.FUZZ_SEED ?? 20261207);
const BUDGET_MS = Number(process.env.FUZZ_MS ?? 8000);

beforeAll(async () => {
  env = await startFuzzEnv();
});
afterAll(async () => {
  await env?.close();
});

function explain(r: FuzzReport): string {
  if (!r.failure) return '';
  const f = r.failure;
  return [
    `seed ${r.seed}, sequence ${f.sequence}: ${f.why} (replay: FUZZ_SEED=${r.seed})`,
    `sent: ${f.steps.join(' ')}`,
    `broker: ${f.broker.join(' ⏵ ')}`,
    `direct: ${f.direct.join(' ⏵ ')}`,
    `before: ${f.previous.join(' ')}`,
  ].join('\n');
}

describe('differential protocol fuzz against a real PostgreSQL', () => {
  for (const mode of ['plain', 'masked'] as const) {
    it(
      `${mode} grant: the broker's replies match the server's, message for message`,
      async () => {
        const r = await fuzz(env, {
          seed: SEED + (mode === 'masked' ? 1 : 0),
          sequences: 100_000,
          mode,
          deadline: Date.now() + BUDGET_MS,
        });
        if (r.failure) console.error(explain(r));
        expect(r.failure, explain(r)).toBeNull();
        // it must have exercised something: sequences, denials and server errors
        expect(r.sequences).toBeGreaterThan(50);
        expect(r.denied).toBeGreaterThan(5);
        expect(r.errors).toBeGreaterThan(20);
      },
      BUDGET_MS + 30_000,
    );
  }
});
