// The read-grant bypass table, end to end: every statement sent through the broker (simple and
// extended protocol) is refused by the broker itself, the connection stays usable, and nothing
// changed in the database. The read queries real clients send are let through.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, SEED_SQL, startGatewayHarness } from '../../fixtures/pg-gateway-harness.js';
import { BYPASS_SCHEMA_SQL, SQL_BYPASS, SQL_READ_ALLOWED } from '../../fixtures/sql-bypass.js';
import { extended, pgClientConfig } from './helpers.js';

let h: GatewayHarness;
let client: pg.Client;
let sessionId: string;

beforeAll(async () => {
  h = await startGatewayHarness({ seedSql: SEED_SQL + BYPASS_SCHEMA_SQL });
  const s = h.createSession({ access: 'read' });
  sessionId = s.id;
  client = new pg.Client(pgClientConfig(h, s));
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await h?.close();
});

async function refusal(
  text: string,
  useExtended: boolean,
): Promise<{ code?: string; message: string } | null> {
  try {
    await client.query(useExtended ? extended(text) : text);
    return null;
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
}

describe('read grant: bypass attempts are refused by the broker', () => {
  it('has a table worth running (at least 40 statements)', () => {
    expect(SQL_BYPASS.length).toBeGreaterThanOrEqual(40);
  });

  for (const mode of ['simple', 'extended'] as const) {
    it(`refuses every statement in the ${mode} protocol and stays usable after each`, async () => {
      const failures: string[] = [];
      for (const c of SQL_BYPASS) {
        const err = await refusal(c.sql, mode === 'extended');
        // 42501 policy, 42601 unparsable (fail closed), 08P01 a NUL byte in the text
        if (
          !err ||
          !['42501', '42601', '08P01'].includes(err.code ?? '') ||
          !err.message.startsWith('hoop:')
        ) {
          failures.push(`${c.why}: ${c.sql} → ${err ? `${err.code} ${err.message}` : 'ALLOWED'}`);
        }
        const alive = await client.query('SELECT 1 AS ok');
        expect(alive.rows).toEqual([{ ok: 1 }]);
      }
      expect(failures).toEqual([]);
    });
  }

  it('left the database untouched and recorded every refusal', async () => {
    expect((await h.adminSql('SELECT count(*) FROM accounts')).trim()).toBe('2');
    expect(
      (
        await h.adminSql(
          "SELECT count(*) FROM pg_class WHERE relname IN ('stolen', 'scratch', 't2', 'leaked')",
        )
      ).trim(),
    ).toBe('0');
    expect((await h.adminSql('SELECT last_value FROM accounts_seq')).trim()).toBe('1');
    const denied = h.events(sessionId).filter((e) => e.kind === 'pg.denied');
    expect(denied.length).toBe(SQL_BYPASS.length * 2);
    expect(denied.every((e) => e.decision === 'deny' && e.reasons.length > 0)).toBe(true);
  });
});

describe('read grant: what real clients send is let through', () => {
  it('does not refuse any read query (upstream may still fail some, e.g. FETCH without a cursor)', async () => {
    const refused: string[] = [];
    for (const c of SQL_READ_ALLOWED) {
      const err = await refusal(c.sql, c.sql.includes('$1'));
      if (err?.message.startsWith('hoop:')) refused.push(`${c.why}: ${err.code} ${err.message}`);
      await client.query('ROLLBACK').catch(() => {});
    }
    expect(refused).toEqual([]);
  });
});

describe('read grant: a user-defined function with a built-in’s name', () => {
  it('refuses the unqualified call (it may run the user function), allows pg_catalog.name', async () => {
    // planted the way an attacker with a write grant would: through the broker
    const writer = new pg.Client(pgClientConfig(h, h.createSession({ access: 'write' })));
    await writer.connect();
    try {
      await writer.query(
        `CREATE FUNCTION public.reverse(i integer) RETURNS text LANGUAGE sql AS $$ SELECT 'planted' $$`,
      );
      const reader = new pg.Client(pgClientConfig(h, h.createSession({ access: 'read' })));
      await reader.connect();
      try {
        for (const q of ['SELECT reverse(12)', extended('SELECT reverse($1::int)', { values: [12] })]) {
          const err = await reader.query(q).then(
            () => null,
            (e: unknown) => e as { code?: string; message: string; detail?: string },
          );
          expect(err?.code).toBe('42501');
          expect(err?.message).toMatch(/^hoop: SELECT denied by policy rule "access: read"/);
          expect(err?.detail).toMatch(/a user-defined function is also named reverse/);
        }
        const ok = await reader.query("SELECT pg_catalog.reverse('ab') AS r, upper('x') AS u");
        expect(ok.rows).toEqual([{ r: 'ba', u: 'X' }]);
      } finally {
        await reader.end();
      }
    } finally {
      await writer.query('DROP FUNCTION public.reverse(integer)');
      await writer.end();
    }
  });
});

describe('read grant: user-defined operators, casts and views', () => {
  // Planted through a write session, as an attacker with a write grant would. Each object ends up
  // calling a function that turns the session's default_transaction_read_only off, so that the next
  // transaction of the read session could write.
  const FLIP = `BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); RETURN true; END`;
  const PLANT = [
    `CREATE FUNCTION public.hoop_flip(a integer, b integer) RETURNS boolean LANGUAGE plpgsql AS $$ ${FLIP} $$`,
    `CREATE FUNCTION public.hoop_flip_text(a integer, b text) RETURNS boolean LANGUAGE plpgsql AS $$ ${FLIP} $$`,
    `CREATE OPERATOR public.=== (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.hoop_flip)`,
    `CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = text, FUNCTION = public.hoop_flip_text)`,
    `CREATE TYPE public.hoop_box AS (v integer)`,
    `CREATE FUNCTION public.hoop_box_of(i integer) RETURNS public.hoop_box LANGUAGE plpgsql AS $$
       BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); RETURN ROW(i); END $$`,
    `CREATE CAST (integer AS public.hoop_box) WITH FUNCTION public.hoop_box_of(integer)`,
    `CREATE VIEW public.hoop_flip_view AS SELECT public.hoop_flip(1, 2) AS flipped`,
    `CREATE VIEW public.hoop_outer_view AS SELECT flipped FROM public.hoop_flip_view`,
    // a domain's CHECK runs whenever a value is converted to it
    `CREATE DOMAIN public.hoop_checked AS integer CHECK (public.hoop_flip(VALUE, 1))`,
  ];
  const UNPLANT = [
    'DROP VIEW IF EXISTS public.hoop_outer_view',
    'DROP VIEW IF EXISTS public.hoop_flip_view',
    'DROP DOMAIN IF EXISTS public.hoop_checked',
    'DROP CAST IF EXISTS (integer AS public.hoop_box)',
    'DROP FUNCTION IF EXISTS public.hoop_box_of(integer)',
    'DROP TYPE IF EXISTS public.hoop_box',
    'DROP OPERATOR IF EXISTS public.= (integer, text)',
    'DROP OPERATOR IF EXISTS public.=== (integer, integer)',
    'DROP FUNCTION IF EXISTS public.hoop_flip_text(integer, text)',
    'DROP FUNCTION IF EXISTS public.hoop_flip(integer, integer)',
  ];
  let writer: pg.Client;
  beforeAll(async () => {
    writer = new pg.Client(pgClientConfig(h, h.createSession({ access: 'write' })));
    await writer.connect();
    for (const q of PLANT) await writer.query(q);
  });
  afterAll(async () => {
    await h.adminSql('DROP SCHEMA IF EXISTS hoop_path CASCADE');
    for (const q of UNPLANT) await writer.query(q);
    await writer.end();
  });

  const refusedHow = (reader: pg.Client, q: string | pg.QueryConfig) =>
    reader.query(q).then(
      () => null,
      (e: unknown) => e as { code?: string; message: string; detail?: string },
    );

  it('refuses operators and casts that may run a user function, and lets the built-ins through', async () => {
    const reader = new pg.Client(pgClientConfig(h, h.createSession({ access: 'read' })));
    await reader.connect();
    try {
      const cases: Array<[string | pg.QueryConfig, RegExp]> = [
        ['SELECT 1 === 2', /a user-defined operator is also named ===/],
        ['SELECT 1 OPERATOR(public.===) 2', /operator public\.=== is user-defined/],
        [extended('SELECT $1::int === 2', { values: [1] }), /a user-defined operator is also named ===/],
        // "=" now has a user-defined twin: every comparison by that name may run it
        ['SELECT 1 = 1', /a user-defined operator is also named =/],
        ['SELECT 1 IN (1, 2)', /a user-defined operator is also named =/],
        ['SELECT CASE 1 WHEN 1 THEN 2 END', /a user-defined operator is also named =/],
        ['SELECT 1 IS DISTINCT FROM 2', /a user-defined operator is also named =/],
        [
          'SELECT * FROM (SELECT 1 AS x) a JOIN (SELECT 1 AS x) b USING (x)',
          /a user-defined operator is also named =/,
        ],
        ['SELECT 1 = ANY (SELECT 1)', /a user-defined operator is also named =/],
        ['SELECT 5::public.hoop_box', /converting a value to hoop_box may run a user-defined function/],
        [
          'SELECT 5::public.hoop_checked',
          /converting a value to hoop_checked may run a user-defined function/,
        ],
        ['SELECT CAST(3 AS hoop_checked)', /converting a value to hoop_checked/],
        ['SELECT CAST(5 AS hoop_box)', /converting a value to hoop_box/],
        [extended('SELECT $1::int::hoop_box', { values: [5] }), /converting a value to hoop_box/],
      ];
      for (const [q, why] of cases) {
        const err = await refusedHow(reader, q);
        expect(err, JSON.stringify(q)).not.toBeNull();
        expect(err?.code).toBe('42501');
        expect(err?.message).toMatch(/denied by policy rule "access: read"/);
        expect(err?.detail).toMatch(why);
      }
      // the built-ins, named so that no user object can stand in for them
      const ok = await reader.query(
        'SELECT 1 OPERATOR(pg_catalog.=) 1 AS eq, 2 OPERATOR(pg_catalog.<) 3 AS lt, 7::int8 AS n',
      );
      expect(ok.rows).toEqual([{ eq: true, lt: true, n: '7' }]);
      const ro = await reader.query('SHOW default_transaction_read_only');
      expect(ro.rows).toEqual([{ default_transaction_read_only: 'on' }]);
    } finally {
      await reader.end();
    }
  });

  it('refuses every statement that names anything while an implicit cast runs a user function', async () => {
    await writer.query('CREATE TYPE public.hoop_box2 AS (v integer)');
    await writer.query(
      'CREATE FUNCTION public.hoop_unbox(b public.hoop_box2) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$',
    );
    await writer.query(
      'CREATE CAST (public.hoop_box2 AS integer) WITH FUNCTION public.hoop_unbox AS IMPLICIT',
    );
    const reader = new pg.Client(pgClientConfig(h, h.createSession({ access: 'read' })));
    await reader.connect();
    try {
      const err = await refusedHow(reader, 'SELECT pg_catalog.abs(-1)');
      expect(err?.code).toBe('42501');
      expect(err?.detail).toMatch(
        /implicit cast through a user-defined function \(hoop_box2 -> integer via hoop_unbox\(hoop_box2\)\)/,
      );
      // a statement that names no table, function, operator or cast cannot reach a cast
      expect((await reader.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await reader.end();
      await writer.query('DROP CAST (public.hoop_box2 AS integer)');
      await writer.query('DROP FUNCTION public.hoop_unbox(public.hoop_box2)');
      await writer.query('DROP TYPE public.hoop_box2');
    }
  });

  it('refuses a view whose definition is not read-only, and stays usable', async () => {
    const reader = new pg.Client(pgClientConfig(h, h.createSession({ access: 'read' })));
    await reader.connect();
    try {
      // reading a view runs its definition: here a user function, which cannot be proven read-only
      const err = await refusedHow(reader, 'SELECT flipped FROM public.hoop_flip_view');
      expect(err?.code).toBe('42501');
      expect(err?.detail).toMatch(
        /reading view public\.hoop_flip_view runs its definition, which is not read-only: .*hoop_flip/,
      );
      // and so does reading a view that reads it
      const outer = await refusedHow(reader, 'SELECT * FROM hoop_outer_view');
      expect(outer?.detail).toMatch(/view public\.hoop_outer_view .* it reads public\.hoop_flip_view/);
      expect((await reader.query('SHOW default_transaction_read_only')).rows).toEqual([
        { default_transaction_read_only: 'on' },
      ]);
    } finally {
      await reader.end();
    }
  });

  it('closes a read session whose upstream read-only default was turned off (a view the policy did not see)', async () => {
    const reader = new pg.Client(pgClientConfig(h, h.createSession({ access: 'read' })));
    const ended = new Promise<void>((resolve) => reader.once('end', () => resolve()));
    reader.on('error', () => undefined);
    await reader.connect();
    await reader.query('SELECT 1 FROM customers LIMIT 1'); // the views are traced now
    // created outside the broker after that, under a name the tracing knows, reached through the
    // search_path: a table to the policy, so its function runs upstream, where the backstop is
    await h.adminSql(`CREATE SCHEMA hoop_path; GRANT USAGE ON SCHEMA hoop_path TO PUBLIC;
      CREATE VIEW hoop_path.customers AS SELECT public.hoop_flip(1, 2) AS flipped;
      GRANT SELECT ON hoop_path.customers TO PUBLIC`);
    await reader.query('SET search_path = hoop_path, public');
    const err = await refusedHow(reader, 'SELECT flipped FROM customers');
    expect(err?.message).toMatch(/default_transaction_read_only changed to off in a read-only session/);
    expect(err?.code).toBe('42501');
    await ended;
    // nothing written, and other sessions still served
    const other = new pg.Client(pgClientConfig(h, h.createSession({ access: 'read' })));
    await other.connect();
    try {
      const ro = await other.query('SHOW default_transaction_read_only');
      expect(ro.rows).toEqual([{ default_transaction_read_only: 'on' }]);
    } finally {
      await other.end();
    }
  });
});
