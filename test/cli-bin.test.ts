// The installed command as a user runs it: `npx hoop-broker` in the checkout (npm resolves the
// package's own bin) and the built binary with --help/-h on every command and subcommand, each a
// real process. (npx takes `--help` and `-h` right after the command name for itself: `npx hoop-broker
// help` or `npx hoop-broker -- --help` reach the broker.)
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = 'build/service/cli.js';
const COMMANDS = ['serve', 'check-config', 'explain', 'sessions', 'approvals', 'audit', 'healthcheck', 'dev'];
const SUBCOMMANDS = [
  ['sessions', 'list'],
  ['sessions', 'revoke'],
  ['approvals', 'list'],
  ['approvals', 'show'],
  ['approvals', 'approve'],
  ['approvals', 'deny'],
  ['audit', 'verify'],
  ['audit', 'denials'],
  ['audit', 'export'],
  ['audit', 'replay'],
  ['dev', 'issuer'],
  ['dev', 'token'],
];

describe('hoop-broker, the binary', () => {
  it('npx hoop-broker prints the usage (exit 2); npx hoop-broker help and serve -h print help (exit 0)', async () => {
    const bare = await run('npx', ['--no', 'hoop-broker'], { timeout: 60_000 }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect('code' in bare ? bare.code : 0).toBe(2);
    expect(bare.stderr).toContain('hoop-broker — CI credential broker');
    for (const c of COMMANDS) expect(bare.stderr).toContain(`hoop-broker ${c}`);
    const help = await run('npx', ['--no', 'hoop-broker', 'help'], { timeout: 60_000 });
    expect(help.stdout).toContain('hoop-broker COMMAND --help');
    const passed = await run('npx', ['--no', 'hoop-broker', '--', '--help'], { timeout: 60_000 });
    expect(passed.stdout).toContain('hoop-broker — CI credential broker');
    const serve = await run('npx', ['--no', 'hoop-broker', 'serve', '-h'], { timeout: 60_000 });
    expect(serve.stdout).toMatch(/^hoop-broker serve --config FILE/);
  }, 120_000);

  it('--help and -h on every command and subcommand: its own text, exit 0, nothing run', async () => {
    for (const c of COMMANDS)
      for (const flag of ['--help', '-h']) {
        const { stdout, stderr } = await run('node', [BIN, c, flag]);
        expect(stdout, `${c} ${flag}`).toMatch(new RegExp(`^hoop-broker ${c}\\b`));
        expect(stdout, `${c} ${flag}`).toContain('-h, --help');
        expect(stderr).toBe('');
      }
    for (const [c, sub] of SUBCOMMANDS)
      for (const flag of ['--help', '-h']) {
        const { stdout } = await run('node', [BIN, c!, sub!, flag]);
        expect(stdout, `${c} ${sub} ${flag}`).toContain(`hoop-broker ${c} ${sub}`);
      }
    // `help COMMAND` is the same text
    const a = await run('node', [BIN, 'help', 'audit']);
    const b = await run('node', [BIN, 'audit', '--help']);
    expect(a.stdout).toBe(b.stdout);
  }, 120_000);
});
