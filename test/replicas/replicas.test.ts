// Three broker processes on one real PostgreSQL store: a revocation on one replica closes a live
// connection on another within a second (LISTEN/NOTIFY), and still within the sweep when the
// notification is missed; a replica killed mid-session leaves `pg.connection.lost` with the last
// recorded seq in the transcript; the session rate limit is counted across replicas; replicas with
// different CAs refuse to start.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCa, issueServerCert } from '../../service/tls/ca.js';
import { type BrokerProcess, startBrokerProcess } from '../fixtures/broker-process.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { freePort, type PgServer, startPostgres } from '../fixtures/postgres.js';

const AUD = 'https://hoop.replicas.test';
const ADMIN = 'replicas-admin-token-0123456789abcd';
const DB_PASSWORD = 'replica-upstream-pw-9f8e7d';

let issuer: OidcIssuer;
let db: PgServer;
let dir: string;
let caPem: string;
const brokers: BrokerProcess[] = [];
let A: BrokerProcess;
let B: BrokerProcess;
let C: BrokerProcess;

function config(name: string, httpPort: number, pgPort: number, extra: Record<string, unknown> = {}) {
  return {
    listen: { http: { port: httpPort, host: '127.0.0.1' }, postgres: { port: pgPort, host: '127.0.0.1' } },
    data_dir: join(dir, name),
    store: { url: { env: 'REPLICA_STORE_URL' } },
    tls: {
      cert_file: join(dir, 'server.pem'),
      key_file: join(dir, 'server.key'),
      ca_file: join(dir, 'ca.pem'),
    },
    log: { level: 'info' },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'orders-db',
        kind: 'postgres',
        host: '127.0.0.1',
        port: db.port,
        database: 'orders',
        user: 'ci_reader',
        password: { env: 'REPLICA_DB_PASSWORD' },
        tls: { mode: 'disable' },
      },
    ],
    policies: [
      {
        name: 'prs',
        when: { event_name: 'pull_request' },
        grants: [{ target: 'orders-db', access: 'read' }],
      },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'REPLICA_ADMIN' } }] },
    limits: { session_rate_per_minute: 40 },
    replicas: { heartbeat: '1s', revocation_sweep: '1s' },
    ...extra,
  };
}

const env = () => ({
  REPLICA_STORE_URL: db.url('hoop_store'),
  REPLICA_DB_PASSWORD: DB_PASSWORD,
  REPLICA_ADMIN: ADMIN,
});

async function startReplica(name: string, extra: Record<string, unknown> = {}): Promise<BrokerProcess> {
  const b = await startBrokerProcess({
    dir,
    name,
    config: config(name, await freePort(), await freePort(), extra),
    env: env(),
  });
  brokers.push(b);
  return b;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-replicas-'));
  [issuer, db] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
  await db.psql(`CREATE ROLE ci_reader LOGIN PASSWORD '${DB_PASSWORD}'`);
  await db.psql('CREATE DATABASE orders OWNER ci_reader');
  await db.psql('CREATE DATABASE hoop_store');
  await db.psql(
    'SET ROLE ci_reader; CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 10);',
    'orders',
  );
  const now = new Date();
  const ca = await generateCa('hoop replicas test CA', now);
  const server = await issueServerCert(ca, ['127.0.0.1', 'localhost'], now);
  caPem = ca.certPem;
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'server.pem'), server.certPem);
  writeFileSync(join(dir, 'server.key'), server.keyPem, { mode: 0o600 });
  // one at a time: the first migrates the store and records the CA
  A = await startReplica('a');
  [B, C] = await Promise.all([startReplica('b'), startReplica('c')]);
}, 120_000);

afterAll(async () => {
  await Promise.all(brokers.map((b) => b.kill('SIGKILL')));
  await Promise.all([issuer?.close(), db?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function openSession(at: BrokerProcess): Promise<{ id: string; secret: string }> {
  const res = await fetch(`${at.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ oidc_token: await issuer.mint({ event_name: 'pull_request' }) }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string };
}

async function connectVia(b: BrokerProcess, s: { id: string; secret: string }): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: b.pgPort,
    user: s.id,
    password: s.secret,
    database: 'orders-db',
    ssl: { ca: caPem },
    connectionTimeoutMillis: 10_000,
  });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** ms from now until the client's connection ends */
function whenClosed(c: pg.Client): Promise<number> {
  const t0 = performance.now();
  return new Promise((r) => {
    const conn = (c as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection;
    conn.stream.once('close', () => r(performance.now() - t0));
  });
}

const revoke = (at: BrokerProcess, id: string) =>
  fetch(`${at.url}/v1/sessions/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });

const transcript = async (at: BrokerProcess, id: string) =>
  (
    (await (
      await fetch(`${at.url}/v1/sessions/${id}/transcript`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as {
      events: { seq: number; kind: string; operation: Record<string, unknown> }[];
      chain_verified: boolean;
    }
  ).events;

describe('replicas on one PostgreSQL store', () => {
  it('a revocation on A closes a live connection on B within a second', async () => {
    const s = await openSession(A);
    const onB = await connectVia(B, s);
    expect((await onB.query('SELECT count(*)::int AS n FROM orders')).rows[0]).toEqual({ n: 10 });
    const closed = whenClosed(onB);
    const t0 = performance.now();
    expect((await revoke(A, s.id)).status).toBe(200);
    const ms = await closed;
    const total = performance.now() - t0;
    console.log(`cross-replica revocation: connection on B closed ${Math.round(total)} ms after DELETE on A`);
    expect(total).toBeLessThan(1000);
    await expect(onB.query('SELECT 1')).rejects.toThrow();
    expect(ms).toBeGreaterThanOrEqual(0);
    // the transcript ends with the revocation (A's), written before B closed its connection
    expect((await transcript(A, s.id)).at(-1)!.kind).toBe('session.revoked');
  }, 30_000);

  it('a missed notification (LISTEN connections killed) is caught by the sweep', async () => {
    const s = await openSession(A);
    const onB = await connectVia(B, s);
    await onB.query('SELECT 1');
    const closed = whenClosed(onB);
    const killed = await db.psql(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'hoop-broker listen'",
    );
    expect(Number(killed.trim())).toBeGreaterThanOrEqual(3);
    const t0 = performance.now();
    expect((await revoke(A, s.id)).status).toBe(200);
    await closed;
    const total = performance.now() - t0;
    console.log(`cross-replica revocation without LISTEN: closed after ${Math.round(total)} ms (sweep 1 s)`);
    expect(total).toBeLessThan(4000);
    const metrics = await (await fetch(`${B.url}/metrics`)).text();
    console.log(
      metrics
        .split('\n')
        .filter((l) => l.startsWith('hoop_remote_session_ends_total'))
        .join('\n'),
    );
    expect(metrics).toMatch(/hoop_remote_session_ends_total\{via="sweep"\} [1-9]/);
  }, 30_000);

  it('a replica killed mid-session leaves pg.connection.lost with the last recorded seq', async () => {
    const s = await openSession(A);
    const onC = await connectVia(C, s);
    await onC.query('SELECT count(*) FROM orders');
    await new Promise((r) => setTimeout(r, 300)); // the statement's event commits (50 ms window)
    const before = await transcript(A, s.id);
    const stmt = before.filter((e) => e.kind === 'pg.statement').at(-1)!;
    expect(stmt).toBeDefined();
    await C.kill('SIGKILL');
    const lost = await (async () => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const ev = (await transcript(A, s.id)).find((e) => e.kind === 'pg.connection.lost');
        if (ev) return ev;
        if (Date.now() > deadline) throw new Error('no pg.connection.lost within 15 s');
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    expect(lost.operation).toMatchObject({ conn_id: stmt.operation.conn_id, last_seq: stmt.seq });
    // and the session goes on through the other replicas
    const onB = await connectVia(B, s);
    expect((await onB.query('SELECT 1 AS x')).rows[0]).toEqual({ x: 1 });
    await onB.end();
    // the transcript still verifies, gap marked
    const res = await fetch(`${A.url}/v1/sessions/${s.id}/transcript`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(((await res.json()) as { chain_verified: boolean }).chain_verified).toBe(true);
  }, 40_000);

  it('the session rate limit is counted across replicas', async () => {
    // a fresh window: the limit (40/min) counts requests from this client address on every replica
    const post = (b: BrokerProcess) =>
      fetch(`${b.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ oidc_token: 'x'.repeat(600) }),
      }).then((r) => r.status);
    const statuses: number[] = [];
    for (let i = 0; i < 45; i++) statuses.push(await post([A, B][i % 2]!));
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    // neither replica saw more than 23 of them: only a shared count gets to 429
    expect(statuses.slice(0, 30).every((s) => s !== 429)).toBe(true);
  }, 30_000);

  it('a replica with its own CA refuses to start on a store whose replicas hand out another', async () => {
    const cfg = config('d', await freePort(), await freePort());
    delete (cfg as { tls?: unknown }).tls; // a generated CA of its own
    await expect(startBrokerProcess({ dir, name: 'd', config: cfg, env: env() })).rejects.toThrow(
      /hand out CA .* give every replica the same certificate by reference/,
    );
  }, 60_000);
});
