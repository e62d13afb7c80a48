// Kubernetes gateway benchmark: the added latency of the broker per request (a get; a list of 1,000
// objects; a masked Secret list) against the API server stand-in directly, a watch delivering 10,000
// events (passed through, and masked event by event), and the broker's CPU time per request.
//
//   npm run bench:k8s   (BENCH_REQUESTS=300 BENCH_EVENTS=10000)
import { fork } from 'node:child_process';
import { Agent, request } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { SessionCreated } from '../service/api/schemas.js';
import type { Config } from '../service/config/schema.js';
import { startKubeApiServer } from '../test/fixtures/kube-apiserver.js';
import { startOidcIssuer } from '../test/fixtures/oidc-issuer.js';

const here = dirname(fileURLToPath(import.meta.url));
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 300);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const AUD = 'https://hoop.bench';
const TOKEN = 'bench-upstream-token';

interface Endpoint {
  base: string;
  token: string;
  agent: Agent;
}

function get(e: Endpoint, path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${e.base}${path}`,
      { agent: e.agent, headers: { authorization: `Bearer ${e.token}`, accept: 'application/json' } },
      (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function timeRequests(
  e: Endpoint,
  path: string,
  n: number,
): Promise<{ p50: number; p95: number; mean: number; bytes: number }> {
  for (let i = 0; i < Math.min(20, n); i++) await get(e, path); // warm up
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await get(e, path);
    times.push(performance.now() - t);
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}`);
    bytes = r.bytes;
  }
  return { p50: pct(times, 50), p95: pct(times, 95), mean: times.reduce((a, b) => a + b, 0) / n, bytes };
}

function watchEvents(e: Endpoint, path: string, n: number, produce: () => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${e.base}${path}`,
      { agent: e.agent, headers: { authorization: `Bearer ${e.token}` } },
      (res) => {
        let seen = 0;
        let start = 0;
        let rest = '';
        res.on('data', (c: Buffer) => {
          const text = rest + c.toString('utf8');
          const lines = text.split('\n');
          rest = lines.pop() ?? '';
          for (const l of lines) {
            if (!l) continue;
            if (seen === 0) start = performance.now();
            seen++;
            if (seen === n) {
              resolve(performance.now() - start);
              req.destroy();
              return;
            }
          }
        });
        produce();
      },
    );
    req.on('error', (err) => (err.message.includes('socket hang up') ? undefined : reject(err)));
    req.end();
  });
}

async function main(): Promise<void> {
  const api = await startKubeApiServer({ tokens: { [TOKEN]: 'bench' } });
  const issuer = await startOidcIssuer({ audience: AUD });
  const dir = mkdtempSync(join(tmpdir(), 'hoop-bench-k8s-'));
  writeFileSync(join(dir, 'ca.pem'), api.caPem);
  api.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: { containers: [{ name: 'main', image: 'nginx' }] },
  });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bulk' } });
  for (let i = 0; i < 1000; i++)
    api.put({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `cm-${i}`, namespace: 'bulk', labels: { app: 'bench' } },
      data: { key: `value-${i}`, other: 'x'.repeat(100) },
    });
  for (let i = 0; i < 100; i++)
    api.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `s-${i}`, namespace: 'bulk' },
      stringData: { password: `p-${i}` },
    });

  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' }, kubernetes: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'bench',
        kind: 'kubernetes',
        server: api.url,
        ca_file: join(dir, 'ca.pem'),
        credentials: { token: { env: 'BENCH_K8S_TOKEN' } },
      },
    ],
    policies: [
      { name: 'bench', when: { ref: 'refs/heads/main' }, grants: [{ target: 'bench', access: 'write' }] },
    ],
  };
  const child = fork(join(here, 'k8s-broker.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, HOOP_BENCH_CONFIG: JSON.stringify(config), BENCH_K8S_TOKEN: TOKEN },
  });
  const ready = await new Promise<{ url: string; k8sPort: number; caPem: string }>((r) =>
    child.once('message', (m) => r(m as never)),
  );
  const cpu = () =>
    new Promise<NodeJS.CpuUsage>((r) => {
      child.once('message', (m) => r((m as { cpu: NodeJS.CpuUsage }).cpu));
      child.send('cpu');
    });
  const res = await fetch(`${ready.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ oidc_token: await issuer.mint({ ref: 'refs/heads/main' }) }),
  });
  const s = (await res.json()) as SessionCreated;
  const conn = s.targets[0]!.connection as { server: string };
  const direct: Endpoint = {
    base: api.url,
    token: TOKEN,
    agent: new Agent({ keepAlive: true, ca: api.caPem, maxSockets: 1 }),
  };
  const broker: Endpoint = {
    base: conn.server,
    token: s.secret,
    agent: new Agent({ keepAlive: true, ca: ready.caPem, maxSockets: 1 }),
  };

  const rows: string[] = [];
  const line = (
    name: string,
    d: { p50: number; p95: number; mean: number; bytes: number },
    b: { p50: number; p95: number; mean: number },
    cpuUs: number,
  ) =>
    rows.push(
      `${name.padEnd(34)} direct p50 ${d.p50.toFixed(2)} ms p95 ${d.p95.toFixed(2)} | broker p50 ${b.p50.toFixed(2)} ms p95 ${b.p95.toFixed(2)} | added p50 ${(b.p50 - d.p50).toFixed(2)} ms mean ${(b.mean - d.mean).toFixed(2)} ms | broker CPU ${(cpuUs / 1000).toFixed(2)} ms/request | ${(d.bytes / 1024).toFixed(0)} KiB`,
    );
  for (const [name, path, n] of [
    ['get pod', '/api/v1/namespaces/default/pods/web', REQUESTS],
    ['list 1,000 configmaps', '/api/v1/namespaces/bulk/configmaps', Math.max(20, Math.floor(REQUESTS / 5))],
    ['list 100 secrets (masked)', '/api/v1/namespaces/bulk/secrets', Math.max(20, Math.floor(REQUESTS / 2))],
  ] as const) {
    const d = await timeRequests(direct, path, n);
    const c0 = await cpu();
    const b = await timeRequests(broker, path, n);
    const c1 = await cpu();
    const used = c1.user - c0.user + (c1.system - c0.system);
    line(name, d, b, used / (n + Math.min(20, n)));
  }

  for (const [name, path, kind] of [
    ['watch pods (passed through)', '/api/v1/namespaces/default/pods?watch=true&resourceVersion=', 'Pod'],
    [
      'watch secrets (masked per event)',
      '/api/v1/namespaces/default/secrets?watch=true&resourceVersion=',
      'Secret',
    ],
  ] as const) {
    const produce = (tag: string) => () => {
      let i = 0;
      const burst = () => {
        for (let k = 0; k < 500 && i < EVENTS; k++, i++) {
          if (kind === 'Pod')
            api.put({
              apiVersion: 'v1',
              kind: 'Pod',
              metadata: { name: `w-${tag}-${i}`, namespace: 'default' },
              spec: { containers: [{ name: 'c', image: 'x' }] },
            });
          else
            api.put({
              apiVersion: 'v1',
              kind: 'Secret',
              metadata: { name: `w-${tag}-${i}`, namespace: 'default' },
              stringData: { v: `secret-${i}` },
            });
        }
        if (i < EVENTS) setImmediate(burst);
      };
      burst();
    };
    const dMs = await watchEvents(direct, path, EVENTS, produce('d'));
    const c0 = await cpu();
    const bMs = await watchEvents(broker, path, EVENTS, produce('b'));
    const c1 = await cpu();
    const used = c1.user - c0.user + (c1.system - c0.system);
    rows.push(
      `${name.padEnd(34)} ${EVENTS} events: direct ${dMs.toFixed(0)} ms (${Math.round(EVENTS / (dMs / 1000))}/s) | broker ${bMs.toFixed(0)} ms (${Math.round(EVENTS / (bMs / 1000))}/s) | broker CPU ${(used / EVENTS).toFixed(1)} µs/event`,
    );
  }

  console.log(`kubernetes gateway, ${REQUESTS} requests per case, one keep-alive connection, sequential`);
  for (const r of rows) console.log(r);
  child.send('close');
  await new Promise((r) => child.once('exit', r));
  direct.agent.destroy();
  broker.agent.destroy();
  await api.close();
  await issuer.close();
  rmSync(dir, { recursive: true, force: true });
}

await main();
