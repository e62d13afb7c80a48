// npm run soak — bounded soak of one broker process (`hoop-broker serve`, embedded store, the default
// deployment): SOAK_CONNECTIONS (200) concurrent proxied PostgreSQL connections across SOAK_SESSIONS
// (20) sessions for SOAK_SECONDS (300), each connection running a masked read every SOAK_INTERVAL_MS
// (100). Checks at the end, from the broker's own API: every statement a client saw answered has its
// pg.statement event, every connection its opened and closed events, every chain verifies (nothing
// lost); and the broker's RSS (its process + the embedded store's) over the run is flat: the mean of
// the last minute within SOAK_RSS_GROWTH (15%) of the mean of the second minute (the first is warm-up).
// Exit 1 when either fails. Prints one JSON line with the figures.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startBrokerProcess } from '../test/fixtures/broker-process.js';
import { startOidcIssuer } from '../test/fixtures/oidc-issuer.js';
import { freePort, startPostgres } from '../test/fixtures/postgres.js';

const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 200);
const SESSIONS = Number(process.env.SOAK_SESSIONS ?? 20);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 300);
const INTERVAL_MS = Number(process.env.SOAK_INTERVAL_MS ?? 100);
const RSS_GROWTH = Number(process.env.SOAK_RSS_GROWTH ?? 0.15);
const AUD = 'https://hoop.soak';
const ADMIN = `soak-admin-${Math.random().toString(36).slice(2)}-0123456789`;
const DB_PASSWORD = `soak-${Math.random().toString(36).slice(2)}`;

/** RSS (bytes) of a process and its children (the embedded store's process), from /proc. */
function treeRss(pid: number): number {
  const rss = (p: number): number => {
    try {
      return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      return 0;
    }
  };
  let total = rss(pid);
  try {
    for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(' ')
      .filter(Boolean))
      total += rss(Number(c));
  } catch {
    // not Linux
  }
  return total;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-soak-'));
  const [issuer, db] = await Promise.all([
    startOidcIssuer({ audience: AUD }),
    startPostgres({ settings: { max_connections: CONNECTIONS + 50 } }),
  ]);
  const load0 = loadavg();
  let failed: boolean;
  try {
    await db.psql(`CREATE ROLE soak LOGIN PASSWORD '${DB_PASSWORD}'`);
    await db.psql('CREATE DATABASE soak OWNER soak');
    await db.psql(
      `SET ROLE soak; CREATE TABLE customers AS SELECT g AS id, 'user' || g || '@example.com' AS email, g * 10 AS total
         FROM generate_series(1, 10000) g; ALTER TABLE customers ADD PRIMARY KEY (id);`,
      'soak',
    );
    const broker = await startBrokerProcess({
      dir,
      name: 'soak',
      config: {
        listen: {
          http: { port: await freePort(), host: '127.0.0.1' },
          postgres: { port: await freePort(), host: '127.0.0.1' },
        },
        data_dir: join(dir, 'data'),
        log: { level: 'warn' },
        issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
        targets: [
          {
            name: 'shop',
            kind: 'postgres',
            host: '127.0.0.1',
            port: db.port,
            database: 'soak',
            user: 'soak',
            password: { env: 'SOAK_DB_PASSWORD' },
            tls: { mode: 'disable' },
            max_connections_per_session: Math.ceil(CONNECTIONS / SESSIONS),
          },
        ],
        policies: [
          {
            name: 'soak',
            when: { event_name: 'pull_request' },
            ttl: '1h',
            grants: [{ target: 'shop', access: 'read', mask: [{ column: 'customers.email' }] }],
          },
        ],
        admin: { tokens: [{ name: 'ops', token: { env: 'SOAK_ADMIN' } }] },
        limits: {
          session_rate_per_minute: 10_000,
          upstream_connections_per_target: CONNECTIONS + 10,
        },
      },
      env: { SOAK_DB_PASSWORD: DB_PASSWORD, SOAK_ADMIN: ADMIN },
      timeoutMs: 120_000,
    });
    const pid = broker.child.pid!;
    try {
      const sessions: { id: string; secret: string }[] = [];
      for (let i = 0; i < SESSIONS; i++) {
        const res = await fetch(`${broker.url}/v1/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            oidc_token: await issuer.mint({ event_name: 'pull_request', run_id: String(1000 + i) }),
          }),
        });
        if (res.status !== 201) throw new Error(`session ${i}: HTTP ${res.status} ${await res.text()}`);
        sessions.push((await res.json()) as { id: string; secret: string });
      }
      const answered = new Map<string, number>(sessions.map((s) => [s.id, 0]));
      const errors: string[] = [];
      const clients: { c: pg.Client; session: string }[] = [];
      for (let i = 0; i < CONNECTIONS; i++) {
        const s = sessions[i % SESSIONS]!;
        const c = new pg.Client({
          host: '127.0.0.1',
          port: broker.pgPort,
          user: s.id,
          password: s.secret,
          database: 'shop',
          ssl: false,
          connectionTimeoutMillis: 30_000,
        });
        c.on('error', (e) => errors.push(e.message));
        await c.connect();
        clients.push({ c, session: s.id });
      }
      console.log(
        `soak: ${CONNECTIONS} connections open across ${SESSIONS} sessions; running ${SECONDS} s, one statement per connection every ${INTERVAL_MS} ms`,
      );
      const rss: { t: number; bytes: number }[] = [];
      const t0 = performance.now();
      const sampler = setInterval(() => {
        rss.push({ t: (performance.now() - t0) / 1000, bytes: treeRss(pid) });
      }, 5000);
      const end = t0 + SECONDS * 1000;
      let masked = true;
      await Promise.all(
        clients.map(async ({ c, session }, i) => {
          // spread the connections over the interval
          await new Promise((r) => setTimeout(r, (i * INTERVAL_MS) / CONNECTIONS));
          let k = i;
          while (performance.now() < end) {
            const started = performance.now();
            try {
              const id = (k++ % 10000) + 1;
              const r = await c.query(
                k % 2
                  ? 'SELECT id, email, total FROM customers WHERE id = $1'
                  : `SELECT id, email, total FROM customers WHERE id = ${id}`,
                k % 2 ? [id] : undefined,
              );
              if (r.rows[0]?.email === `user${id}@example.com`) masked = false;
              answered.set(session, answered.get(session)! + 1);
            } catch (e) {
              errors.push((e as Error).message);
              return;
            }
            const wait = INTERVAL_MS - (performance.now() - started);
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
        }),
      );
      clearInterval(sampler);
      const elapsed = (performance.now() - t0) / 1000;
      const load1 = loadavg();
      await Promise.all(clients.map(({ c }) => c.end().catch(() => undefined)));
      // the closing events are recorded in the background (50 ms window)
      await new Promise((r) => setTimeout(r, 1500));
      let recorded = 0;
      let lost = 0;
      let opened = 0;
      let closed = 0;
      let chains = 0;
      for (const s of sessions) {
        const t = (await (
          await fetch(`${broker.url}/v1/sessions/${s.id}/transcript`, {
            headers: { authorization: `Bearer ${ADMIN}` },
          })
        ).json()) as { events: { kind: string }[]; chain_verified: boolean };
        const n = t.events.filter((e) => e.kind === 'pg.statement').length;
        recorded += n;
        lost += Math.max(0, answered.get(s.id)! - n);
        opened += t.events.filter((e) => e.kind === 'pg.connection.opened').length;
        closed += t.events.filter((e) => e.kind === 'pg.connection.closed').length;
        if (t.chain_verified) chains++;
      }
      const total = [...answered.values()].reduce((a, b) => a + b, 0);
      const minute = (from: number, to: number) =>
        mean(rss.filter((x) => x.t >= from && x.t < to).map((x) => x.bytes)) / 1048576;
      const second = minute(60, 120);
      const last = minute(Math.max(0, elapsed - 60), elapsed + 1);
      const growth = second > 0 ? (last - second) / second : 0;
      const peak = Math.max(...rss.map((x) => x.bytes)) / 1048576;
      const summary = {
        connections: CONNECTIONS,
        sessions: SESSIONS,
        seconds: Math.round(elapsed),
        statements_answered: total,
        statements_per_second: Math.round(total / elapsed),
        statements_recorded: recorded,
        lost,
        connections_opened_recorded: opened,
        connections_closed_recorded: closed,
        chains_verified: `${chains}/${SESSIONS}`,
        masked,
        client_errors: errors.length,
        rss_mb_second_minute: Math.round(second),
        rss_mb_last_minute: Math.round(last),
        rss_mb_peak: Math.round(peak),
        rss_growth: Number(growth.toFixed(3)),
        load_average_start: load0.map((x) => Number(x.toFixed(2))),
        load_average_end: load1.map((x) => Number(x.toFixed(2))),
      };
      console.log(
        `soak: ${total} statements answered (${summary.statements_per_second}/s), ${recorded} recorded, ${lost} lost; ` +
          `connections opened/closed recorded ${opened}/${closed} of ${CONNECTIONS}; chains ${summary.chains_verified}; ` +
          `masking ${masked ? 'held' : 'FAILED'}; client errors ${errors.length}${errors.length ? ` (first: ${errors[0]})` : ''}; ` +
          `broker+store RSS ${summary.rss_mb_second_minute} MB (2nd minute) → ${summary.rss_mb_last_minute} MB (last minute), ` +
          `peak ${summary.rss_mb_peak} MB, growth ${(growth * 100).toFixed(1)}%; load average ${load1.map((x) => x.toFixed(2)).join(' ')}`,
      );
      console.log(JSON.stringify(summary));
      failed =
        lost > 0 ||
        !masked ||
        errors.length > 0 ||
        opened !== CONNECTIONS ||
        closed !== CONNECTIONS ||
        chains !== SESSIONS ||
        (elapsed >= 180 && growth > RSS_GROWTH);
    } finally {
      await broker.kill('SIGTERM');
    }
  } finally {
    await Promise.all([issuer.close(), db.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
  if (failed) {
    console.error('soak: FAILED (see the line above)');
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
