import { beforeAll, describe, expect, it } from 'vitest';
import type { MaskRule } from '../../../service/config/schema.js';
import { type ViewColumns, viewMaskRules } from '../../../service/policy/mask/views.js';
import { classifySql, initSqlParser } from '../../../service/policy/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

function def(sql: string) {
  const r = classifySql(sql);
  if (!r.ok) throw new Error(r.error);
  return r.statements[0]!;
}

const src = (table: string, column: string) => ({ table, column });

describe('viewMaskRules', () => {
  const rules: MaskRule[] = [{ column: 'customers.email' }, { column: 'billing.cards.number', strict: true }];

  it('gives a view column the rule of the base column it passes on, strict staying strict', () => {
    const views: ViewColumns[] = [
      {
        view: 'public.v',
        columns: [
          { name: 'id', source: src('public.customers', 'id') },
          { name: 'contact', source: src('public.customers', 'email') },
          { name: 'n', source: src('billing.cards', 'number') },
        ],
        definition: def(
          'SELECT c.id, c.email AS contact, k.number AS n FROM customers c JOIN billing.cards k ON true',
        ),
      },
    ];
    expect(viewMaskRules(rules, views)).toEqual([
      { column: 'public.v.contact' },
      { column: 'public.v.n', strict: true },
    ]);
  });

  it('masks every computed column of a view whose definition computes with a masked column', () => {
    const views: ViewColumns[] = [
      {
        view: 'public.w',
        columns: [
          { name: 'id', source: src('public.customers', 'id') },
          { name: 'u', source: null },
          { name: 'k', source: null },
        ],
        definition: def("SELECT id, upper(email) AS u, 'x' AS k FROM customers"),
      },
      // computes, but with nothing masked: untouched
      {
        view: 'public.z',
        columns: [{ name: 'u', source: null }],
        definition: def('SELECT upper(name) AS u FROM customers'),
      },
    ];
    expect(viewMaskRules(rules, views)).toEqual([{ column: 'public.w.u' }, { column: 'public.w.k' }]);
  });

  it('follows views of views whatever the order, and fails closed on a definition it could not read', () => {
    const views: ViewColumns[] = [
      {
        view: 'public.outer_v',
        columns: [{ name: 'e', source: src('public.inner_v', 'x') }],
        definition: def('SELECT x AS e FROM inner_v'),
      },
      {
        view: 'public.outer2_v',
        columns: [{ name: 'l', source: null }],
        definition: def('SELECT lower(e) AS l FROM outer_v'),
      },
      {
        view: 'public.inner_v',
        columns: [{ name: 'x', source: src('public.customers', 'email') }],
        definition: def('SELECT email AS x FROM customers'),
      },
      { view: 'public.opaque', columns: [{ name: 'a', source: null }], definition: null },
    ];
    expect(
      viewMaskRules(rules, views)
        .map((r) => ('column' in r ? r.column : ''))
        .sort(),
    ).toEqual(['public.inner_v.x', 'public.opaque.a', 'public.outer2_v.l', 'public.outer_v.e']);
    expect(viewMaskRules([{ detector: 'email' }], views)).toEqual([]);
  });
});
