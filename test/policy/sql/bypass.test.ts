// The bypass table: every statement a read grant must refuse, and real read queries it must allow.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import { classifySql, decideStatement, initSqlParser } from '../../../service/policy/sql/index.js';
import { SQL_BYPASS, SQL_READ_ALLOWED } from '../../fixtures/sql-bypass.js';

const read: Grant = { target: 'db', access: 'read' };

beforeAll(async () => {
  await initSqlParser();
});

/** Refused when the text does not parse or any of its statements is denied. */
function verdict(sql: string): { allowed: boolean; reasons: string[] } {
  const r = classifySql(sql);
  if (!r.ok) return { allowed: false, reasons: [`parse: ${r.error}`] };
  const decisions = r.statements.map((s) => decideStatement(read, s));
  return {
    allowed: r.statements.length > 0 && decisions.every((d) => d.effect === 'allow'),
    reasons: decisions.flatMap((d) => d.reasons),
  };
}

describe('read grant', () => {
  it('has a big enough table', () => {
    expect(SQL_BYPASS.length).toBeGreaterThanOrEqual(50);
    expect(SQL_READ_ALLOWED.length).toBeGreaterThanOrEqual(20);
  });

  it.each(SQL_BYPASS)('refuses $why: $sql', ({ sql }) => {
    const v = verdict(sql);
    expect(v.allowed).toBe(false);
    expect(v.reasons.length).toBeGreaterThan(0);
  });

  it.each(SQL_READ_ALLOWED)('allows $why', ({ sql }) => {
    expect(verdict(sql)).toEqual({ allowed: true, reasons: [] });
  });
});
