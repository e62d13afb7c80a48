import { describe, expect, it } from 'vitest';
import {
  type ClassifiedStatement,
  classifySql,
  initSqlParser,
  trackPrepared,
} from '../../../service/policy/sql/index.js';

function one(sql: string): ClassifiedStatement {
  const r = classifySql(sql);
  if (!r.ok) throw new Error(`parse failed: ${r.error}`);
  expect(r.statements).toHaveLength(1);
  return r.statements[0]!;
}

describe('classifySql before initSqlParser', () => {
  // Runs first in this file's own process, before any init.
  it('fails closed with a clear error', () => {
    const r = classifySql('SELECT 1');
    expect(r).toEqual({ ok: false, error: expect.stringContaining('initSqlParser') });
  });
});

describe('classifySql', () => {
  it('loads the parser once, concurrently', async () => {
    await Promise.all([initSqlParser(), initSqlParser()]);
    expect(classifySql('SELECT 1').ok).toBe(true);
  });

  it('splits statements by the parser’s byte offsets, multibyte text included', () => {
    const r = classifySql("SELECT 'é'; SELECT '日本語' AS \"列\" ;\n  DELETE FROM t WHERE a = 'ü'  ;");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.statements.map((s) => s.source)).toEqual([
      "SELECT 'é'",
      'SELECT \'日本語\' AS "列"',
      "DELETE FROM t WHERE a = 'ü'",
    ]);
    expect(r.statements.map((s) => s.kind)).toEqual(['SELECT', 'SELECT', 'DELETE']);
  });

  it('returns PostgreSQL’s message and a 1-based character position for a syntax error', () => {
    expect(classifySql("SELECT 'é', 'ok' ; bad")).toEqual({
      ok: false,
      error: 'syntax error at or near "bad"',
      position: 20,
    });
    expect(classifySql('SELEC 1')).toMatchObject({ ok: false, position: 1 });
  });

  it('treats empty and comment-only text as no statements, and refuses NUL characters', () => {
    expect(classifySql('')).toEqual({ ok: true, statements: [] });
    expect(classifySql('/* nothing */ -- here\n')).toEqual({ ok: true, statements: [] });
    expect(classifySql('SELECT 1\u0000; DELETE FROM t')).toMatchObject({ ok: false, position: 9 });
  });

  it('names kinds in SQL words, with every kind in the tree', () => {
    const cases: Array<[string, string, string[]]> = [
      ['DROP TABLE IF EXISTS a, s.b', 'DROP TABLE', ['DROP TABLE']],
      ['DROP INDEX i', 'DROP INDEX', ['DROP INDEX']],
      ['DROP MATERIALIZED VIEW mv', 'DROP MATERIALIZED VIEW', ['DROP MATERIALIZED VIEW']],
      ['CREATE TABLE x AS SELECT 1', 'CREATE TABLE', ['CREATE TABLE', 'SELECT']],
      ['SELECT 1 INTO x', 'SELECT', ['SELECT', 'CREATE TABLE']],
      ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', 'SELECT', ['SELECT', 'DELETE']],
      ['EXPLAIN ANALYZE UPDATE t SET a = 1', 'EXPLAIN', ['EXPLAIN', 'UPDATE']],
      ['ALTER TABLE t ADD c int', 'ALTER TABLE', ['ALTER TABLE']],
      ['ALTER INDEX i RENAME TO j', 'ALTER INDEX', ['ALTER INDEX']],
      ['CREATE INDEX ON t (a)', 'CREATE INDEX', ['CREATE INDEX']],
      ['GRANT SELECT ON t TO r', 'GRANT', ['GRANT']],
      ['REVOKE r FROM u', 'REVOKE', ['REVOKE']],
      ['VACUUM t', 'VACUUM', ['VACUUM']],
      ['ANALYZE t', 'ANALYZE', ['ANALYZE']],
      ['RESET ALL', 'RESET', ['RESET']],
      ['START TRANSACTION', 'START TRANSACTION', ['START TRANSACTION']],
      ['CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$', 'CREATE PROCEDURE', ['CREATE PROCEDURE']],
      ['TRUNCATE t', 'TRUNCATE', ['TRUNCATE']],
      ['MOVE c', 'MOVE', ['MOVE']],
    ];
    for (const [sql, kind, kinds] of cases) {
      const s = one(sql);
      expect({ sql, kind: s.kind, kinds: s.kinds }).toEqual({ sql, kind, kinds });
    }
  });

  it('places effects', () => {
    const cases: Array<[string, ClassifiedStatement['effect']]> = [
      ['SELECT 1', 'read'],
      ['SHOW work_mem', 'read'],
      ['COPY t TO STDOUT', 'read'],
      ['COPY t FROM STDIN', 'write'],
      ['INSERT INTO t VALUES (1)', 'write'],
      ["SELECT nextval('s')", 'write'],
      ['SELECT pg_terminate_backend(1)', 'admin'],
      ['CREATE TABLE t (a int)', 'ddl'],
      ['ALTER SYSTEM SET work_mem = 1', 'admin'],
      ['BEGIN', 'transaction'],
      ['SET search_path = a', 'session'],
      ['LISTEN x', 'session'],
      ['DO $$ BEGIN END $$', 'write'],
      ['EXECUTE never_prepared', 'unknown'],
      ['LOCK t IN ACCESS SHARE MODE', 'read'],
      ['LOCK t IN ROW EXCLUSIVE MODE', 'write'],
      ['SET session_replication_role = replica', 'admin'],
    ];
    for (const [sql, effect] of cases) expect({ sql, effect: one(sql).effect }).toEqual({ sql, effect });
  });

  it('collects relations and functions from anywhere in the tree, as the parser folded them', () => {
    const s = one(`
      WITH recent AS (SELECT * FROM app.orders WHERE placed > now() - interval '1 day')
      SELECT "Mixed"."Upper", pg_catalog.lower(c.name), "LOWER"(c.name)
      FROM recent r JOIN Customers c ON c.id = r.customer_id, LATERAL generate_series(1, 2) g
      WHERE EXISTS (SELECT 1 FROM audit.log l WHERE coalesce(l.x, 1) = 1)`);
    expect(s.tables.sort()).toEqual(['app.orders', 'audit.log', 'customers']);
    expect(s.functions.sort()).toEqual(['LOWER', 'generate_series', 'now', 'pg_catalog.lower']);
    // "LOWER" (quoted) is not the built-in lower: not on the allow-list.
    expect(s.effect).toBe('write');
    expect(s.effectReasons).toEqual([
      expect.stringContaining('function LOWER is not on the read-only allow-list'),
    ]);
  });

  it('collects the operators and cast types a statement names or implies', () => {
    const s = one(`
      SELECT a.x OPERATOR(app.===) 1, b.y BETWEEN 1 AND 2, CASE a.x WHEN 1 THEN 'one' END, 'a' ILIKE 'b',
             a.z::app.money2, CAST(a.w AS bigint), a.v = ANY (SELECT 1)
        FROM t a JOIN u b USING (id) ORDER BY a.x USING ~<~`);
    expect(s.operators.sort()).toEqual(['<', '<=', '=', '>', '>=', 'app.===', '~<~', '~~*']);
    expect(s.casts.sort()).toEqual(['app.money2', 'pg_catalog.int8']);
    // EXECUTE carries the prepared statement's
    const prepared = new Map([['p', one('SELECT 1 !== 2, 3::x.y')]]);
    const r = classifySql('EXECUTE p', prepared);
    expect(r.ok && r.statements[0]!.operators).toEqual(['!==']);
    expect(r.ok && r.statements[0]!.casts).toEqual(['x.y']);
  });

  it('finds schema-qualified and unicode-escaped names', () => {
    const s = one('SELECT PG_CATALOG.PG_TERMINATE_BACKEND(1), U&"\\0070g_sleep"(1) FROM U&"d\\0061ta"');
    expect(s.functions).toEqual(['pg_catalog.pg_terminate_backend', 'pg_sleep']);
    expect(s.tables).toEqual(['data']);
    expect(s.effect).toBe('admin');
  });

  it('describes COPY for the gateway', () => {
    expect(one('COPY public.t (a, b) TO STDOUT').copy).toEqual({
      direction: 'to',
      table: 'public.t',
      columns: ['a', 'b'],
      query: false,
      program: false,
      file: false,
      format: 'text',
      delimiter: '\t',
      null: '\\N',
      quote: '"',
      escape: '"',
      header: false,
    });
    expect(
      one("COPY t TO STDOUT WITH CSV HEADER DELIMITER ';' NULL 'x' QUOTE '''' ESCAPE '\\'").copy,
    ).toMatchObject({
      format: 'csv',
      delimiter: ';',
      null: 'x',
      quote: "'",
      escape: '\\',
      header: true,
    });
    expect(one('COPY t TO STDOUT (FORMAT binary)').copy?.format).toBe('binary');
    const q = one("COPY ( SELECT id, (1) FROM t WHERE a = '(' ) TO STDOUT (FORMAT csv)");
    expect(q.copy).toMatchObject({
      query: true,
      queryText: "SELECT id, (1) FROM t WHERE a = '('",
      format: 'csv',
      null: '',
    });
    expect(one("COPY t TO PROGRAM 'gzip > /tmp/x'").forbidden).toEqual([
      'COPY … TO PROGRAM runs a program on the database server',
    ]);
    expect(one("COPY t FROM '/etc/passwd'").copy).toMatchObject({ direction: 'from', file: true });
  });

  it('tracks where column values flow', () => {
    const refs = (sql: string) =>
      one(sql)
        .columnRefs.map((r) => `${r.table ?? r.qualifier ?? '?'}.${r.column}:${r.use}`)
        .sort();
    expect(refs('SELECT c.email, upper(name) FROM customers c WHERE c.card IS NOT NULL ORDER BY id')).toEqual(
      ['?.id:predicate', '?.name:expression', 'customers.card:predicate', 'customers.email:bare'].sort(),
    );
    // through a subquery: bare stays bare; an expression over the derived column is an expression
    expect(refs('SELECT upper(x), y FROM (SELECT c.email AS x, c.card AS y FROM customers c) s')).toEqual(
      ['?.x:expression', '?.y:bare', 'customers.card:bare', 'customers.email:expression'].sort(),
    );
    // whole-row references are composites: origin lost
    expect(refs('SELECT c FROM customers c')).toContain('customers.*:expression');
    // set operations and scalar subqueries lose origins
    expect(refs('SELECT email FROM customers UNION SELECT note FROM orders')).toEqual([
      '?.email:expression',
      '?.note:expression',
    ]);
    expect(refs('SELECT (SELECT email FROM customers LIMIT 1)')).toEqual(['?.email:expression']);
    // EXISTS/IN subqueries only compare
    expect(refs('SELECT 1 WHERE EXISTS (SELECT email FROM customers)')).toEqual(['?.email:predicate']);
    // FULL JOIN … USING merges columns into COALESCE
    expect(refs('SELECT email FROM a FULL JOIN b USING (email)')).toEqual(['?.email:expression']);
    expect(refs('SELECT email FROM a JOIN b USING (email)')).toEqual(['?.email:bare']);
    // a top-level RETURNING list reports origins; INSERT … SELECT moves values
    expect(refs('UPDATE customers SET note = name RETURNING email')).toEqual([
      '?.email:bare',
      '?.name:expression',
    ]);
    expect(refs('INSERT INTO t SELECT email FROM customers')).toEqual(['?.email:expression']);
  });

  it('resolves EXECUTE through PREPAREs earlier in the text or on the connection', () => {
    const r = classifySql('PREPARE p AS DELETE FROM t; EXECUTE p; DEALLOCATE p; EXECUTE p');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.statements.map((s) => s.effect)).toEqual(['write', 'write', 'session', 'unknown']);
    expect(r.statements[1]!.kinds).toEqual(['EXECUTE', 'DELETE']);

    const registry = new Map<string, ClassifiedStatement>();
    const prep = one('PREPARE q (int) AS SELECT * FROM t WHERE id = $1');
    trackPrepared(registry, prep);
    const exec = classifySql('EXECUTE q(1)', registry);
    expect(exec.ok && exec.statements[0]!.effect).toBe('read');
    trackPrepared(registry, one('DISCARD ALL'));
    expect(registry.size).toBe(0);
  });

  it('judges set_config by its constant setting name, including pg_dump’s pg_settings form', () => {
    expect(one("SELECT pg_catalog.set_config('search_path', '', false)").readOnlyEscapes).toEqual([]);
    expect(
      one(
        "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'",
      ).forbidden,
    ).toEqual([]);
    expect(
      one(
        "SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'default_transaction_read_only'",
      ).readOnlyEscapes,
    ).toHaveLength(1);
    expect(
      one("SELECT set_config(name, 'off', false) FROM pg_settings WHERE name LIKE 'default%'").forbidden,
    ).toHaveLength(1);
  });

  it('redacts the transcript text but forwards the source unchanged', () => {
    const s = one("ALTER ROLE app PASSWORD 'hunter2'");
    expect(s.text).toBe("ALTER ROLE app PASSWORD '***'");
    expect(s.source).toBe("ALTER ROLE app PASSWORD 'hunter2'");
  });

  it('classifies fast', () => {
    const statements = [
      'SELECT abalance FROM pgbench_accounts WHERE aid = 12345',
      'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
      'UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 7',
      "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1",
    ];
    const n = 2000;
    for (const sql of statements) for (let i = 0; i < 200; i++) classifySql(sql);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) for (const sql of statements) classifySql(sql);
    const micros = Number(process.hrtime.bigint() - t0) / 1000 / (n * statements.length);
    console.log(`classifySql: ${micros.toFixed(1)} µs per statement (mix of ${statements.length})`);
    expect(micros).toBeLessThan(500);
  });
});
