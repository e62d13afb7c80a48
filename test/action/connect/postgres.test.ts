import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  databaseUrl,
  postgresExports,
  postgresSettings,
  targetEnvPrefix,
} from '../../../src/connect/postgres.js';
import { type PgServer, startPostgres } from '../../fixtures/postgres.js';
import { postgresTarget } from '../fake-broker.js';
import { makeTestPki, type TestPki } from '../tls.js';

const run = promisify(execFile);
const SECRET = 'hoop_a+b/c=d%e f';

describe('PostgreSQL exports', () => {
  it('names per-target variables predictably', () => {
    expect(targetEnvPrefix('orders-db')).toBe('HOOP_ORDERS_DB_');
    expect(targetEnvPrefix('analytics.v2')).toBe('HOOP_ANALYTICS_V2_');
  });

  it('exports bare PG* and DATABASE_URL for a single target, plus the per-target names', () => {
    const s = postgresSettings(postgresTarget('s_1'), SECRET, '/tmp/x/broker-ca.pem');
    if (!s.ok) throw new Error(s.error);
    const out = postgresExports([s.value]);
    if (!out.ok) throw new Error(out.error);
    expect(out.value.env).toMatchObject({
      PGHOST: '127.0.0.1',
      PGPORT: '6432',
      PGUSER: 's_1',
      PGPASSWORD: SECRET,
      PGDATABASE: 'orders-db',
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: '/tmp/x/broker-ca.pem',
      HOOP_ORDERS_DB_PGUSER: 's_1',
      HOOP_ORDERS_DB_DATABASE_URL: out.value.databaseUrl,
    });
    expect(out.value.databaseUrl).toBe(
      'postgres://s_1:hoop_a%2Bb%2Fc%3Dd%25e%20f@127.0.0.1:6432/orders-db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fx%2Fbroker-ca.pem',
    );
    const parsed = new URL(out.value.databaseUrl!);
    expect(decodeURIComponent(parsed.password)).toBe(SECRET);
    expect(parsed.searchParams.get('sslrootcert')).toBe('/tmp/x/broker-ca.pem');
  });

  it('exports only per-target names for several targets (bare PG* would be ambiguous)', () => {
    const a = postgresSettings(postgresTarget('s_1', 'orders-db'), SECRET, 'system');
    const b = postgresSettings(postgresTarget('s_1', 'analytics'), SECRET, 'system');
    if (!a.ok || !b.ok) throw new Error('settings');
    const out = postgresExports([a.value, b.value]);
    if (!out.ok) throw new Error(out.error);
    expect(out.value.databaseUrl).toBeUndefined();
    expect(out.value.env.PGHOST).toBeUndefined();
    expect(out.value.env.DATABASE_URL).toBeUndefined();
    expect(out.value.env.HOOP_ANALYTICS_PGDATABASE).toBe('analytics');
    expect(out.value.env.HOOP_ORDERS_DB_PGDATABASE).toBe('orders-db');
    expect(Object.keys(out.value.env)).toHaveLength(16);
  });

  it('refuses two targets that map to the same variable names', () => {
    const a = postgresSettings(postgresTarget('s_1', 'orders-db'), SECRET, 'system');
    const b = postgresSettings(postgresTarget('s_1', 'orders_db'), SECRET, 'system');
    if (!a.ok || !b.ok) throw new Error('settings');
    expect(postgresExports([a.value, b.value])).toEqual({
      ok: false,
      error:
        'targets orders-db and orders_db would both export HOOP_ORDERS_DB_* variables; rename one of them',
    });
  });

  it('names the bad field of a connection', () => {
    const t = postgresTarget('s_1');
    expect(
      postgresSettings({ ...t, connection: { ...t.connection!, port: '6432' as never } }, SECRET, 'system'),
    ).toEqual({
      ok: false,
      error: 'target orders-db: connection.port is not a port number',
    });
    expect(
      postgresSettings({ ...t, connection: { ...t.connection!, host: 'a b' } }, SECRET, 'system'),
    ).toMatchObject({ ok: false });
  });

  it('brackets IPv6 hosts in the URL', () => {
    expect(
      databaseUrl({
        target: 't',
        host: '::1',
        port: 5432,
        user: 'u',
        database: 'd',
        password: 'p',
        sslrootcert: 'system',
      }),
    ).toBe('postgres://u:p@[::1]:5432/d?sslmode=verify-full&sslrootcert=system');
  });
});

describe('libpq accepts the exports (real PostgreSQL over TLS, verify-full against the private CA)', () => {
  let pg: PgServer;
  let pki: TestPki;
  let dir: string;
  beforeAll(async () => {
    pki = makeTestPki();
    pg = await startPostgres({ tls: { cert: pki.certPem, key: pki.keyPem, ssl_only: true } });
    dir = mkdtempSync(join(tmpdir(), 'hoop-pgexp-'));
    writeFileSync(join(dir, 'broker-ca.pem'), pki.caPem);
    // Stand in for the gateway: a role named like a session, the session secret as its password.
    await pg.psql(`CREATE ROLE s_1 LOGIN PASSWORD '${SECRET.replace(/'/g, "''")}'`);
    await pg.psql('CREATE DATABASE "orders-db" OWNER s_1');
  });
  afterAll(async () => {
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('psql connects with only the exported variables, and with DATABASE_URL', async () => {
    const t = postgresTarget('s_1');
    const s = postgresSettings(
      { ...t, connection: { ...t.connection!, port: pg.port } },
      SECRET,
      join(dir, 'broker-ca.pem'),
    );
    if (!s.ok) throw new Error(s.error);
    const out = postgresExports([s.value]);
    if (!out.ok) throw new Error(out.error);
    const env = { PATH: process.env.PATH ?? '', HOME: dir, ...out.value.env };
    const viaEnv = await run(
      'psql',
      [
        '-XAt',
        '-c',
        'select current_user, current_database(), ssl from pg_stat_ssl where pid = pg_backend_pid()',
      ],
      { env },
    );
    expect(viaEnv.stdout.trim()).toBe('s_1|orders-db|t');
    const viaUrl = await run('psql', ['-XAt', out.value.databaseUrl!, '-c', 'select current_user'], {
      env: { PATH: env.PATH, HOME: dir },
    });
    expect(viaUrl.stdout.trim()).toBe('s_1');
  });

  it('verify-full refuses a server the CA file does not vouch for', async () => {
    const other = makeTestPki();
    writeFileSync(join(dir, 'other-ca.pem'), other.caPem);
    const t = postgresTarget('s_1');
    const s = postgresSettings(
      { ...t, connection: { ...t.connection!, port: pg.port } },
      SECRET,
      join(dir, 'other-ca.pem'),
    );
    if (!s.ok) throw new Error(s.error);
    const out = postgresExports([s.value]);
    if (!out.ok) throw new Error(out.error);
    await expect(
      run('psql', ['-XAt', '-c', 'select 1'], {
        env: { PATH: process.env.PATH ?? '', HOME: dir, ...out.value.env },
      }),
    ).rejects.toThrow(/certificate verify failed/);
  });
});
