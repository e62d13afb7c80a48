// npm run bench:sessions — session-open latency (p50/p99) and throughput over HTTP, on the embedded
// store and on PostgreSQL, with the issuer's JWKS cached. Tokens are minted before timing starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../service/config/schema.js';
import { startBroker } from '../test/fixtures/broker.js';
import { startOidcIssuer } from '../test/fixtures/oidc-issuer.js';
import { startPostgres } from '../test/fixtures/postgres.js';

const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 1000);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main() {
  const issuer = await startOidcIssuer({ audience: 'https://hoop.bench' });
  const pg = await startPostgres();
  await pg.psql('CREATE DATABASE hoop_store');
  const results: string[] = [];
  try {
    for (const store of ['embedded', 'postgres'] as const) {
      const dataDir = mkdtempSync(join(tmpdir(), 'hoop-bench-'));
      const config: Config = {
        listen: { http: { port: 0, host: '127.0.0.1' } },
        data_dir: dataDir,
        ...(store === 'postgres' ? { store: { url: pg.url('hoop_store') } } : {}),
        issuers: [{ name: 'github', issuer: issuer.issuer, audience: 'https://hoop.bench' }],
        targets: [],
        policies: [{ name: 'bench', when: { repository: 'octo-org/octo-repo' }, grants: [] as never }],
        limits: { session_rate_per_minute: 1_000_000, sessions_per_repository: 1_000_000 },
      };
      // A policy needs at least one grant; the bench measures the exchange itself, so grant a target.
      config.targets = [
        {
          name: 'db',
          kind: 'postgres',
          host: '127.0.0.1',
          port: pg.port,
          database: 'postgres',
          user: 'postgres',
          password: { env: 'BENCH_PG_PASSWORD' },
        },
      ];
      config.policies[0]!.grants = [{ target: 'db', access: 'read' }];
      const jwksBefore = issuer.requestCount;
      const broker = await startBroker({ config, env: { BENCH_PG_PASSWORD: pg.password } });
      const tokens = await Promise.all(
        Array.from({ length: SEQUENTIAL + CONCURRENT + 20 }, () => issuer.mint()),
      );
      const open = async (token: string) => {
        const t0 = performance.now();
        const res = await fetch(`${broker.url}/v1/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ oidc_token: token }),
        });
        await res.arrayBuffer();
        if (res.status !== 201) throw new Error(`session open failed: HTTP ${res.status}`);
        return performance.now() - t0;
      };
      for (let i = 0; i < 20; i++) await open(tokens.pop()!); // warm-up: JWKS fetched and cached
      const lat: number[] = [];
      for (let i = 0; i < SEQUENTIAL; i++) lat.push(await open(tokens.pop()!));
      lat.sort((a, b) => a - b);
      const t0 = performance.now();
      const queue = tokens.splice(0, CONCURRENT);
      const clat: number[] = [];
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (let t = queue.pop(); t; t = queue.pop()) clat.push(await open(t));
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      clat.sort((a, b) => a - b);
      results.push(
        `${store.padEnd(9)} sequential n=${SEQUENTIAL}: p50 ${pct(lat, 50).toFixed(2)} ms  p99 ${pct(lat, 99).toFixed(2)} ms` +
          ` | c=${CONCURRENCY} n=${CONCURRENT}: ${(CONCURRENT / secs).toFixed(0)} sessions/s  p50 ${pct(clat, 50).toFixed(2)} ms  p99 ${pct(clat, 99).toFixed(2)} ms` +
          ` | JWKS fetches ${issuer.requestCount - jwksBefore}`,
      );
      await broker.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  } finally {
    await issuer.close();
    await pg.stop();
  }
  console.log(
    'session open over HTTP (POST /v1/sessions, token verify + policy + SCRAM verifier + durable write):',
  );
  for (const r of results) console.log(`  ${r}`);
  console.log('targets: p50 < 10 ms, p99 < 30 ms');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
