// Shells, terminals, forwards, agent forwarding and env through the broker, and the session's life:
// revocation closes live connections, ended sessions and wrong keys are refused, and an upstream
// whose host key is not the pinned one is never logged in to.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../service/cli.js';
import { freePort } from '../../fixtures/sshd.js';
import { runProcess, type SshHarness, startSshHarness } from './harness.js';

let h: SshHarness;
let echo: Server;
let echoPort: number;
let closedPort: number;
let closedHits = 0;
let closed: Server;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );
}

beforeAll(async () => {
  echo = createServer((s: Socket) => s.pipe(s));
  closed = createServer((s: Socket) => {
    closedHits++;
    s.destroy();
  });
  [echoPort, closedPort] = await Promise.all([listen(echo), listen(closed)]);
  const otherKey = execFileSync(
    'sh',
    ['-c', 'd=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -f $d/k; cat $d/k.pub; rm -r $d'],
    {
      encoding: 'utf8',
    },
  )
    .trim()
    .split(' ')
    .slice(0, 2)
    .join(' ');
  h = await startSshHarness({
    grants: {
      push: {
        access: 'write',
        ssh: {
          commands: { allow: ['sleep *', 'printenv *', 'echo *'] },
          shell: true,
          pty: true,
          forwards: [`127.0.0.1:${echoPort}`],
          env: ['HOOP_TEST_OK'],
          record_input: true,
        },
      },
      pull_request: { access: 'write', ssh: { commands: { allow: ['echo *'] } } },
    },
    extraTargets: (sshd, keyFile) => ({
      targets: [
        {
          name: 'impostor',
          kind: 'ssh',
          host: '127.0.0.1',
          port: sshd.port,
          user: sshd.user,
          host_key: otherKey,
          private_key: { file: keyFile },
        },
      ],
      grants: { push: [{ target: 'impostor', access: 'write', ssh: { commands: { allow: ['echo *'] } } }] },
    }),
  });
});
afterAll(async () => {
  await h?.close();
  await Promise.all([new Promise((r) => echo?.close(r)), new Promise((r) => closed?.close(r))]);
});

describe('shells and terminals', () => {
  it('ssh -t opens a shell with a terminal when the grant allows, recorded with its echoed input', async (ctx) => {
    // an unprivileged sshd outside the tty group cannot hand out ptys (test/fixtures/sshd.ts)
    if (!h.sshd.ptys) ctx.skip();
    const job = await h.open('push');
    const r = await job.ssh(['-tt', 'build-host'], { input: 'echo shell-says-$((6*7))\nexit 5\n' });
    expect(r.code).toBe(5);
    expect(r.stdout).toContain('shell-says-42');
    const t = await job.transcriptWhen((x) => x.events.some((e) => e.kind === 'ssh.shell'));
    const shell = t.events.find((e) => e.kind === 'ssh.shell')!;
    expect(shell.operation).toMatchObject({ exit_code: 5, term: expect.any(String) });
    const rec = shell.operation.recording as { id: string; sha256: string; events: number };
    expect(rec.events).toBeGreaterThan(1);
    const chunks = await h.broker.broker.store.listRecordingChunks(job.created.id, rec.id);
    const text = chunks.map((c) => c.body).join('');
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(lines[0]).toMatchObject({ version: 2, width: expect.any(Number), height: expect.any(Number) });
    const output = lines
      .slice(1)
      .filter((l) => (l as unknown[])[1] === 'o')
      .map((l) => (l as string[])[2])
      .join('');
    expect(output).toContain('shell-says-42');
    const input = lines
      .slice(1)
      .filter((l) => (l as unknown[])[1] === 'i')
      .map((l) => (l as string[])[2])
      .join('');
    expect(input).toContain('echo shell-says');
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(text).digest('hex')).toBe(rec.sha256);

    // hoop-broker audit replay: one asciicast file of the session's recordings, checked against the chain
    await job.ssh(['build-host', 'echo after the shell']);
    await job.transcriptWhen((x) => x.events.some((e) => e.kind === 'ssh.exec'));
    const tokenFile = join(job.dir, 'token');
    writeFileSync(tokenFile, job.created.secret, { mode: 0o600 });
    const castFile = join(job.dir, 'session.cast');
    const out: string[] = [];
    const code = await main(
      [
        'audit',
        'replay',
        job.created.id,
        '--url',
        h.broker.url,
        '--admin-token-file',
        tokenFile,
        '--out',
        castFile,
      ],
      { out: (l) => out.push(l), err: (l) => out.push(l) },
    );
    expect(code, out.join('\n')).toBe(0);
    expect(out.join('\n')).toContain('2 recording(s), verified against the transcript');
    const cast = readFileSync(castFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(cast[0]).toMatchObject({ version: 2, title: `hoop session ${job.created.id}` });
    const times = cast.slice(1).map((e) => (e as [number])[0]);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    if (hasAsciinema()) {
      // asciinema wants a terminal: script(1) gives it one; fast, idle gaps capped
      const played = execFileSync(
        'script',
        ['-q', '-e', '-c', `asciinema play -s 20 -i 0.05 ${castFile}`, '/dev/null'],
        { encoding: 'utf8', input: '', timeout: 20_000 },
      );
      expect(played).toContain('shell-says-42');
      expect(played).toContain('after the shell');
    }
  });

  it('does not record what is typed at a prompt with echo off', async (ctx) => {
    if (!h.sshd.ptys) ctx.skip();
    const job = await h.open('push');
    const ssh = spawn('ssh', ['-F', job.configFile, '-tt', 'build-host'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let seen = '';
    ssh.stdout.on('data', (d: Buffer) => {
      seen += d.toString();
    });
    const exited = new Promise<number | null>((r) => ssh.on('close', r));
    const until = (text: string) => waitFor(() => seen.includes(text));
    await until('$ ');
    ssh.stdin.write(`read -s -p 'Passphrase: ' pw; echo; echo "typed \${#pw} characters"\n`);
    await until('Passphrase: ');
    ssh.stdin.write('hunter2-secret\n');
    await until('typed 14 characters');
    ssh.stdin.write('echo visible-input\nexit\n');
    expect(await exited).toBe(0);
    const t = await job.transcriptWhen((x) => x.events.some((e) => e.kind === 'ssh.shell'));
    const rec = t.events.find((e) => e.kind === 'ssh.shell')!.operation.recording as {
      id: string;
      hidden_input_chars?: number;
    };
    const text = (await h.broker.broker.store.listRecordingChunks(job.created.id, rec.id))
      .map((c) => c.body)
      .join('');
    expect(text).toContain('visible-input');
    expect(text).toContain('typed 14 characters');
    expect(text).not.toContain('hunter2');
    expect(rec.hidden_input_chars).toBe(14);
  });

  it('refuses a shell the grant does not allow, saying why', async () => {
    const job = await h.open('pull_request');
    const r = await job.ssh(['-tt', 'build-host'], { input: 'id\n' });
    expect(r.code).toBe(126);
    expect(r.stderr + r.stdout).toContain('hoop: a terminal refused');
    expect(r.stderr + r.stdout).toContain('hoop: a shell refused');
    const t = await job.transcriptWhen((x) => x.events.filter((e) => e.kind === 'ssh.denied').length >= 2);
    expect(t.events.filter((e) => e.kind === 'ssh.denied').map((e) => e.operation.rule)).toEqual([
      'pty',
      'shell',
    ]);
  });
});

describe('forwards, agent, env', () => {
  it('ssh -W and ssh -L reach a listed destination; others are refused and never connected', async () => {
    const job = await h.open('push');
    const w = await job.ssh(['-W', `127.0.0.1:${echoPort}`, 'build-host'], { input: 'ping through hoop\n' });
    expect(w.stdout).toBe('ping through hoop\n');
    const refused = await job.ssh(['-W', `127.0.0.1:${closedPort}`, 'build-host'], { input: 'x' });
    expect(refused.code).not.toBe(0);
    expect(closedHits).toBe(0);

    const local = await freePort();
    const tunnel = spawn(
      'ssh',
      [
        '-F',
        job.configFile,
        '-N',
        '-o',
        'ExitOnForwardFailure=yes',
        '-L',
        `${local}:127.0.0.1:${echoPort}`,
        'build-host',
      ],
      {
        stdio: 'ignore',
      },
    );
    try {
      const reply = await retry(() => roundTrip(local, 'over -L\n'));
      expect(reply).toBe('over -L\n');
    } finally {
      tunnel.kill();
    }
    const t = await job.transcriptWhen((x) => x.events.filter((e) => e.kind === 'ssh.forward').length >= 2);
    const fwd = t.events.filter((e) => e.kind === 'ssh.forward');
    expect(fwd[0]!.operation).toMatchObject({
      direction: 'local',
      host: '127.0.0.1',
      port: echoPort,
      bytes_in: 18,
      bytes_out: 18,
    });
    expect(t.events.find((e) => e.kind === 'ssh.denied')?.operation).toMatchObject({
      port: closedPort,
      rule: 'forwards',
    });
  });

  it('refuses agent forwarding and remote forwarding, and env variables outside the allow-list', async () => {
    const job = await h.open('push');
    const sock = join(job.dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      await retry(async () => {
        execFileSync('ssh-add', ['-l'], { env: { SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      }).catch(() => undefined);
      const r = await job.ssh(['-A', '-o', `IdentityAgent=${sock}`, 'build-host', 'printenv SSH_AUTH_SOCK'], {
        env: { SSH_AUTH_SOCK: sock },
      });
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('hoop: agent forwarding is not allowed');
    } finally {
      agent.kill();
      rmSync(sock, { force: true });
    }
    const env = await job.ssh([
      '-o',
      'SetEnv=HOOP_TEST_OK=yes HOOP_TEST_BAD=no',
      'build-host',
      'printenv HOOP_TEST_OK HOOP_TEST_BAD',
    ]);
    expect(env.stdout).toBe('yes\n');
    expect(env.stderr).toContain('hoop: environment variable "HOOP_TEST_BAD" refused');
    const remote = await job.ssh([
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      '0:127.0.0.1:22',
      'build-host',
      'echo hi',
    ]);
    expect(remote.code).not.toBe(0);
    const t = await job.transcriptWhen((x) =>
      x.events.some((e) => e.operation.rule === 'ssh.forward.remote'),
    );
    const rules = t.events.filter((e) => e.kind === 'ssh.denied').map((e) => e.operation.rule);
    expect(rules).toEqual(expect.arrayContaining(['ssh.agent', 'env', 'ssh.forward.remote']));
    expect(JSON.stringify(t.events)).not.toContain('HOOP_TEST_BAD=no');
  });
});

describe('logins and X11', () => {
  it('refuses X11 forwarding, saying why, and runs the command without it', async () => {
    const job = await h.open('push');
    const x = await job.ssh(
      ['-o', 'ForwardX11=yes', '-o', 'ForwardX11Trusted=yes', 'build-host', 'printenv DISPLAY'],
      { env: { DISPLAY: 'localhost:0', XAUTHORITY: join(job.dir, 'no-xauthority') } },
    );
    // printenv's own status: the command ran, with no DISPLAY (no X11 channel was set up)
    expect(x.code).toBe(1);
    expect(x.stdout).toBe('');
    expect(x.stderr).toContain('hoop: X11 forwarding is not allowed through the broker');
    const t = await job.transcriptWhen((tr) => tr.events.some((e) => e.operation.rule === 'ssh.x11'));
    expect(t.events.find((e) => e.operation.rule === 'ssh.x11')?.kind).toBe('ssh.denied');
  });

  it('offers publickey only: a password or keyboard-interactive login is never possible', async () => {
    const job = await h.open('push');
    const r = await job.ssh([
      '-o',
      'PubkeyAuthentication=no',
      '-o',
      'BatchMode=yes',
      '-o',
      'PreferredAuthentications=password,keyboard-interactive',
      'build-host',
      'echo logged in',
    ]);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
  });
});

describe('the session and the upstream', () => {
  it('revoking the session closes its live connection within a second, saying why', async () => {
    const job = await h.open('push');
    const before = h.sshd.log().match(/Starting session: command/g)?.length ?? 0;
    const running = job.ssh(['build-host', 'sleep 30'], { timeoutMs: 15_000 });
    await waitFor(() => (h.sshd.log().match(/Starting session: command/g)?.length ?? 0) > before);
    await job.revoke();
    const t0 = Date.now();
    const r = await running;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.stderr).toContain(`hoop: session ${job.created.id} was revoked`);
    expect(r.code).toBe(255);
    const again = await job.ssh(['build-host', 'echo hi']);
    expect(again.code).toBe(255);
    expect(again.stderr).toContain(`hoop: session ${job.created.id} was revoked`);
    expect(again.stdout).toBe('');
  });

  it('refuses an expired session, a wrong key and an unknown session', async () => {
    const job = await h.open('push', { ttl: '2s' });
    await new Promise((r) => setTimeout(r, 2500));
    const expired = await job.ssh(['build-host', 'echo hi']);
    expect(expired.code).toBe(255);
    expect(expired.stderr).toContain('has expired');
    const fresh = await h.open('push');
    // the same ssh config with another key (IdentityFile options add up, so the file is rewritten)
    const wrongConfig = join(fresh.dir, 'ssh_config.wrong');
    writeFileSync(
      wrongConfig,
      readFileSync(fresh.configFile, 'utf8').replace(
        /IdentityFile .*/g,
        `IdentityFile "${h.sshd.clientKeyFile}"`,
      ),
    );
    const wrongKey = await runProcess(
      'ssh',
      ['-F', wrongConfig, 'build-host', 'echo hi'],
      { PATH: process.env.PATH },
      fresh.dir,
      undefined,
      15_000,
    );
    expect(wrongKey.code).toBe(255);
    expect(wrongKey.stderr).toContain('Permission denied (publickey)');
    const unknown = await fresh.ssh([
      '-o',
      'User=ses_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa+build-host',
      'build-host',
      'echo hi',
    ]);
    expect(unknown.stderr).toContain('Permission denied (publickey)');
  });

  it('never logs in to a target whose host key is not the pinned one', async () => {
    const job = await h.open('push');
    const accepted = () => h.sshd.log().match(/Accepted publickey/g)?.length ?? 0;
    const before = accepted();
    const r = await job.ssh(['impostor', 'echo hi']);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('presented a host key that is not the pinned host_key; refusing to connect');
    expect(r.stdout).toBe('');
    expect(accepted()).toBe(before);
  });
});

function hasAsciinema(): boolean {
  try {
    execFileSync('asciinema', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition never held');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function retry<T>(fn: () => Promise<T>, attempts = 50): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('connect', () => s.write(text));
    s.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.on('close', () => (got.length < text.length ? reject(new Error('closed early')) : undefined));
  });
}
