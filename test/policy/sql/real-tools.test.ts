// Real tools against a real server: every statement psql's describe commands and pg_dump send must be
// allowed under a `read` grant. The server logs every statement (log_statement = all); we replay the log
// through classifySql + decideStatement.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import {
  type ClassifiedStatement,
  classifySql,
  decideStatement,
  initSqlParser,
  trackPrepared,
} from '../../../service/policy/sql/index.js';
import { MASK_SCHEMA_SQL, MASK_SEED_SQL } from '../../fixtures/mask-attacks.js';
import { type PgServer, startPostgres } from '../../fixtures/postgres.js';

const run = promisify(execFile);

const EXTRA_SCHEMA = `
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE SEQUENCE invoice_seq;
CREATE VIEW customer_names AS SELECT id, name FROM customers;
CREATE INDEX customers_email_lower ON customers (lower(email));
CREATE FUNCTION double_it(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i * 2';
COMMENT ON TABLE customers IS 'people who buy';
CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) FROM orders GROUP BY customer_id;
CREATE SCHEMA app;
CREATE TABLE app.events (id serial PRIMARY KEY, m mood, data jsonb DEFAULT '{}', at timestamptz DEFAULT now());
ALTER TABLE orders ADD CONSTRAINT positive CHECK (total >= 0);
CREATE ROLE reader NOLOGIN;
GRANT SELECT ON customers TO reader;
`;

const READ: Grant = {
  target: 'db',
  access: 'read',
  mask: [{ column: 'customers.email' }, { detector: 'email' }],
};

let server: PgServer;

/** Statements from the server log, per backend pid, in order. */
function loggedStatements(log: string): Array<{ pid: string; sql: string }> {
  const out: Array<{ pid: string; sql: string }> = [];
  let current: { pid: string; text: string } | null = null;
  const flush = (): void => {
    if (!current) return;
    const m = /^(?:LOG|ERROR|STATEMENT):\s+statement: ([\s\S]*)$/.exec(current.text);
    if (m?.[1] !== undefined) out.push({ pid: current.pid, sql: m[1] });
    current = null;
  };
  for (const line of log.split('\n')) {
    const start = /^@@(\d+)@@ (.*)$/.exec(line);
    if (start) {
      flush();
      current = { pid: start[1]!, text: start[2]! };
    } else if (current && line.startsWith('\t')) {
      current.text += `\n${line.slice(1)}`;
    }
  }
  flush();
  return out;
}

beforeAll(async () => {
  await initSqlParser();
  server = await startPostgres({ settings: { log_statement: 'all', log_line_prefix: '@@%p@@ ' } });
  await server.psql('CREATE DATABASE shop');
  await server.psql(MASK_SCHEMA_SQL + MASK_SEED_SQL + EXTRA_SCHEMA, 'shop');
});

afterAll(async () => {
  await server?.stop();
});

describe('statements issued by psql and pg_dump', () => {
  it('are all allowed under a read grant', async () => {
    const before = readFileSync(join(server.dir, 'server.log'), 'utf8').length;
    const conn = ['-h', server.dir, '-p', String(server.port), '-U', 'postgres'];
    const psqlCommands = [
      '\\d+',
      '\\dt',
      '\\l',
      '\\d customers',
      '\\d+ app.events',
      '\\df',
      '\\dn',
      '\\du',
      '\\dv',
      '\\di',
      '\\dT',
      '\\dm',
      '\\ds',
      '\\dp',
      '\\x',
      'SELECT 1',
    ];
    await run('psql', ['-X', ...conn, '-d', 'shop', ...psqlCommands.flatMap((c) => ['-c', c])], {
      maxBuffer: 16 << 20,
    });
    const dump = await run('pg_dump', [...conn, '-d', 'shop'], { maxBuffer: 64 << 20 });
    expect(dump.stdout).toContain('COPY public.customers');
    await run('pg_dump', [...conn, '-d', 'shop', '-Fc', '-f', join(server.dir, 'shop.dump')]);
    await run('pg_dumpall', [...conn, '--schema-only', '-f', join(server.dir, 'all.sql')]).catch(
      () => undefined,
    );

    const log = readFileSync(join(server.dir, 'server.log'), 'utf8').slice(before);
    const statements = loggedStatements(log);
    expect(statements.length).toBeGreaterThan(50);

    const registries = new Map<string, Map<string, ClassifiedStatement>>();
    const refused: string[] = [];
    let classified = 0;
    let micros = 0;
    for (const { pid, sql } of statements) {
      const registry = registries.get(pid) ?? new Map<string, ClassifiedStatement>();
      registries.set(pid, registry);
      const t0 = process.hrtime.bigint();
      const result = classifySql(sql, registry);
      micros += Number(process.hrtime.bigint() - t0) / 1000;
      if (!result.ok) {
        refused.push(`${sql.slice(0, 200)} → parse error ${result.error}`);
        continue;
      }
      for (const stmt of result.statements) {
        classified++;
        const decision = decideStatement(READ, stmt);
        if (decision.effect !== 'allow')
          refused.push(`${stmt.source.slice(0, 300)} → ${decision.reasons.join('; ')}`);
        else trackPrepared(registry, stmt);
      }
    }
    // pg_dumpall reads roles from pg_authid and dumps ALTER ROLE … PASSWORD only as output: still reads.
    expect(refused).toEqual([]);
    console.log(
      `replayed ${classified} statements from psql/pg_dump; classifySql ${(micros / statements.length).toFixed(0)} µs per call (cold: no warm-up, large catalog queries)`,
    );
  });
});
