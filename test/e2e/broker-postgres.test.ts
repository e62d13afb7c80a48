// The whole broker end to end: OIDC token → session over HTTP → real psql through the PostgreSQL
// gateway to a real PostgreSQL → policy, masking, transcript → revocation closes the live connection.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionCreated, Transcript } from '../../service/api/schemas.js';
import type { Config } from '../../service/config/schema.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { githubIssuer, loopbackListen, pgTarget } from '../fixtures/config.js';
import { openSession as openSessionAt } from '../fixtures/sessions.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';

const run = promisify(execFile);
const AUD = 'https://hoop.e2e';
const DB_PASSWORD = 'upstream-Pa55word-never-shown';

let issuer: OidcIssuer;
let db: PgServer;
let broker: TestBroker;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-e2e-'));
  [issuer, db] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
  await db.psql(`CREATE ROLE ci_migrator LOGIN PASSWORD '${DB_PASSWORD}'`);
  await db.psql('CREATE DATABASE orders OWNER ci_migrator');
  await db.psql(
    `SET ROLE ci_migrator;
     CREATE TABLE customers (id int primary key, name text, email text, card text);
     INSERT INTO customers SELECT g, 'name ' || g, 'user' || g || '@example.com', '4111 1111 1111 1111' FROM generate_series(1, 50) g;`,
    'orders',
  );
  const config: Config = {
    listen: loopbackListen(),
    issuers: githubIssuer(issuer, AUD),
    targets: [
      pgTarget({
        name: 'orders-db',
        port: db.port,
        database: 'orders',
        user: 'ci_migrator',
        passwordEnv: 'E2E_DB_PASSWORD',
      }),
    ],
    policies: [
      {
        name: 'pr-read',
        when: { event_name: 'pull_request' },
        grants: [
          {
            target: 'orders-db',
            access: 'read',
            mask: [{ column: 'customers.email' }, { detector: 'credit_card' }],
          },
        ],
      },
      {
        name: 'main-write',
        when: { ref: 'refs/heads/main' },
        grants: [{ target: 'orders-db', access: 'write', deny: [{ statement: ['DROP'] }] }],
      },
    ],
  };
  broker = await startBroker({ config, env: { E2E_DB_PASSWORD: DB_PASSWORD } });
});

afterAll(async () => {
  await broker?.close();
  await Promise.all([issuer?.close(), db?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function openSession(claims: Record<string, string>, ttl?: string): Promise<SessionCreated> {
  return openSessionAt(broker.url, issuer, claims, ttl ? { ttl } : {});
}

function pgEnv(s: SessionCreated): NodeJS.ProcessEnv {
  const ca = join(dir, `${s.id}.pem`);
  writeFileSync(ca, s.ca_pem!);
  const c = s.targets[0]!.connection as { host: string; port: number; database: string; user: string };
  return {
    PATH: process.env.PATH,
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGUSER: c.user,
    PGPASSWORD: s.secret,
    PGDATABASE: c.database,
    PGSSLMODE: 'verify-full',
    PGSSLROOTCERT: ca,
    PGCONNECT_TIMEOUT: '5',
  };
}

async function psql(env: NodeJS.ProcessEnv, ...args: string[]) {
  try {
    const r = await run('psql', ['-X', '-At', ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function transcript(s: SessionCreated): Promise<Transcript> {
  const res = await fetch(`${broker.url}/v1/sessions/${s.id}/transcript`, {
    headers: { authorization: `Bearer ${s.secret}` },
  });
  return (await res.json()) as Transcript;
}

describe('broker end to end with psql', () => {
  it('read session: masked results, writes refused, every statement in the hash-chained transcript', async () => {
    const s = await openSession({ event_name: 'pull_request' });
    const env = pgEnv(s);
    const r = await psql(env, '-c', 'select id, email, card from customers order by id limit 2');
    expect(r.stderr).toBe('');
    const rows = r.stdout.trim().split('\n');
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      const [id, email, card] = row.split('|');
      expect(id).toMatch(/^[12]$/);
      expect(email).not.toContain('@example.com');
      expect(card).not.toContain('4111 1111 1111 1111');
    }
    const del = await psql(
      env,
      '-v',
      'ON_ERROR_STOP=0',
      '-c',
      'delete from customers',
      '-c',
      'select count(*) from customers',
    );
    expect(del.stderr).toContain('ERROR');
    expect(del.stdout.trim()).toBe('50');

    const t = await transcript(s);
    expect(t.chain_verified).toBe(true);
    const kinds = t.events.map((e) => e.kind);
    expect(kinds[0]).toBe('session.opened');
    expect(kinds).toContain('pg.connection.opened');
    const stmt = t.events.find(
      (e) =>
        e.kind === 'pg.statement' && String(e.operation.statement).includes('from customers order by id'),
    );
    expect(stmt).toMatchObject({ target: 'orders-db', decision: 'allow', rows: 2 });
    expect(stmt!.masked).toBeGreaterThanOrEqual(4);
    const denied = t.events.find((e) => e.kind === 'pg.denied');
    expect(denied).toMatchObject({ decision: 'deny', target: 'orders-db' });
    expect(String(denied!.operation.statement)).toContain('delete from customers');
    // result data is never recorded, nor the upstream password
    const text = JSON.stringify(t);
    expect(text).not.toContain('@example.com');
    expect(text).not.toContain(DB_PASSWORD);
  });

  it('write session: DML allowed, a denied statement kind refused, password literals redacted in the transcript', async () => {
    const s = await openSession({ ref: 'refs/heads/main' });
    const env = pgEnv(s);
    const ok = await psql(env, '-v', 'ON_ERROR_STOP=1', '-c', "update customers set name = 'x' where id = 1");
    expect(ok.code).toBe(0);
    const drop = await psql(env, '-c', 'drop table customers');
    expect(drop.code).not.toBe(0);
    expect(drop.stderr).toContain('DROP');
    await psql(env, '-c', "alter role ci_migrator password 'new-secret-pw'");
    const t = await transcript(s);
    expect(JSON.stringify(t)).not.toContain('new-secret-pw');
    expect((await db.psql('select count(*) from customers', 'orders')).trim()).toBe('50');
  });

  it('wrong secret, unknown session and ungranted database are refused at login', async () => {
    const s = await openSession({ event_name: 'pull_request' });
    const bad = await psql({ ...pgEnv(s), PGPASSWORD: `${s.secret}x` }, '-c', 'select 1');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('password authentication failed');
    const other = await psql({ ...pgEnv(s), PGDATABASE: 'postgres' }, '-c', 'select 1');
    expect(other.code).not.toBe(0);
  });

  it('revocation closes live connections within 1 s (node-postgres sees it, psql reports it), no new login', async () => {
    const s = await openSession({ event_name: 'pull_request' });
    const env = pgEnv(s);
    // a live psql session
    const child = spawn('psql', ['-X', '-At'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.write('select 42;\n');
    for (let i = 0; i < 100 && !out.includes('42'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('42');
    // a live node-postgres connection, to time the server-side close precisely
    const client = new pg.Client({
      host: '127.0.0.1',
      port: broker.pgPort,
      user: s.id,
      password: s.secret,
      database: 'orders-db',
      ssl: { ca: s.ca_pem!, servername: '127.0.0.1' },
    });
    await client.connect();
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    const closed = new Promise<{ at: number; message: string }>((resolve) => {
      client.on('error', (e) => resolve({ at: Date.now(), message: e.message }));
      client.on('end', () => resolve({ at: Date.now(), message: 'end' }));
    });
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    const t0 = Date.now();
    const del = await fetch(`${broker.url}/v1/sessions/${s.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${s.secret}` },
    });
    expect(del.status).toBe(200);
    const c = await closed;
    expect(c.at - t0).toBeLessThan(1000);
    // psql learns on its next command that the server closed the connection, and cannot log in again
    child.stdin.write('select 43;\n');
    child.stdin.end();
    await exited;
    expect(out).not.toContain('43');
    expect(err).toMatch(/revoked|server closed the connection/);
    const again = await psql(env, '-c', 'select 1');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('revoked');
    const t = await transcript(s);
    expect(t.events.some((e) => e.kind === 'session.revoked')).toBe(true);
    await client.end().catch(() => {});
  });
});
