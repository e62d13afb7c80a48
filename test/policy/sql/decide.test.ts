import { beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import type { Decision } from '../../../service/policy/decision.js';
import { classifySql, decideStatement, initSqlParser } from '../../../service/policy/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

/** Decide every statement of the text; the first denial wins, else allow. */
function decide(grant: Grant, sql: string): Decision {
  const r = classifySql(sql);
  if (!r.ok) throw new Error(r.error);
  for (const stmt of r.statements) {
    const d = decideStatement(grant, stmt);
    if (d.effect !== 'allow') return d;
  }
  return { effect: 'allow', reasons: [] };
}

const read: Grant = { target: 'db', access: 'read' };
const write: Grant = { target: 'db', access: 'write' };
const admin: Grant = { target: 'db', access: 'admin' };

describe('access levels', () => {
  it('read allows only proven reads, naming the rule and the fact', () => {
    expect(decide(read, 'SELECT 1')).toEqual({ effect: 'allow', reasons: [] });
    expect(decide(read, 'DELETE FROM t')).toEqual({
      effect: 'deny',
      rule: 'access: read',
      reasons: ['access read: DELETE modifies data'],
    });
    expect(decide(read, 'SELECT pg_terminate_backend(1)').reasons).toEqual([
      'access read: function pg_terminate_backend has side effects: it signals other server processes',
    ]);
    expect(decide(read, 'SELECT my_fn()').reasons[0]).toContain(
      'function my_fn is not on the read-only allow-list',
    );
    expect(decide(read, 'SET ROLE admin').rule).toBe('access: read');
  });

  it('write allows DML and DDL, and session changes read grants may not make', () => {
    for (const sql of [
      'INSERT INTO t VALUES (1)',
      'CREATE TABLE t (a int)',
      'DROP INDEX i',
      'SET ROLE app_owner',
      'BEGIN READ WRITE',
      'DO $$BEGIN END$$',
      "SELECT nextval('s')",
      'ANALYZE t',
    ]) {
      expect({ sql, d: decide(write, sql).effect }).toEqual({ sql, d: 'allow' });
    }
    for (const sql of [
      'ALTER SYSTEM SET work_mem = 1',
      'CREATE ROLE r',
      'VACUUM t',
      'SELECT pg_terminate_backend(1)',
      'CREATE EXTENSION x',
      'GRANT r TO u',
    ]) {
      const d = decide(write, sql);
      expect({ sql, rule: d.rule }).toEqual({ sql, rule: 'access: write' });
      expect(d.reasons[0]).toMatch(/^access write: .*\(needs admin access\)$/);
    }
  });

  it('admin allows everything but forbidden facts and unknown statements', () => {
    expect(decide(admin, 'ALTER SYSTEM SET work_mem = 1').effect).toBe('allow');
    expect(decide(admin, 'SELECT pg_terminate_backend(1)').effect).toBe('allow');
    for (const sql of [
      "COPY t TO PROGRAM 'x'",
      "COPY t FROM '/etc/passwd'",
      "SELECT pg_read_file('/etc/passwd')",
      "SET client_encoding = 'LATIN1'",
      "SELECT lo_export(1, '/tmp/x')",
    ]) {
      expect({ sql, rule: decide(admin, sql).rule }).toEqual({ sql, rule: 'forbidden' });
    }
    expect(decide(admin, 'EXECUTE never_seen')).toMatchObject({ effect: 'deny', rule: 'unknown' });
  });
});

describe('deny rules', () => {
  const g = (deny: Grant['deny']): Grant => ({ target: 'db', access: 'write', deny });

  it('match statement kinds by leading words, anywhere in the tree', () => {
    const drop = g([{ statement: ['DROP'] }]);
    expect(decide(drop, 'DROP TABLE t')).toEqual({
      effect: 'deny',
      rule: 'deny.statement: DROP',
      reasons: ['deny.statement: DROP (DROP TABLE)'],
    });
    expect(decide(drop, 'DROP INDEX i').rule).toBe('deny.statement: DROP');
    expect(decide(drop, 'CREATE TABLE t (a int)').effect).toBe('allow');
    const del = g([{ statement: ['DELETE', 'TRUNCATE'] }]);
    expect(decide(del, 'WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x').rule).toBe(
      'deny.statement: DELETE',
    );
    expect(decide(del, 'EXPLAIN ANALYZE DELETE FROM t').rule).toBe('deny.statement: DELETE');
    expect(decide(del, 'TRUNCATE t').rule).toBe('deny.statement: TRUNCATE');
    expect(decide(g([{ statement: ['CREATE TABLE'] }]), 'SELECT 1 INTO x').rule).toBe(
      'deny.statement: CREATE TABLE',
    );
    expect(decide(g([{ statement: ['CREATE TABLE'] }]), 'CREATE INDEX ON t (a)').effect).toBe('allow');
  });

  it('match tables with and without schema, case-insensitively', () => {
    const secrets = g([{ table: ['secrets'] }]);
    expect(decide(secrets, 'SELECT * FROM secrets')).toEqual({
      effect: 'deny',
      rule: 'deny.table: secrets',
      reasons: ['deny.table: secrets'],
    });
    expect(decide(secrets, 'SELECT * FROM vault.Secrets').reasons).toEqual([
      'deny.table: secrets (vault.secrets)',
    ]);
    expect(decide(secrets, 'SELECT * FROM "SECRETS"').rule).toBe('deny.table: secrets');
    const qualified = g([{ table: ['public.secrets'] }]);
    expect(decide(qualified, 'SELECT * FROM secrets').rule).toBe('deny.table: public.secrets');
    expect(decide(qualified, 'SELECT * FROM public.secrets').rule).toBe('deny.table: public.secrets');
    expect(decide(qualified, 'SELECT * FROM vault.secrets').effect).toBe('allow');
    expect(decide(secrets, 'DROP TABLE secrets').rule).toBe('deny.table: secrets');
    expect(decide(secrets, 'SELECT * FROM t WHERE id IN (SELECT id FROM secrets)').rule).toBe(
      'deny.table: secrets',
    );
  });

  it('match functions, schema-qualified or not', () => {
    const sleep = g([{ function: ['pg_sleep'] }]);
    expect(decide(sleep, 'SELECT pg_catalog.pg_sleep(1)').reasons).toEqual([
      'deny.function: pg_sleep (pg_catalog.pg_sleep)',
    ]);
    expect(decide(sleep, 'SELECT 1 WHERE pg_sleep(1) IS NULL').rule).toBe('deny.function: pg_sleep');
    expect(decide(sleep, "SELECT pg_sleep_for('1s')").effect).toBe('allow');
  });

  it('name every rule that matched', () => {
    const d = decide(
      { target: 'db', access: 'read', deny: [{ statement: ['DELETE'] }, { table: ['t'] }] },
      'DELETE FROM t',
    );
    expect(d.reasons).toEqual([
      'access read: DELETE modifies data',
      'deny.statement: DELETE',
      'deny.table: t',
    ]);
    expect(d.rule).toBe('access: read');
  });
});

describe('column masks', () => {
  const masked: Grant = { target: 'db', access: 'read', mask: [{ column: 'customers.email' }] };
  const strict: Grant = {
    target: 'db',
    access: 'read',
    mask: [{ column: 'public.customers.email', strict: true }],
  };

  it('allows bare references (masked by origin) and conditions; refuses expressions', () => {
    expect(decide(masked, 'SELECT email, c.email AS e FROM customers c').effect).toBe('allow');
    expect(decide(masked, "SELECT id FROM customers WHERE email LIKE 'a%' ORDER BY email").effect).toBe(
      'allow',
    );
    expect(decide(masked, 'SELECT lower(email) FROM customers')).toEqual({
      effect: 'deny',
      rule: 'mask: customers.email',
      reasons: [
        'mask: customers.email is used inside an expression, where its origin (and so its mask) is lost',
      ],
    });
    expect(decide(masked, 'SELECT to_json(c) FROM customers c').rule).toBe('mask: customers.email');
  });

  it('strict also refuses conditions', () => {
    expect(decide(strict, 'SELECT email FROM customers').effect).toBe('allow');
    expect(decide(strict, "SELECT id FROM customers WHERE email = 'x'")).toMatchObject({
      effect: 'deny',
      rule: 'mask.strict: public.customers.email',
    });
  });

  it('ignores statements that do not reference the rule’s table', () => {
    expect(decide(masked, 'SELECT lower(email) FROM newsletter').effect).toBe('allow');
    expect(decide(masked, 'SELECT lower(email) FROM other.customers').effect).toBe('allow');
    expect(decide(masked, 'SELECT lower(o.note) FROM customers c JOIN orders o ON o.id = c.id').effect).toBe(
      'allow',
    );
  });

  it('refuses statements that read tables out of sight of the masks', () => {
    expect(decide(masked, "SELECT table_to_xml('customers', true, false, '')").rule).toBe('access: read');
    const w: Grant = { target: 'db', access: 'write', mask: [{ column: 'customers.email' }] };
    expect(decide(w, "SELECT table_to_xml('customers', true, false, '')").rule).toBe('mask: bypass');
    expect(decide(w, 'DO $$BEGIN END$$').rule).toBe('mask: bypass');
    expect(decide({ target: 'db', access: 'write' }, 'DO $$BEGIN END$$').effect).toBe('allow');
    expect(decide(w, 'INSERT INTO archive SELECT email FROM customers').rule).toBe('mask: customers.email');
  });
});

describe('procedures', () => {
  it('names the called procedure for deny.function rules', () => {
    const g: Grant = { target: 'db', access: 'write', deny: [{ function: ['purge'] }] };
    expect(decide(g, 'CALL app.purge(1)').reasons).toEqual(['deny.function: purge (app.purge)']);
  });
});
