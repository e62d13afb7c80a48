// The statement gate's sequence (policy/pg/statement-gate.ts): which reading comes first, which
// judgement wins, holds, and the protocol's COPY rule.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import type { Decision } from '../../../service/policy/decision.js';
import type { UserObjects } from '../../../service/policy/pg/facts.js';
import { type GateFacts, gateStatements } from '../../../service/policy/pg/statement-gate.js';
import { decideStatement, initSqlParser } from '../../../service/policy/sql/index.js';
import type { ClassifiedStatement } from '../../../service/policy/sql/types.js';
import { stmts, targetViews, userObjects } from './helpers.js';

beforeAll(async () => {
  await initSqlParser();
});

function facts(grant: Grant, over: Partial<GateFacts> & { objects?: UserObjects } = {}): GateFacts {
  const outOfSight =
    (grant.mask ?? []).some((r) => 'column' in r) || (grant.deny ?? []).some((r) => 'table' in r);
  return {
    access: grant.access,
    outOfSight,
    tracesViews: outOfSight || grant.access === 'read',
    masking: (grant.mask ?? []).length > 0,
    views: targetViews(),
    unnameable: [],
    relationsSettled: false,
    userObjects: () => over.objects ?? userObjects(),
    userObjectsFresh: false,
    approved: false,
    decide: (s: ClassifiedStatement): Decision => decideStatement(grant, s),
    ...over,
  };
}

const read: Grant = { target: 'db', access: 'read' };
const masked: Grant = { target: 'db', access: 'write', mask: [{ column: 'customers.email' }] };

describe('gateStatements', () => {
  it('passes what every rule allows', () => {
    expect(gateStatements(stmts('SELECT name FROM customers'), 'simple', facts(read))).toBeNull();
  });

  it('reads the lineage again for a relation it does not know, once per message', () => {
    const s = stmts('SELECT * FROM made_since');
    expect(gateStatements(s, 'simple', facts(read))).toEqual({ kind: 'read-views' });
    expect(gateStatements(s, 'simple', facts(read, { relationsSettled: true }))).toBeNull();
    // a grant that traces no views never asks
    expect(gateStatements(s, 'simple', facts({ target: 'db', access: 'write' }))).toBeNull();
  });

  it('judges views before the grant rules, and the grant rules before user code', () => {
    const notReadOnly = [{ view: 'public.customers', relname: 'customers', why: 'x' }];
    expect(
      gateStatements(
        stmts('DELETE FROM customers'),
        'simple',
        facts(read, { views: targetViews({ notReadOnly }) }),
      ),
    ).toMatchObject({ kind: 'refuse', decision: { rule: 'access: read' }, unsupported: false });
    const objects = userObjects({ functions: new Set(['reverse']) });
    expect(
      gateStatements(stmts("DELETE FROM customers; SELECT reverse('a')"), 'simple', facts(read, { objects })),
    ).toMatchObject({ kind: 'refuse', stmt: { kind: 'DELETE' } });
    expect(gateStatements(stmts("SELECT reverse('a')"), 'simple', facts(read, { objects }))).toMatchObject({
      kind: 'refuse',
      decision: { rule: 'access: read', reasons: [expect.stringMatching(/also named reverse/)] },
    });
  });

  it('asks for the user objects when they are not known, fresh ones for unknown calls under masks', () => {
    expect(
      gateStatements(
        stmts('SELECT 1 FROM customers'),
        'simple',
        facts(read, { userObjects: () => undefined }),
      ),
    ).toEqual({ kind: 'read-user-objects', refresh: false });
    expect(gateStatements(stmts('SELECT made_just_now() FROM customers'), 'simple', facts(masked))).toEqual({
      kind: 'read-user-objects',
      refresh: true,
    });
  });

  it('refuses a masked COPY TO in the extended protocol as unsupported, not in the simple one', () => {
    const s = stmts('COPY customers TO STDOUT');
    expect(gateStatements(s, 'extended', facts(masked))).toMatchObject({
      kind: 'refuse',
      unsupported: true,
      decision: { rule: 'mask', reasons: ['COPY … TO STDOUT is masked only in the simple query protocol'] },
    });
    expect(gateStatements(s, 'simple', facts(masked))).toBeNull();
  });

  it('refuses a hold unless an approver approved this message', () => {
    const hold: Decision = { effect: 'hold', rule: 'hold', reasons: ['needs a human'] };
    const s = stmts('SELECT 1');
    expect(gateStatements(s, 'simple', facts(read, { decide: () => hold }))).toMatchObject({
      kind: 'refuse',
      decision: hold,
    });
    expect(gateStatements(s, 'simple', facts(read, { decide: () => hold, approved: true }))).toBeNull();
  });
});
