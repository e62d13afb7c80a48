// The masking table, checked against a real server: refused queries are denied by the policy (or by the
// gateway's COPY format check); masked queries are allowed, and after masking by the origins PostgreSQL
// reports (the gateway's method) no masked value is left in any row, COPY line or error text.
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import { maskCell } from '../../../service/policy/mask/cell.js';
import { CopyOutMasker, copyMaskSupport } from '../../../service/policy/mask/copy.js';
import { guardEchoedValues, maskNoticeText } from '../../../service/policy/mask/notice.js';
import { planMask } from '../../../service/policy/mask/plan.js';
import {
  classifySql,
  columnMaskRules,
  decideStatement,
  initSqlParser,
  tableIsRule,
} from '../../../service/policy/sql/index.js';
import type { ClassifiedStatement, ColumnOrigin } from '../../../service/policy/sql/types.js';
import {
  MASK_ATTACKS,
  MASK_SCHEMA_SQL,
  MASK_SEED_SQL,
  MASKED_VALUE_FRAGMENTS,
  type MaskAttack,
} from '../../fixtures/mask-attacks.js';
import { type PgServer, startPostgres } from '../../fixtures/postgres.js';

let server: PgServer;
let client: pg.Client;
const rawText = { getTypeParser: () => (v: string) => v };

const leaks = (text: string): string[] => MASKED_VALUE_FRAGMENTS.filter((f) => text.includes(f));

function psqlCopy(sql: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      server.dir,
      '-p',
      String(server.port),
      '-U',
      'postgres',
      '-c',
      sql,
    ]);
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`psql exited ${code}`)),
    );
    child.stdin.end();
  });
}

async function originsOf(fields: pg.FieldDef[]): Promise<ColumnOrigin[]> {
  const out: ColumnOrigin[] = [];
  for (const f of fields) {
    let table: string | null = null;
    let column: string | null = null;
    if (f.tableID) {
      const r = await client.query(
        `SELECT n.nspname || '.' || c.relname AS t, a.attname AS a FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = $2 WHERE c.oid = $1`,
        [f.tableID, f.columnID],
      );
      table = r.rows[0]?.t ?? null;
      column = r.rows[0]?.a ?? null;
    }
    out.push({ name: f.name, table, column, typeOid: f.dataTypeID, format: f.format === 'binary' ? 1 : 0 });
  }
  return out;
}

/** Origins of a COPY's columns: the table's (listed) columns, or the inner query's result columns. */
async function copyOrigins(stmt: ClassifiedStatement): Promise<ColumnOrigin[]> {
  const copy = stmt.copy!;
  if (copy.query) {
    const r = await client.query({ text: `SELECT * FROM (${copy.queryText}) q LIMIT 0`, types: rawText });
    // A wrapping subquery keeps origins, as the gateway's Describe of the inner query would report them.
    return originsOf(r.fields);
  }
  const cols = copy.columns ? `, ${copy.columns.map((c) => `"${c}"`).join(', ')}` : ', *';
  const r = await client.query({
    text: `SELECT ${cols.slice(2)} FROM ${copy.table} LIMIT 0`,
    types: rawText,
  });
  return originsOf(r.fields);
}

function decideAll(attack: MaskAttack): {
  allowed: boolean;
  reasons: string[];
  statements: ClassifiedStatement[];
} {
  const grant: Grant = { target: 'shop', access: attack.access ?? 'read', mask: attack.rules };
  const r = classifySql(attack.sql);
  if (!r.ok) throw new Error(`${attack.name}: ${r.error}`);
  const decisions = r.statements.map((s) => decideStatement(grant, s));
  return {
    allowed: decisions.every((d) => d.effect === 'allow'),
    reasons: decisions.flatMap((d) => d.reasons),
    statements: r.statements,
  };
}

/** Run an allowed query like the gateway would and return everything the client would see, masked. */
async function maskedOutput(
  attack: MaskAttack,
  stmt: ClassifiedStatement,
): Promise<{ raw: string; masked: string }> {
  if (stmt.copy) {
    const data = await psqlCopy(attack.sql);
    const plan = planMask(attack.rules, await copyOrigins(stmt));
    const masker = new CopyOutMasker(stmt.copy, plan.actions, []);
    const masked = Buffer.concat([masker.push(data).line, masker.finish().line]);
    return { raw: data.toString(), masked: masked.toString() };
  }
  const write = attack.access === 'write';
  if (write) await client.query('BEGIN');
  try {
    const r = await client.query({ text: attack.sql, rowMode: 'array', types: rawText });
    const plan = planMask(attack.rules, await originsOf(r.fields));
    const rows = r.rows as Array<Array<string | null>>;
    const masked = rows.map((row) =>
      row.map(
        (v, i) =>
          maskCell(plan.actions[i]!, v === null ? null : Buffer.from(v), []).value?.toString() ?? null,
      ),
    );
    return { raw: JSON.stringify(rows), masked: JSON.stringify(masked) };
  } catch (err) {
    if (!attack.errors) throw err;
    const e = err as pg.DatabaseError;
    const fields: Array<[string, string]> = [
      ['M', e.message],
      ['D', e.detail ?? ''],
      ['H', e.hint ?? ''],
      ['W', e.where ?? ''],
    ];
    // as the gateway does: a statement reading a table with masked columns gets the echo guard too
    const rules = columnMaskRules(attack.rules);
    const guarded = stmt.tables.some((t) => rules.some((m) => tableIsRule(t, m)));
    const mask = (code: string, t: string): string => {
      const masked = maskNoticeText(t, attack.rules, []);
      return guarded ? guardEchoedValues(code, masked, e.code ?? '', stmt.source) : masked;
    };
    return {
      raw: fields.map(([, t]) => t).join('\n'),
      masked: fields.map(([code, t]) => mask(code, t)).join('\n'),
    };
  } finally {
    if (write) await client.query('ROLLBACK');
  }
}

beforeAll(async () => {
  await initSqlParser();
  server = await startPostgres();
  await server.psql(MASK_SCHEMA_SQL + MASK_SEED_SQL);
  client = new pg.Client({ connectionString: server.url() });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await server?.stop();
});

describe('mask attacks', () => {
  it('has a big enough table', () => {
    expect(MASK_ATTACKS.length).toBeGreaterThanOrEqual(25);
    expect(MASK_ATTACKS.filter((a) => a.expect === 'refused').length).toBeGreaterThanOrEqual(20);
  });

  it.each(MASK_ATTACKS.filter((a) => a.expect === 'refused'))('refuses $name', async (attack) => {
    const v = decideAll(attack);
    if (attack.refusedBy === 'gateway') {
      expect(v.allowed).toBe(true);
      const stmt = v.statements[0]!;
      const plan = planMask(attack.rules, await copyOrigins(stmt));
      expect(copyMaskSupport(stmt.copy!.format, plan).ok).toBe(false);
      return;
    }
    expect(v.allowed).toBe(false);
    expect(v.reasons.some((r) => r.startsWith('mask'))).toBe(true);
  });

  let prevented = 0;
  it.each(MASK_ATTACKS.filter((a) => a.expect === 'masked'))('masks $name', async (attack) => {
    const v = decideAll(attack);
    expect(v.reasons).toEqual([]);
    for (const stmt of v.statements) {
      const out = await maskedOutput(attack, stmt);
      expect(leaks(out.masked)).toEqual([]);
      if (leaks(out.raw).length > 0) prevented++;
    }
  });

  it('actually had values to hide in most masked cases', () => {
    expect(prevented).toBeGreaterThanOrEqual(15);
  });
});
