// Store micro-benchmark: p50/p99 of openSession, appendEvents(1) and appendEvents(50), one call at a time,
// plus openSession throughput with 8 callers, on the embedded store (on disk, durable; and in memory) and on
// PostgreSQL (a local server started here, with fsync on as in production, and off as in the tests).
// Run: npx tsx bench/store-latency.mjs [iterations=300]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSecret, makeScramVerifier, newSessionId, newSessionSecret } from '../service/sessions/secret.ts';
import { openEmbeddedStore } from '../service/store/embedded.ts';
import { openPostgresStore } from '../service/store/postgres.ts';
import { startPostgres } from '../test/fixtures/postgres.ts';

const N = Number(process.argv[2] ?? 300);

function session() {
  const now = new Date();
  return {
    id: newSessionId(),
    secret_hash: hashSecret(newSessionSecret()),
    scram_verifier: makeScramVerifier(newSessionSecret(), 16),
    issuer: 'github',
    identity: {
      repository: 'octo/app',
      repository_id: '123456',
      run_id: '42',
      actor: 'mona',
      ref: 'refs/heads/main',
    },
    claims: {
      iss: 'https://token.actions.githubusercontent.com',
      sub: 'repo:octo/app:ref:refs/heads/main',
      jti: 'x',
    },
    policy: 'main-write',
    grants: [{ target: 'orders-db', access: 'write', mask: [{ column: 'customers.email' }] }],
    ssh_public_key: null,
    created_at: now,
    expires_at: new Date(now.getTime() + 15 * 60_000),
    ended_at: null,
    end_reason: null,
  };
}
const opened = (s) => ({
  target: null,
  kind: 'session.opened',
  operation: { identity: s.identity, policy: s.policy, grants: s.grants },
  decision: 'info',
  reasons: [],
});
let tokens = 0;
const token = () => ({ key: `bench|${process.pid}|${++tokens}`, expires_at: new Date(Date.now() + 300_000) });
const statement = (i) => ({
  target: 'orders-db',
  kind: 'pg.statement',
  operation: { sql: `select * from orders where id = ${i}`, tag: 'SELECT 1' },
  decision: 'allow',
  reasons: [],
  rows: 1,
  duration_ms: 0.42,
});

function pct(samples, p) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
async function time(n, fn) {
  // warm-up: prepared statements, caches, and WebAssembly tier-up (PGlite runs slower for its first calls)
  for (let i = 0; i < 100; i++) await fn(n + i);
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    samples.push(performance.now() - t);
  }
  return `p50 ${pct(samples, 50).toFixed(2)} ms  p99 ${pct(samples, 99).toFixed(2)} ms`;
}

async function bench(label, store) {
  await store.migrate();
  const s = session();
  await store.openSession(s, opened(s), token());
  const pre = Array.from({ length: N + 100 }, session);
  let k = 0;
  const rows = [
    [
      'openSession',
      await time(N, async () => {
        const x = pre[k++];
        await store.openSession(x, opened(x), token());
      }),
    ],
    ['appendEvents(1)', await time(N, (i) => store.appendEvents(s.id, [statement(i)]))],
    [
      'appendEvents(50)',
      await time(Math.max(20, N / 3), (i) =>
        store.appendEvents(
          s.id,
          Array.from({ length: 50 }, (_, j) => statement(i * 50 + j)),
        ),
      ),
    ],
  ];
  const many = Array.from({ length: N }, session);
  const t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < many.length) {
        const x = many[next++];
        await store.openSession(x, opened(x), token());
      }
    }),
  );
  rows.push(['openSession x8 callers', `${Math.round(N / ((performance.now() - t) / 1000))} sessions/s`]);
  console.log(`\n${label}`);
  for (const [name, figures] of rows) console.log(`  ${name.padEnd(24)} ${figures}`);
  await store.close();
}

const dir = mkdtempSync(join(tmpdir(), 'hoop-bench-store-'));
try {
  await bench('embedded, on disk (fsync on every commit)', await openEmbeddedStore(dir));
  await bench('embedded, in memory', await openEmbeddedStore(null));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const durable of [true, false]) {
  const server = await startPostgres(
    durable ? { settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' } } : {},
  );
  try {
    await server.psql('CREATE DATABASE bench');
    const label = durable
      ? 'PostgreSQL 15, local, fsync on'
      : 'PostgreSQL 15, local, fsync off (test fixture)';
    await bench(label, await openPostgresStore(server.url('bench'), { poolSize: 8 }));
  } finally {
    await server.stop();
  }
}
