// Real, unchanged PostgreSQL clients through the gateway: psql, pg_dump, pgbench, node-postgres,
// postgres.js and a migration tool (node-pg-migrate).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayHarness,
  startGatewayHarness,
  TARGET,
  type TestSession,
} from '../../fixtures/pg-gateway-harness.js';
import { pgClientConfig, psql, sleep, tool } from './helpers.js';

const MASKS = [{ column: 'customers.email' }, { detector: 'credit_card' as const }];

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(async () => {
  await h?.close();
});

function pgConfig(s: TestSession): pg.ClientConfig {
  return pgClientConfig(h, s);
}

describe('psql', () => {
  it('runs -c with several statements as one message, and records each statement', async () => {
    const s = h.createSession();
    const r = await psql(h, s, ['-At', '-c', 'SELECT 1; SELECT name FROM customers WHERE id = 2; SELECT 3']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['1', 'Bob', '3']);
    await sleep(20);
    const statements = h.events(s.id).filter((e) => e.kind === 'pg.statement');
    expect(statements.map((e) => [e.operation.statement, e.operation.protocol, e.rows])).toEqual([
      ['SELECT 1', 'simple', 1],
      ['SELECT name FROM customers WHERE id = 2', 'simple', 1],
      ['SELECT 3', 'simple', 1],
    ]);
  });

  it('refuses a message with one denied statement as a whole, naming the rule, and stays usable', async () => {
    const s = h.createSession();
    // -c sends its text as one Query message: nothing of it runs
    const one = await psql(h, s, ['-At', '-c', 'SELECT 2; DELETE FROM customers; SELECT 4']);
    expect(one.stdout).toBe('');
    expect(one.stderr).toContain('hoop: DELETE denied by policy rule "access: read"');
    // psql sends script statements one by one: the session stays usable after a denial and an error
    const script = 'SELECT 1 AS a;\nDELETE FROM customers;\nSELECT 1/0;\nSELECT count(*) FROM customers;\n';
    const r = await psql(h, s, ['-At', '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], {}, script);
    expect(r.stdout.trim().split('\n')).toEqual(['1', '3']);
    expect(r.stderr).toContain('ERROR:  42501: hoop: DELETE denied by policy rule "access: read"');
    expect(r.stderr).toContain('statement: DELETE FROM customers');
    expect(r.stderr).toContain('ERROR:  22012: division by zero');
    await sleep(20);
    const denied = h.events(s.id).filter((e) => e.kind === 'pg.denied');
    expect(denied).toHaveLength(2);
    expect(denied[0]).toMatchObject({
      decision: 'deny',
      operation: { statement: 'DELETE FROM customers', statement_kind: 'DELETE' },
    });
    expect((await h.adminSql('SELECT count(*) FROM customers')).trim()).toBe('3');
  });

  it('aborts the transaction a denied statement was part of, as a real error would', async () => {
    const s = h.createSession();
    const script = 'BEGIN;\nSELECT 1;\nDELETE FROM customers;\nSELECT 2;\nROLLBACK;\nSELECT 3;\n';
    const r = await psql(h, s, ['-At', '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], {}, script);
    expect(r.stdout.trim().split('\n')).toEqual(['BEGIN', '1', 'ROLLBACK', '3']);
    expect(r.stderr).toContain('25P02');
  });

  it('describes tables with \\d', async () => {
    const s = h.createSession();
    const r = await psql(h, s, ['-c', '\\d customers']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Table "public.customers"');
    expect(r.stdout).toMatch(/email\s+\| text/);
  });

  it('copies in with \\copy under a write grant, and out masked under a masked read grant', async () => {
    const w = h.createSession({ access: 'write' });
    const rows = '20\t1\t1.00\n21\t2\t2.00\n';
    const copyIn = await psql(h, w, ['-c', '\\copy orders FROM stdin'], {}, rows);
    expect(copyIn.stderr).toBe('');
    expect(copyIn.stdout.trim()).toBe('COPY 2');
    expect((await h.adminSql('SELECT count(*) FROM orders WHERE id IN (20, 21)')).trim()).toBe('2');

    const r = h.createSession({ mask: MASKS });
    const out = await psql(h, r, ['-c', '\\copy customers TO stdout']);
    expect(out.stderr).toBe('');
    expect(out.stdout).toContain('1\tAlice\t***@***.***\t****-****-****-1111\tvip\t1980-01-02');
    expect(out.stdout).not.toMatch(/alice@|bob@|4111 1111/);
    const csv = await psql(h, r, [
      '-c',
      '\\copy (SELECT id, email FROM customers ORDER BY id) TO stdout WITH (FORMAT csv, HEADER)',
    ]);
    expect(csv.stdout.trim().split('\n')).toEqual(['id,email', '1,"***@***.***"', '2,"***@***.***"', '3,']);
    await sleep(20);
    const copyEvent = h
      .events(r.id)
      .find((e) => e.kind === 'pg.statement' && e.operation.statement_kind === 'COPY');
    expect(copyEvent).toMatchObject({ rows: 3, masked: 4 });
  });

  it('refuses COPY FROM STDIN under a read grant before any data moves', async () => {
    const s = h.createSession();
    const r = await psql(h, s, ['-c', '\\copy orders FROM stdin'], {}, '30\t1\t1.00\n');
    expect(r.stderr).toContain('hoop: COPY denied by policy rule');
    expect((await h.adminSql('SELECT count(*) FROM orders WHERE id = 30')).trim()).toBe('0');
  });
});

describe('pg_dump', () => {
  it('dumps the database through the broker with masked data', async () => {
    const s = h.createSession({ mask: MASKS });
    const r = await tool('pg_dump', ['--no-owner', '--no-privileges'], h.env(s));
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('CREATE TABLE public.customers');
    expect(r.stdout).toContain('COPY public.customers (id, name, email, card, note, born) FROM stdin;');
    expect(r.stdout).toContain('1\tAlice\t***@***.***\t****-****-****-1111\tvip\t1980-01-02');
    expect(r.stdout).toContain(
      '2\tBob\t***@***.***\t****-****-****-0004\tcontact bob.smith@corp.example\t1990-03-04',
    );
    expect(r.stdout).not.toMatch(/alice@example|4111 1111 1111/);
    await sleep(20);
    const copies = h.events(s.id).filter((e) => e.operation.statement_kind === 'COPY');
    expect(copies.length).toBeGreaterThanOrEqual(2);
    expect(h.events(s.id).filter((e) => e.kind === 'pg.denied')).toEqual([]);
  });
});

describe('pgbench', () => {
  it('initialises through a write grant and runs -S in simple, extended and prepared modes', async () => {
    const w = h.createSession({ access: 'write' });
    const init = await tool('pgbench', ['-i', '-s', '1', '-I', 'dtgp', '-q'], h.env(w));
    expect(init.code).toBe(0);
    expect(init.stderr).toContain('done in');
    const r = h.createSession({ mask: MASKS });
    for (const mode of ['simple', 'extended', 'prepared']) {
      const out = await tool('pgbench', ['-S', '-n', '-t', '200', '-c', '2', '-M', mode], h.env(r));
      expect(out.stderr).toBe('');
      expect(out.stdout).toContain('number of transactions actually processed: 400/400');
      expect(out.stdout).toContain('number of failed transactions: 0');
    }
    await sleep(50);
    expect(
      h.events(r.id).filter((e) => e.kind === 'pg.statement' && e.operation.statement_kind === 'SELECT')
        .length,
    ).toBeGreaterThanOrEqual(1200);
  });
});

describe('node-postgres', () => {
  it('runs parameterized and named prepared queries, masked, and records them as extended', async () => {
    const s = h.createSession({ mask: MASKS });
    const client = new pg.Client(pgConfig(s));
    await client.connect();
    const one = await client.query('SELECT name, email, card FROM customers WHERE id = $1', [1]);
    expect(one.rows).toEqual([{ name: 'Alice', email: '***@***.***', card: '****-****-****-1111' }]);
    for (const id of [1, 2, 3]) {
      const r = await client.query({
        name: 'by-id',
        text: 'SELECT id, email FROM customers WHERE id = $1',
        values: [id],
      });
      expect(r.rows[0].id).toBe(id);
      expect(r.rows[0].email === null || r.rows[0].email === '***@***.***').toBe(true);
    }
    await expect(client.query('UPDATE customers SET name = $1', ['x'])).rejects.toMatchObject({
      code: '42501',
    });
    expect((await client.query('SELECT $1::int + 1 AS n', [41])).rows).toEqual([{ n: 42 }]);
    await client.end();
    await sleep(20);
    const ev = h.events(s.id).filter((e) => e.kind === 'pg.statement');
    expect(ev[0]).toMatchObject({
      operation: { protocol: 'extended', statement: 'SELECT name, email, card FROM customers WHERE id = $1' },
      rows: 1,
      masked: 2,
    });
  });
});

describe('postgres.js', () => {
  it('pipelines several queries on one connection, masked, with prepared statements', async () => {
    const s = h.createSession({ mask: MASKS });
    const sql = postgres({
      host: 'localhost',
      port: h.port,
      user: s.id,
      pass: s.secret,
      database: TARGET,
      ssl: { ca: h.caPem, servername: 'localhost' },
      max: 1,
      onnotice: () => {},
    });
    try {
      const results = await Promise.all([
        sql`SELECT email FROM customers WHERE id = ${1}`,
        sql`SELECT ${2}::int AS two`,
        sql`SELECT email FROM customers WHERE id = ${2}`,
        sql`SELECT name FROM customers ORDER BY id`,
        sql`SELECT email FROM customers WHERE id = ${1}`,
      ]);
      expect(results.map((r) => [...r])).toEqual([
        [{ email: '***@***.***' }],
        [{ two: 2 }],
        [{ email: '***@***.***' }],
        [{ name: 'Alice' }, { name: 'Bob' }, { name: 'Carol' }],
        [{ email: '***@***.***' }],
      ]);
      const denied = await Promise.allSettled([sql`DELETE FROM orders`, sql`SELECT 7 AS seven`]);
      expect(denied[0]).toMatchObject({ status: 'rejected', reason: { code: '42501' } });
      expect(denied[1]).toMatchObject({ status: 'fulfilled', value: [{ seven: 7 }] });
    } finally {
      await sql.end();
    }
  });
});

describe('node-pg-migrate', () => {
  it('applies two migrations through a write grant', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-migrations-'));
    writeFileSync(
      join(dir, '1700000000000_create-widgets.cjs'),
      `exports.up = (pgm) => { pgm.createTable('widgets', { id: 'id', name: { type: 'text', notNull: true } }); };\nexports.down = (pgm) => { pgm.dropTable('widgets'); };\n`,
    );
    writeFileSync(
      join(dir, '1700000000001_add-color.cjs'),
      `exports.up = (pgm) => { pgm.addColumn('widgets', { color: { type: 'text', default: 'blue' } }); pgm.sql("INSERT INTO widgets (name) VALUES ('first')"); };\nexports.down = false;\n`,
    );
    const s = h.createSession({ access: 'write' });
    try {
      const applied = await runner({
        databaseUrl: pgConfig(s),
        dir,
        direction: 'up',
        migrationsTable: 'pgmigrations',
        count: Number.POSITIVE_INFINITY,
        log: () => {},
      });
      expect(applied.map((m) => m.name)).toEqual(['1700000000000_create-widgets', '1700000000001_add-color']);
      expect((await h.adminSql('SELECT name, color FROM widgets')).trim()).toBe('first|blue');
      expect((await h.adminSql('SELECT count(*) FROM pgmigrations')).trim()).toBe('2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await sleep(20);
    expect(h.events(s.id).some((e) => e.operation.statement_kind === 'CREATE TABLE')).toBe(true);
  });
});
