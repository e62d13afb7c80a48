// Graceful shutdown of a broker process on SIGTERM: /readyz turns 503, new gateway connections are
// refused, a statement already running finishes and its client gets the rows, a client still connected
// at the end of shutdown_grace is closed (recorded as closed by "broker shutdown", read back from the
// data_dir by the next start), the process exits 0.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BrokerProcess, startBrokerProcess } from '../fixtures/broker-process.js';
import { githubIssuer, loopbackListen, pgTarget } from '../fixtures/config.js';
import { openSession } from '../fixtures/sessions.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { freePort, type PgServer, startPostgres } from '../fixtures/postgres.js';

const AUD = 'https://hoop.shutdown.test';
const PW = 'shutdown-upstream-pw-1a2b3c';
const ADMIN = 'shutdown-admin-token-0123456789abcdef';
let issuer: OidcIssuer;
let db: PgServer;
let dir: string;
let broker: BrokerProcess | null = null;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-shutdown-'));
  [issuer, db] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
  await db.psql(`CREATE ROLE ci LOGIN PASSWORD '${PW}'`);
  await db.psql('CREATE DATABASE app OWNER ci');
}, 60_000);
afterAll(async () => {
  await broker?.kill('SIGKILL');
  await Promise.all([issuer?.close(), db?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

it('SIGTERM: stops accepting, lets the running statement finish, closes the rest at the grace, exits 0', async () => {
  const pgPort = await freePort();
  const config = {
    listen: loopbackListen({ http: await freePort(), postgres: pgPort }),
    data_dir: join(dir, 'data'),
    shutdown_grace: '3s',
    issuers: githubIssuer(issuer, AUD),
    targets: [
      pgTarget({ name: 'app', port: db.port, database: 'app', user: 'ci', passwordEnv: 'SHUTDOWN_PW' }),
    ],
    policies: [
      { name: 'all', when: { event_name: 'pull_request' }, grants: [{ target: 'app', access: 'write' }] },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'SHUTDOWN_ADMIN' } }] },
  };
  const env = { SHUTDOWN_PW: PW, SHUTDOWN_ADMIN: ADMIN };
  broker = await startBrokerProcess({ dir, name: 'broker', env, config });
  const s = await openSession(broker.url, issuer, { event_name: 'pull_request' });
  const client = () => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: pgPort,
      user: s.id,
      password: s.secret,
      database: 'app',
      ssl: { ca: s.ca_pem },
    });
    c.on('error', () => undefined);
    return c;
  };
  const busy = client();
  const idle = client();
  await Promise.all([busy.connect(), idle.connect()]);
  const t0 = performance.now();
  const running = busy.query('SELECT pg_sleep(1.2), 42 AS answer');
  await new Promise((r) => setTimeout(r, 200));
  broker.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  // draining: not ready, no new connections
  expect((await fetch(`${broker.url}/readyz`)).status).toBe(503);
  await expect(client().connect()).rejects.toThrow();
  // the running statement completes
  expect((await running).rows[0]).toMatchObject({ answer: 42 });
  await busy.end();
  // the idle client is closed at the grace; the process exits 0
  const idleClosed = new Promise<number>((r) =>
    (idle as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream.once('close', () =>
      r(performance.now() - t0),
    ),
  );
  const closedAt = await idleClosed;
  expect(closedAt).toBeGreaterThan(2500);
  expect(await broker.exited).toEqual({ code: 0, signal: null });
  expect(performance.now() - t0).toBeLessThan(8000);
  const msgs = broker.logs.map((l) => l.msg);
  expect(msgs).toContain('shutting down: not accepting connections, waiting for clients to finish');
  expect(msgs).toContain('shutting down: closing');
  const closing = broker.logs.find((l) => l.msg === 'shutting down: closing')!;
  expect(closing.still_open).toBe(1);
  // recorded: the statement that finished during the drain, the idle connection closed by the shutdown
  // (read back from the same data_dir by the next start)
  broker = await startBrokerProcess({ dir, name: 'broker', env, config });
  const t = (await (
    await fetch(`${broker.url}/v1/sessions/${s.id}/transcript`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    })
  ).json()) as { events: { kind: string; operation: Record<string, unknown> }[]; chain_verified: boolean };
  expect(t.chain_verified).toBe(true);
  const stmt = t.events.find(
    (e) => e.kind === 'pg.statement' && String(e.operation.statement).includes('pg_sleep'),
  );
  expect(stmt).toBeDefined();
  const closes = t.events.filter((e) => e.kind === 'pg.connection.closed').map((e) => e.operation.reason);
  expect(closes).toContain('broker shutdown');
  expect(closes.filter((r) => r === 'broker shutdown')).toHaveLength(1);
}, 90_000);
