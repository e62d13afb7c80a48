// approve: rules on PostgreSQL grants: matched like deny rules, after them, producing a hold with
// who approves and how long it waits.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import { DEFAULT_APPROVAL_TIMEOUT_MS, holdApproval } from '../../../service/policy/approval.js';
import type { Decision } from '../../../service/policy/decision.js';
import { gateStatements, type GateFacts } from '../../../service/policy/pg/statement-gate.js';
import { classifySql, decideStatement, initSqlParser } from '../../../service/policy/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

function decide(grant: Grant, sql: string): Decision {
  const r = classifySql(sql);
  if (!r.ok) throw new Error(r.error);
  expect(r.statements).toHaveLength(1);
  return decideStatement(grant, r.statements[0]!);
}

const grant: Grant = {
  target: 'db',
  access: 'write',
  deny: [{ statement: ['TRUNCATE'] }],
  approve: [
    { statement: ['DROP', 'ALTER TABLE'], approvers: { users: ['alice', 'bob'], min: 2 }, timeout: '2m' },
    { table: ['payments'] },
    { function: ['refresh_stats'] },
  ],
  approvers: { teams: ['acme/dba'] },
  approval_timeout: '5m',
};

describe('approve rules', () => {
  it('hold a matching statement kind with the rule’s approvers and timeout', () => {
    const d = decide(grant, 'DROP TABLE orders');
    expect(d).toEqual({
      effect: 'hold',
      rule: 'approve[0].statement: DROP',
      reasons: ['DROP TABLE needs approval (approve[0].statement: DROP (DROP TABLE))'],
      approval: { approvers: { users: ['alice', 'bob'], teams: [], min: 2 }, timeout_ms: 120_000 },
    });
    expect(decide(grant, 'ALTER TABLE orders ADD COLUMN x int').effect).toBe('hold');
  });

  it('tables and functions, with the grant’s approvers and approval_timeout as defaults', () => {
    const t = decide(grant, 'UPDATE public.payments SET amount = 0');
    expect(t.effect).toBe('hold');
    expect(t.rule).toBe('approve[1].table: payments');
    expect(t.effect === 'hold' && t.approval).toEqual({
      approvers: { users: [], teams: ['acme/dba'], min: 1 },
      timeout_ms: 300_000,
    });
    // a data-modifying CTE inside a SELECT is caught like deny rules catch it
    expect(decide(grant, 'WITH x AS (DELETE FROM payments RETURNING 1) SELECT * FROM x').effect).toBe('hold');
    const f = decide(grant, 'SELECT refresh_stats()');
    expect(f.effect).toBe('hold');
    expect(f.rule).toBe('approve[2].function: refresh_stats');
  });

  it('deny rules and access levels come first; an unmatched statement is allowed', () => {
    expect(decide(grant, 'TRUNCATE payments').effect).toBe('deny');
    expect(decide({ ...grant, access: 'read' }, 'DROP TABLE orders').effect).toBe('deny');
    expect(decide(grant, 'INSERT INTO orders VALUES (1)')).toEqual({ effect: 'allow', reasons: [] });
    expect(decide(grant, 'SELECT * FROM orders')).toEqual({ effect: 'allow', reasons: [] });
  });

  it('the default timeout is 10 minutes, the default minimum one approver', () => {
    expect(holdApproval({})).toEqual({
      approvers: { users: [], teams: [], min: 1 },
      timeout_ms: DEFAULT_APPROVAL_TIMEOUT_MS,
    });
    expect(DEFAULT_APPROVAL_TIMEOUT_MS).toBe(600_000);
  });
});

describe('the statement gate with holds', () => {
  const facts = (approved: boolean, g: Grant): GateFacts => ({
    access: g.access,
    outOfSight: false,
    tracesViews: false,
    masking: false,
    views: null,
    unnameable: [],
    relationsSettled: true,
    userObjects: () => ({ functions: [], operators: [], casts: [] }) as never,
    userObjectsFresh: true,
    approved,
    decide: (stmt) => decideStatement(g, stmt),
  });
  const stmts = (sql: string) => {
    const r = classifySql(sql);
    if (!r.ok) throw new Error(r.error);
    return r.statements;
  };

  it('a denial anywhere in a message wins over a hold', () => {
    const v = gateStatements(stmts('DROP TABLE a; TRUNCATE b'), 'simple', facts(false, grant));
    expect(v?.kind).toBe('refuse');
    expect(v?.kind === 'refuse' && v.decision.effect).toBe('deny');
  });

  it('a held message is held until approved, then passes whole', () => {
    const held = gateStatements(stmts('SELECT 1; DROP TABLE a'), 'simple', facts(false, grant));
    expect(held?.kind === 'refuse' && held.decision.effect).toBe('hold');
    expect(gateStatements(stmts('SELECT 1; DROP TABLE a'), 'simple', facts(true, grant))).toBeNull();
  });
});
