// Upgraded streams through the broker with the real kubectl: exec over SPDY/3.1 (kubectl's older
// transport), exec -it under a pseudo-terminal, port-forward over the WebSocket tunnel and over
// SPDY, the port policy, and revocation closing an exec and a port-forward.
import { spawn } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './harness.js';

let h: Harness;
let echo: Server;
const SPDY = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' };
const PF_SPDY = { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' };

beforeAll(async () => {
  echo = createServer((c) => c.on('data', (d) => c.write(Buffer.concat([Buffer.from('echo:'), d]))));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  h = await startHarness({
    maxStreams: 3,
    api: { portMap: { 8080: (echo.address() as AddressInfo).port } },
    policies: [
      {
        name: 'debug',
        when: { ref: 'refs/heads/main' },
        grants: [
          {
            target: 'staging',
            access: 'read',
            kubernetes: { presets: ['debug'], ports: [8080], record_output: true },
          },
        ],
      },
    ],
  });
  h.api.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: { containers: [{ name: 'main', image: 'nginx' }] },
  });
});

afterAll(async () => {
  await h?.close();
  await new Promise((r) => echo?.close(r));
});

const session = () => h.session({ ref: 'refs/heads/main' });

async function events(s: Parameters<Harness['transcript']>[0], subresource: string, n: number) {
  const end = Date.now() + 5000;
  for (;;) {
    const evs = (await h.transcript(s)).events.filter(
      (e) => e.kind.startsWith('k8s.') && e.operation.subresource === subresource,
    );
    if (evs.length >= n || Date.now() > end) return evs;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tcpRoundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => c.write(text));
    let got = '';
    c.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length + 5) c.end();
    });
    c.on('close', () => resolve(got));
    c.on('error', reject);
    setTimeout(() => c.destroy(), 3000);
  });
}

async function portForward(kc: string, local: number, remote: number, env: Record<string, string>) {
  const p = h.spawnKubectl(kc, ['port-forward', 'pod/web', `${local}:${remote}`], env);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const end = Date.now() + 10_000;
  while (!out.includes('Forwarding from') && Date.now() < end && p.exitCode === null)
    await new Promise((r) => setTimeout(r, 20));
  return { p, out: () => out };
}

let nextPort = 20_000 + Math.floor(Math.random() * 20_000);

describe('streams through the broker', () => {
  it('exec over SPDY/3.1: exit codes, stdout/stderr, stdin; recorded', async () => {
    const { s, kubeconfig } = await session();
    const r = await h.kubectl(
      kubeconfig,
      ['exec', 'web', '--', 'sh', '-c', 'echo out; echo err >&2; exit 5'],
      { env: SPDY },
    );
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
    const c = await h.kubectl(kubeconfig, ['exec', '-i', 'web', '--', 'cat'], {
      env: SPDY,
      input: 'spdy stdin\n',
    });
    expect(c).toMatchObject({ code: 0, stdout: 'spdy stdin\n' });
    // kubectl 1.32 offers v5 over SPDY too
    expect(h.api.upgrades.filter((u) => u.transport === 'spdy').map((u) => u.protocol)).toContain(
      'v5.channel.k8s.io',
    );
    const execs = await events(s, 'exec', 2);
    expect(execs[0]!.operation).toMatchObject({
      transport: 'spdy',
      exit_code: 5,
      stdout_bytes: 4,
      stderr_bytes: 4,
    });
    expect(String(execs[0]!.operation.asciicast)).toContain('"out\\n"');
    expect(execs[1]!.operation).toMatchObject({ transport: 'spdy', exit_code: 0, stdin_bytes: 11 });
  });

  it('exec -it under a pseudo-terminal (script)', async () => {
    const { s, kubeconfig } = await session();
    const p = spawn(
      'script',
      ['-qfec', `kubectl --kubeconfig ${kubeconfig} exec -it web -- cat`, '/dev/null'],
      {
        env: { PATH: process.env.PATH, HOME: h.dir, TERM: 'xterm' },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 1500));
    p.stdin!.write('typed text\r');
    const end = Date.now() + 5000;
    while (!out.includes('typed text') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    p.stdin!.write('\x04');
    const code = await new Promise<number>((r) => p.on('exit', (c) => r(c ?? -1)));
    expect(out).toContain('typed text');
    expect(code).toBe(0);
    const execs = await events(s, 'exec', 1);
    expect(execs[0]!.operation).toMatchObject({ tty: true, exit_code: 0 });
  });

  for (const [name, env] of [
    ['WebSocket tunnel', {}],
    ['SPDY', PF_SPDY],
  ] as const) {
    it(`port-forward over ${name}; a port the grant does not name is refused`, async () => {
      const { s, kubeconfig } = await session();
      const local = nextPort++;
      const pf = await portForward(kubeconfig, local, 8080, env);
      expect(pf.out()).toContain('Forwarding from');
      expect(await tcpRoundTrip(local, 'hello')).toBe('echo:hello');
      pf.p.kill();
      const denied = nextPort++;
      const bad = await portForward(kubeconfig, denied, 5432, env);
      await tcpRoundTrip(denied, 'x').catch(() => '');
      bad.p.kill();
      const evs = await events(s, 'portforward', 2);
      expect(evs.some((e) => e.decision === 'allow')).toBe(true);
      expect(evs.some((e) => e.decision === 'deny' && e.reasons[0]?.includes('port 5432'))).toBe(true);
    });
  }

  it('attach over WebSocket relays stdin to the container', async () => {
    const { s, kubeconfig } = await session();
    const r = await h.kubectl(kubeconfig, ['attach', '-i', 'web'], { input: 'attached input\n' });
    expect(r.stdout).toContain('attached input');
    const evs = await events(s, 'attach', 1);
    expect(evs[0]!.operation).toMatchObject({ verb: 'attach', transport: 'websocket', stdin_bytes: 15 });
  });

  it('a session gets max_streams_per_session live streams; one more is 429', async () => {
    const { kubeconfig } = await session();
    const watches = [0, 1, 2].map(() => h.spawnKubectl(kubeconfig, ['get', 'pods', '-w']));
    const end = Date.now() + 10_000;
    // wait until the three watches are open upstream
    while (h.api.openStreams() < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const fourth = await h.kubectl(kubeconfig, ['get', 'pods', '--watch-only', '--request-timeout=5s']);
    expect(fourth.code).not.toBe(0);
    expect(fourth.stderr).toMatch(/3 live streams/);
    for (const w of watches) w.kill();
  });

  it('revocation closes a running exec and a port-forward within a second', async () => {
    const { s, kubeconfig } = await session();
    const ex = h.spawnKubectl(kubeconfig, ['exec', 'web', '--', 'sleep', '30']);
    const local = nextPort++;
    const pf = await portForward(kubeconfig, local, 8080, {});
    expect(await tcpRoundTrip(local, 'before')).toBe('echo:before');
    await new Promise((r) => setTimeout(r, 300));
    const exExit = new Promise<number>((r) => ex.on('exit', (c) => r(c ?? -1)));
    const t0 = Date.now();
    await h.revoke(s);
    await exExit;
    expect(Date.now() - t0).toBeLessThan(1500);
    const after = await tcpRoundTrip(local, 'after').catch(() => '');
    expect(after).not.toBe('echo:after');
    pf.p.kill();
  });
});
