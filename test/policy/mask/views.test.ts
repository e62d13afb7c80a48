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
        relname: 'v',
        dotted: false,
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
    expect(viewMaskRules(rules, views).rules).toEqual([
      { column: 'public.v.contact' },
      { column: 'public.v.n', strict: true },
    ]);
  });

  it('masks every computed column of a view whose definition computes with a masked column', () => {
    const views: ViewColumns[] = [
      {
        view: 'public.w',
        relname: 'w',
        dotted: false,
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
        relname: 'z',
        dotted: false,
        columns: [{ name: 'u', source: null }],
        definition: def('SELECT upper(name) AS u FROM customers'),
      },
    ];
    expect(viewMaskRules(rules, views).rules).toEqual([{ column: 'public.w.u' }, { column: 'public.w.k' }]);
  });

  it('follows views of views whatever the order, and fails closed on a definition it could not read', () => {
    const views: ViewColumns[] = [
      {
        view: 'public.outer_v',
        relname: 'outer_v',
        dotted: false,
        columns: [{ name: 'e', source: src('public.inner_v', 'x') }],
        definition: def('SELECT x AS e FROM inner_v'),
      },
      {
        view: 'public.outer2_v',
        relname: 'outer2_v',
        dotted: false,
        columns: [{ name: 'l', source: null }],
        definition: def('SELECT lower(e) AS l FROM outer_v'),
      },
      {
        view: 'public.inner_v',
        relname: 'inner_v',
        dotted: false,
        columns: [{ name: 'x', source: src('public.customers', 'email') }],
        definition: def('SELECT email AS x FROM customers'),
      },
      {
        view: 'public.opaque',
        relname: 'opaque',
        dotted: false,
        columns: [{ name: 'a', source: null }],
        definition: null,
      },
    ];
    expect(
      viewMaskRules(rules, views)
        .rules.map((r) => ('column' in r ? r.column : ''))
        .sort(),
    ).toEqual(['public.inner_v.x', 'public.opaque.a', 'public.outer2_v.l', 'public.outer_v.e']);
    expect(viewMaskRules([{ detector: 'email' }], views)).toEqual({ rules: [], unnameable: [] });
  });

  it('names the views over masked columns that no rule can spell (a dot in a name), and what they feed', () => {
    const odd: ViewColumns = {
      view: 'public.odd.view',
      relname: 'odd.view',
      dotted: true,
      columns: [{ name: 'e', source: src('public.customers', 'email') }],
      definition: def('SELECT email AS e FROM customers'),
    };
    const views: ViewColumns[] = [
      {
        view: 'public.over_odd',
        relname: 'over_odd',
        dotted: false,
        columns: [{ name: 'e2', source: src('public.odd.view', 'e') }],
        definition: def('SELECT e AS e2 FROM "odd.view"'),
      },
      odd,
      // dotted, but passes nothing masked on: not refused
      {
        view: 'public.plain.names',
        relname: 'plain.names',
        dotted: true,
        columns: [{ name: 'n', source: src('public.customers', 'name') }],
        definition: def('SELECT name AS n FROM customers'),
      },
    ];
    expect(viewMaskRules(rules, views)).toEqual({
      // which rule it came through is lost with the name: the strictest there is
      rules: [{ column: 'public.over_odd.e2', strict: true }],
      unnameable: [odd],
    });
  });
});
