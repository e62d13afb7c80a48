// The user-code rules (policy/pg/user-code.ts), with the cases test/gateways/postgres/bypass.test.ts
// and function-call.test.ts run against a real database.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  functionCallBypass,
  maskedUserCodeReason,
  userCodeCheck,
  userObjectReason,
} from '../../../service/policy/pg/user-code.js';
import { initSqlParser } from '../../../service/policy/sql/index.js';
import { stmt, stmts, userObjects } from './helpers.js';

beforeAll(async () => {
  await initSqlParser();
});

const objects = userObjects({
  functions: new Set(['reverse', 'hoop_flip', 'first_email']),
  operators: new Set(['===', '=']),
  castTargets: new Set(['hoop_box', 'hoop_checked']),
});

describe('read: user code behind names the allow-list trusts', () => {
  it('refuses an unqualified call of a name a user function shares, not the qualified built-in', () => {
    expect(userObjectReason(stmt("SELECT reverse('abc')"), objects)).toMatch(
      /a user-defined function is also named reverse, so the unqualified call cannot be proven to run the built-in; write pg_catalog\.reverse/,
    );
    expect(userObjectReason(stmt("SELECT pg_catalog.reverse('abc')"), objects)).toBeUndefined();
    expect(userObjectReason(stmt("SELECT upper('abc')"), objects)).toBeUndefined();
  });

  it('refuses user operators, by name and qualified, and every comparison once "=" has a twin', () => {
    for (const sql of ['SELECT 1 === 2', 'SELECT $1::int === 2'])
      expect(userObjectReason(stmt(sql), objects)).toMatch(/a user-defined operator is also named ===/);
    expect(userObjectReason(stmt('SELECT 1 OPERATOR(public.===) 2'), objects)).toMatch(
      /operator public\.=== is user-defined/,
    );
    for (const sql of [
      'SELECT 1 = 1',
      'SELECT 1 IN (1, 2)',
      'SELECT CASE 1 WHEN 1 THEN 2 END',
      'SELECT 1 IS DISTINCT FROM 2',
      'SELECT 1 = ANY (SELECT 1)',
    ])
      expect(userObjectReason(stmt(sql), objects), sql).toMatch(/a user-defined operator is also named =/);
    expect(
      userObjectReason(stmt('SELECT 1 OPERATOR(pg_catalog.=) 1 AS eq, 7::int8 AS n'), objects),
    ).toBeUndefined();
  });

  it("refuses casts to a user cast's target or a domain with a user CHECK", () => {
    expect(userObjectReason(stmt('SELECT 5::public.hoop_box'), objects)).toMatch(
      /converting a value to hoop_box may run a user-defined function/,
    );
    expect(userObjectReason(stmt("SELECT 'x'::hoop_checked"), objects)).toMatch(
      /converting a value to hoop_checked may run a user-defined function/,
    );
  });

  it('refuses everything while an implicit cast runs a user function', () => {
    const implicit = userObjects({ implicitCasts: ['hoop_box2 -> integer via hoop_unbox(hoop_box2)'] });
    expect(userObjectReason(stmt('SELECT 1'), implicit)).toMatch(
      /implicit cast through a user-defined function \(hoop_box2 -> integer via hoop_unbox\(hoop_box2\)\)/,
    );
  });
});

describe('masks at write access: user code that can read masked columns', () => {
  it('refuses calls of user functions in any schema but pg_catalog, user operators and casts', () => {
    expect(maskedUserCodeReason(stmt('SELECT public.first_email()'), objects)).toBe(
      "mask: public.first_email may run a user-defined function, which can read masked columns and denied tables out of the policy's sight",
    );
    expect(maskedUserCodeReason(stmt('SELECT first_email()'), objects)).toMatch(/^mask: first_email may run/);
    expect(maskedUserCodeReason(stmt("SELECT pg_catalog.reverse('a')"), objects)).toBeUndefined();
    expect(maskedUserCodeReason(stmt('SELECT 1 === 2'), objects)).toMatch(/^mask: operator === may run/);
    expect(maskedUserCodeReason(stmt('SELECT 5::hoop_box'), objects)).toMatch(
      /^mask: a cast to hoop_box may run/,
    );
    expect(maskedUserCodeReason(stmt('SELECT name FROM customers'), objects)).toBeUndefined();
  });
});

describe('userCodeCheck', () => {
  it('asks nothing of a write grant without masks or table deny rules', () => {
    expect(userCodeCheck(stmts('SELECT public.f()'), 'write', false, () => undefined, false)).toBeNull();
  });

  it('asks for the user objects only when a statement names anything', () => {
    expect(userCodeCheck(stmts('BEGIN'), 'read', false, () => undefined, false)).toBeNull();
    expect(userCodeCheck(stmts('SELECT 1 FROM customers'), 'read', false, () => undefined, false)).toBe(
      'load',
    );
  });

  it('under masks at write access, a call it does not know waits for a reading after the statement', () => {
    expect(userCodeCheck(stmts('SELECT made_just_now()'), 'write', true, () => objects, false)).toBe(
      'reload',
    );
    // once that reading is in: judged by it (here the function is not a user's: allowed)
    expect(userCodeCheck(stmts('SELECT made_just_now()'), 'write', true, () => objects, true)).toBeNull();
    expect(userCodeCheck(stmts('SELECT first_email()'), 'write', true, () => objects, true)).toMatchObject({
      decision: { effect: 'deny', rule: 'mask: bypass' },
    });
  });

  it('names the rule: access read, or mask bypass', () => {
    expect(userCodeCheck(stmts("SELECT reverse('a')"), 'read', false, () => objects, false)).toMatchObject({
      decision: { effect: 'deny', rule: 'access: read' },
    });
  });
});

describe('functionCallBypass', () => {
  it('refuses a FunctionCall outside pg_catalog under masks or table deny rules only', () => {
    expect(functionCallBypass({ schema: 'public', name: 'first_email' }, true)).toEqual({
      effect: 'deny',
      rule: 'mask: bypass',
      reasons: [
        "mask: public.first_email may be a user-defined function, which can read masked columns and denied tables out of the policy's sight",
      ],
    });
    expect(functionCallBypass({ schema: 'pg_catalog', name: 'nextval' }, true)).toBeNull();
    expect(functionCallBypass({ schema: 'public', name: 'first_email' }, false)).toBeNull();
  });
});
