// `npm run fuzz:pg`: the differential protocol fuzz (test/fixtures/pg-fuzz.ts) run long, against a
// real PostgreSQL started for the run. Options (environment): FUZZ_MESSAGES (default 100000),
// FUZZ_SEED (default: random; printed), FUZZ_MODE plain|masked|both (default both), FUZZ_MS (a time
// limit, default 15 minutes). Exits 1 on the first disagreement, printing the seed to replay it.
import { fuzz, startFuzzEnv, type FuzzMode } from '../test/fixtures/pg-fuzz.js';

const target = Number(process.env.FUZZ_MESSAGES ?? 100_000);
const seed0 = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const modes: FuzzMode[] =
  process.env.FUZZ_MODE === 'plain' || process.env.FUZZ_MODE === 'masked'
    ? [process.env.FUZZ_MODE]
    : ['plain', 'masked'];
const deadline = Date.now() + Number(process.env.FUZZ_MS ?? 15 * 60_000);

const env = await startFuzzEnv();
let failed = false;
try {
  for (const mode of modes) {
    const started = Date.now();
    let messages = 0;
    let sequences = 0;
    let denied = 0;
    let errors = 0;
    let replies = 0;
    let reconnects = 0;
    let round = 0;
    while (messages < target / modes.length && Date.now() < deadline) {
      const seed = seed0 + round++ * 7919;
      const r = await fuzz(env, { seed, sequences: 2000, mode, deadline });
      messages += r.messages;
      sequences += r.sequences;
      denied += r.denied;
      errors += r.errors;
      replies += r.replies;
      reconnects += r.reconnects;
      if (r.failure) {
        failed = true;
        const f = r.failure;
        console.log(`FAIL ${mode} seed ${seed} sequence ${f.sequence}: ${f.why}`);
        console.log(`  sent:   ${f.steps.join(' ')}`);
        console.log(`  broker: ${f.broker.join(' ⏵ ')}`);
        console.log(`  direct: ${f.direct.join(' ⏵ ')}`);
        console.log(`  before: ${f.previous.join(' ')}`);
        break;
      }
    }
    const s = (Date.now() - started) / 1000;
    console.log(
      `${mode}: ${messages} messages in ${sequences} sequences (seed ${seed0}, ${round} rounds), ${replies} replies compared, ${denied} denials, ${errors} server errors, ${reconnects} connections the server ended, ${s.toFixed(1)} s (${Math.round(messages / s)} messages/s)${failed ? ', FAILED' : ', no disagreement'}`,
    );
    if (failed) break;
  }
} finally {
  await env.close();
}
process.exit(failed ? 1 : 0);
