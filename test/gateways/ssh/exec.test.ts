// ssh HOST COMMAND through the broker: exit codes, stdin, large output, refusals, the transcript.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideAsAdmin, pendingApproval } from '../../fixtures/approvals.js';
import { type SshHarness, startSshHarness } from './harness.js';

let h: SshHarness;

beforeAll(async () => {
  h = await startSshHarness({
    grants: {
      push: {
        access: 'write',
        ssh: {
          commands: {
            allow: ['echo *', 'exit *', 'cat', 'head -c *', 'id -un', 'printf *', 'touch *'],
            deny: ['touch *forbidden*'],
            approve: ['echo deploy*'],
          },
        },
      },
    },
  });
});
afterAll(async () => h?.close());

describe('exec through the ssh gateway', () => {
  it('runs allowed commands on the target as its user, relaying output and exit status', async () => {
    const job = await h.open('push');
    const who = await job.ssh(['build-host', 'id -un']);
    expect(who).toMatchObject({ code: 0, stdout: `${h.sshd.user}\n`, stderr: '' });
    const failed = await job.ssh(['build-host', 'exit 7']);
    expect(failed.code).toBe(7);
    const echoed = await job.ssh(['build-host', 'echo hello world']);
    expect(echoed.stdout).toBe('hello world\n');
    await h.sshd.waitForLog(/Accepted publickey for \S+ from 127\.0\.0\.1/);
  });

  it('pipes stdin and streams large output with flow control', async () => {
    const job = await h.open('push');
    const input = Buffer.alloc(3 * 1024 * 1024, 'abcdefghij');
    const cat = await job.ssh(['build-host', 'cat'], { input });
    expect(cat.code).toBe(0);
    expect(cat.stdout.length).toBe(input.length);
    expect(cat.stdout === input.toString()).toBe(true);
    const big = await job.run('sh', [
      '-c',
      `ssh -F ${job.configFile} build-host 'head -c 50000000 /dev/zero' | wc -c`,
    ]);
    expect(big.stdout.trim()).toBe('50000000');
  });

  it('holds a fast producer back while the client does not read: the broker buffers a few windows, not the stream', async () => {
    const job = await h.open('push');
    const ssh = spawn('ssh', ['-F', job.configFile, 'build-host', 'head -c 1000000000 /dev/zero'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    ssh.stdout.pause();
    const exited = new Promise((r) => ssh.on('close', r));
    // the client's own buffers and the windows fill within a second or so; then nothing moves
    await new Promise((r) => setTimeout(r, 1500));
    const before = process.memoryUsage().rss;
    await new Promise((r) => setTimeout(r, 2000));
    const grew = process.memoryUsage().rss - before;
    expect(grew).toBeLessThan(32 * 1024 * 1024);
    let received = 0;
    ssh.stdout.on('data', (d: Buffer) => {
      received += d.length;
      if (received > 100_000_000) ssh.kill();
    });
    ssh.stdout.resume();
    await exited;
    expect(received).toBeGreaterThan(100_000_000);
  });

  it('streams 256 MB each way through one exec (`head | ssh host cat`) with the broker RSS flat', async () => {
    const job = await h.open('push');
    await job.ssh(['build-host', 'cat'], { input: Buffer.alloc(4 * 1024 * 1024) }); // warm up
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 25);
    const MB256 = 256 * 1024 * 1024;
    let r;
    try {
      r = await job.run(
        'sh',
        ['-c', `head -c ${MB256} /dev/zero | ssh -F ${job.configFile} build-host cat | wc -c`],
        { timeoutMs: 240_000 },
      );
    } finally {
      clearInterval(sampler);
    }
    expect(r.stdout.trim()).toBe(String(MB256));
    // a broker that buffered the stream would grow by hundreds of MB; windows and garbage are far less
    expect(peak - baseline).toBeLessThan(128 * 1024 * 1024);
    const t = await job.transcriptWhen((x) =>
      x.events.some((e) => e.kind === 'ssh.exec' && e.operation.bytes_in === MB256),
    );
    expect(t.events.find((e) => e.operation.bytes_in === MB256)?.operation).toMatchObject({
      command: 'cat',
      exit_code: 0,
      bytes_out: MB256,
    });
  }, 300_000);

  it('refuses commands outside the allow-list, and deny matches, with the reason on stderr and exit 126', async () => {
    const job = await h.open('push');
    const marker = `${h.home}/should-not-exist`;
    const refused = await job.ssh(['build-host', `touch ${marker}; id`]);
    expect(refused.code).toBe(126);
    expect(refused.stderr).toContain('hoop: command "touch');
    const denied = await job.ssh(['build-host', `touch ${h.home}/forbidden`]);
    expect(denied.code).toBe(126);
    expect(denied.stderr).toContain('commands.deny');
    // an approve rule holds the command for the approvals service; denied, it is refused with who and why
    const holding = job.ssh(['build-host', 'echo deploy now']);
    const a = await pendingApproval(h.broker.broker, job.created.id);
    expect(a).toMatchObject({
      operation_kind: 'ssh.exec',
      summary: 'echo deploy now',
      rule: 'commands.approve',
    });
    await decideAsAdmin(h.broker.broker, a.id, 'deny', 'not today');
    const held = await holding;
    expect(held.code).toBe(126);
    expect(held.stderr).toContain('needs approval');
    expect(held.stderr).toContain(`approval ${a.id} denied by admin:test: not today`);
    expect(held.stderr).toContain(`hoop: held for approval ${a.id} until`);
    const t = await job.transcript();
    const denials = t.events.filter((e) => e.kind === 'ssh.denied');
    expect(denials.map((e) => e.operation.command)).toEqual([
      `touch ${marker}; id`,
      `touch ${h.home}/forbidden`,
      'echo deploy now',
    ]);
    expect(denials.map((e) => e.operation.rule)).toEqual([
      'commands.allow',
      'commands.deny',
      'commands.approve',
    ]);
    // nothing reached the server: no session was started for them
    const { existsSync } = await import('node:fs');
    expect(existsSync(marker)).toBe(false);
    // approved, the held command runs
    const approving = job.ssh(['build-host', 'echo deploy approved']);
    const b = await pendingApproval(h.broker.broker, job.created.id);
    await decideAsAdmin(h.broker.broker, b.id, 'approve');
    expect(await approving).toMatchObject({ code: 0, stdout: 'deploy approved\n' });
  });

  it('records each command with exit status and bytes each way, and its output as a recording', async () => {
    const job = await h.open('push');
    await job.ssh(['build-host', 'printf abc'], { input: 'xyz' });
    await job.ssh(['build-host', 'exit 3']);
    const t = await job.transcriptWhen((x) => x.events.filter((e) => e.kind === 'ssh.exec').length === 2);
    expect(t.chain_verified).toBe(true);
    const execs = t.events.filter((e) => e.kind === 'ssh.exec');
    expect(execs).toHaveLength(2);
    expect(execs[0]).toMatchObject({
      decision: 'allow',
      operation: { command: 'printf abc', exit_code: 0, bytes_out: 3, bytes_in: 3 },
    });
    expect(execs[1]!.operation).toMatchObject({ command: 'exit 3', exit_code: 3 });
    expect(execs[0]!.operation.recording).toMatchObject({ events: 1, truncated: false });
    expect(t.events.map((e) => e.kind)).toContain('ssh.connection.opened');
  });
});
