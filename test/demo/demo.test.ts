// `npm run demo` on this checkout, as a newcomer runs it: a masked psql result, a denied write and the
// action's job summary, in under a minute, ending with what to try next; nothing left behind.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';

it('npm run demo reaches a masked psql result and a printed job summary in under a minute', async () => {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
    env: { ...process.env, FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(killer);
  const seconds = (performance.now() - t0) / 1000;
  expect(err, out).toBe('');
  expect(code, out).toBe(0);
  expect(seconds).toBeLessThan(60);
  // the broker's start-up text: where things are and what to run next
  expect(out).toMatch(/API\s+http:\/\/127\.0\.0\.1:\d+/);
  expect(out).toMatch(/PostgreSQL\s+127\.0\.0\.1:\d+/);
  expect(out).toMatch(/CA file\s+\S+ca\.pem/);
  expect(out).toContain('Next:');
  // psql by hand: a read, masked columns, a denied write
  expect(out).toMatch(/40 \| 5945\.00/);
  expect(out).toContain('Ada Lovelace    | ***@***.*** | ****-****-****-1111');
  expect(out).not.toContain('ada@example.com');
  expect(out).toContain('ERROR:  hoop: UPDATE denied by policy rule "access: read"');
  expect(out).toContain('chain verified: true');
  // the action: main, a psql step, post, and the job summary
  expect(out).toContain('Grace Hopper | ***@***.***');
  expect(out).toContain('## hoop session');
  expect(out).toContain('**⛔ denied** #');
  expect(out).toContain('Session: revoked at the end of the job.');
  expect(out).toMatch(/Done in \d+\.\d s\. What to try next:/);
  expect(out).toContain('npm run demo -- --keep');
  // the throwaway directory is gone
  const workDir = /working directory (\S+)/.exec(out)?.[1];
  expect(workDir).toBeTruthy();
  expect(existsSync(workDir!)).toBe(false);
}, 90_000);
