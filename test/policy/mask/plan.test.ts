import { describe, expect, it } from 'vitest';
import type { MaskRule } from '../../../service/config/schema.js';
import { planMask, TYPE_OID } from '../../../service/policy/mask/plan.js';
import type { ColumnOrigin } from '../../../service/policy/sql/types.js';

const col = (name: string, table: string | null, typeOid: number, format: 0 | 1 = 0): ColumnOrigin => ({
  name,
  table,
  column: table ? name : null,
  typeOid,
  format,
});
const INT4 = 23;
const CITEXT = 16500;

describe('planMask', () => {
  const rules: MaskRule[] = [
    { column: 'customers.email' },
    { column: 'billing.cards.number' },
    { column: 'customers.meta' },
  ];

  it('maps each column to an action', () => {
    const cases: Array<[ColumnOrigin, ReturnType<typeof planMask>['actions'][number]]> = [
      [col('email', 'public.customers', TYPE_OID.text), { kind: 'mask', rule: 'customers.email' }],
      [col('email', 'public.customers', TYPE_OID.varchar), { kind: 'mask', rule: 'customers.email' }],
      [col('email', 'public.customers', TYPE_OID.bpchar), { kind: 'mask', rule: 'customers.email' }],
      [col('email', 'public.customers', CITEXT), { kind: 'mask', rule: 'customers.email' }],
      // binary text of a built-in string type is its UTF-8: masked as in text format
      [col('email', 'public.customers', TYPE_OID.text, 1), { kind: 'mask', rule: 'customers.email' }],
      [col('email', 'public.customers', TYPE_OID.varchar, 1), { kind: 'mask', rule: 'customers.email' }],
      // a user type's binary form is its own, and "char" is one byte: NULL
      [col('email', 'public.customers', CITEXT, 1), { kind: 'null', rule: 'customers.email' }],
      [col('email', 'public.customers', TYPE_OID.char, 1), { kind: 'null', rule: 'customers.email' }],
      [col('meta', 'public.customers', TYPE_OID.jsonb), { kind: 'null', rule: 'customers.meta' }],
      [col('email', 'Public.Customers', TYPE_OID.text), { kind: 'mask', rule: 'customers.email' }],
      [col('number', 'billing.cards', INT4), { kind: 'null', rule: 'billing.cards.number' }],
      [col('number', 'public.cards', TYPE_OID.text), { kind: 'pass' }],
      [col('email', 'archive.customers', TYPE_OID.text), { kind: 'pass' }],
      [col('name', 'public.customers', TYPE_OID.text), { kind: 'pass' }],
      [col('email', null, TYPE_OID.text), { kind: 'pass' }],
    ];
    for (const [origin, action] of cases) {
      expect({ origin, action: planMask(rules, [origin]).actions[0] }).toEqual({ origin, action });
    }
    expect(planMask(rules, [col('name', 'public.customers', TYPE_OID.text)]).active).toBe(false);
    expect(planMask(rules, [col('email', 'public.customers', TYPE_OID.text)]).active).toBe(true);
  });

  it('scans every text-like column when detectors are configured, computed ones included', () => {
    const withDetectors: MaskRule[] = [...rules, { detector: 'email' }];
    const plan = planMask(withDetectors, [
      col('email', 'public.customers', TYPE_OID.text),
      col('?column?', null, TYPE_OID.text),
      col('note', 'public.orders', TYPE_OID.varchar, 1),
      col('doc', null, TYPE_OID.jsonb),
      col('x', null, TYPE_OID.xml),
      col('label', null, CITEXT),
      col('label', null, CITEXT, 1),
      col('n', null, INT4),
      col('tags', null, 1009), // text[]
      col('tags', null, 1009, 1),
      col('r', null, 2249), // record
      col('v', null, 3614), // tsvector
      col('ints', null, 1007), // int4[]
    ]);
    expect(plan.actions).toEqual([
      { kind: 'mask', rule: 'customers.email' },
      { kind: 'detect' },
      { kind: 'detect' },
      { kind: 'detect', json: true },
      { kind: 'detect' },
      { kind: 'detect' },
      // a user type's binary layout is its own: not scannable, so NULL
      { kind: 'null', rule: 'detectors: binary value' },
      { kind: 'pass' },
      { kind: 'detect' },
      { kind: 'null', rule: 'detectors: binary value' },
      { kind: 'detect' },
      { kind: 'detect' },
      { kind: 'pass' },
    ]);
    expect(plan.active).toBe(true);
  });

  it('is inactive without rules', () => {
    expect(planMask([], [col('email', 'public.customers', TYPE_OID.text)])).toEqual({
      actions: [{ kind: 'pass' }],
      active: false,
    });
  });
});
