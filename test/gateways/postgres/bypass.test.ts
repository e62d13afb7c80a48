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
