// Fails when dist/ does not match what the sources build to (byte for byte), without touching dist/.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAction } from './build-action.mjs';

const out = mkdtempSync(join(tmpdir(), 'hoop-dist-'));
try {
  await buildAction(out);
  const fresh = readdirSync(out).sort();
  const committed = readdirSync('dist').sort();
  const problems = [];
  for (const f of new Set([...fresh, ...committed])) {
    if (!fresh.includes(f)) problems.push(`dist/${f} is not produced by the build (remove it)`);
    else if (!committed.includes(f)) problems.push(`dist/${f} is missing (run npm run build:action)`);
    else if (!readFileSync(join(out, f)).equals(readFileSync(join('dist', f))))
      problems.push(`dist/${f} is stale (run npm run build:action and commit)`);
  }
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
  console.log(`dist/ matches the sources (${fresh.length} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
