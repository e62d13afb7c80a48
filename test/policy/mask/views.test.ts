import { beforeAll, describe, expect, it } from 'vitest';
import type { MaskRule } from '../../../service/config/schema.js';
import { deniedThroughViews, type ViewColumns, viewMaskRules } from '../../../service/policy/mask/views.js';
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

/** A view in schema public: its columns as [name, source] pairs, and its definition's text (null: unread). */
function view(
  relname: string,
  columns: Array<[string, { table: string; column: string } | null]>,
  sql: string | null,
): ViewColumns {
  return {
    view: `public.${relname}`,
    relname,
    dotted: relname.includes('.') || columns.some(([name]) => name.includes('.')),
    columns: columns.map(([name, source]) => ({ name, source })),
    definition: sql === null ? null : def(sql),
  };
}

describe('viewMaskRules', () => {
  const rules: MaskRule[] = [{ column: 'customers.email' }, { column: 'billing.cards.number', strict: true }];

  it('gives a view column the rule of the base column it passes on, strict staying strict', () => {
    const views: ViewColumns[] = [
      view(
        'v',
        [
          ['id', src('public.customers', 'id')],
          ['contact', src('public.customers', 'email')],
          ['n', src('billing.cards', 'number')],
        ],
        'SELECT c.id, c.email AS contact, k.number AS n FROM customers c JOIN billing.cards k ON true',
      ),
    ];
    expect(viewMaskRules(rules, views).rules).toEqual([
      { column: 'public.v.contact' },
      { column: 'public.v.n', strict: true },
    ]);
  });

  it('masks every computed column of a view whose definition computes with a masked column', () => {
    const views: ViewColumns[] = [
      view(
        'w',
        [
          ['id', src('public.customers', 'id')],
          ['u', null],
          ['k', null],
        ],
        "SELECT id, upper(email) AS u, 'x' AS k FROM customers",
      ),
      // computes, but with nothing masked: untouched
      view('z', [['u', null]], 'SELECT upper(name) AS u FROM customers'),
    ];
    expect(viewMaskRules(rules, views).rules).toEqual([{ column: 'public.w.u' }, { column: 'public.w.k' }]);
  });

  it('follows views of views whatever the order, and fails closed on a definition it could not read', () => {
    const views: ViewColumns[] = [
      view('outer_v', [['e', src('public.inner_v', 'x')]], 'SELECT x AS e FROM inner_v'),
      view('outer2_v', [['l', null]], 'SELECT lower(e) AS l FROM outer_v'),
      view('inner_v', [['x', src('public.customers', 'email')]], 'SELECT email AS x FROM customers'),
      view('opaque', [['a', null]], null),
    ];
    expect(
      viewMaskRules(rules, views)
        .rules.map((r) => ('column' in r ? r.column : ''))
        .sort(),
    ).toEqual(['public.inner_v.x', 'public.opaque.a', 'public.outer2_v.l', 'public.outer_v.e']);
    expect(viewMaskRules([{ detector: 'email' }], views)).toEqual({ rules: [], unnameable: [] });
  });

  it('names the views over masked columns that no rule can spell (a dot in a name), and what they feed', () => {
    const odd: ViewColumns = view(
      'odd.view',
      [['e', src('public.customers', 'email')]],
      'SELECT email AS e FROM customers',
    );
    const views: ViewColumns[] = [
      view('over_odd', [['e2', src('public.odd.view', 'e')]], 'SELECT e AS e2 FROM "odd.view"'),
      odd,
      // dotted, but passes nothing masked on: not refused
      view('plain.names', [['n', src('public.customers', 'name')]], 'SELECT name AS n FROM customers'),
    ];
    expect(viewMaskRules(rules, views)).toEqual({
      // which rule it came through is lost with the name: the strictest there is
      rules: [{ column: 'public.over_odd.e2', strict: true }],
      unnameable: [odd],
    });
  });
});

describe('deniedThroughViews', () => {
  it('denies views and children reading a denied table, through one another, and unreadable ones', () => {
    const views: ViewColumns[] = [
      view('v1', [['s', src('public.secrets', 's')]], 'SELECT s FROM public.secrets'),
      view('v2', [['n', null]], 'SELECT count(*) AS n FROM v1'),
      view('v3', [['x', null]], 'SELECT 1 AS x FROM orders'),
      // an inheritance child: no definition of its own, its columns sourced from the parent
      view(
        'child',
        [
          ['s', src('vault.secrets', 's')],
          ['extra', null],
        ],
        'SELECT 1',
      ),
      view('unread', [['y', null]], null),
    ];
    expect(deniedThroughViews(['secrets'], views).sort()).toEqual([
      'public.child',
      'public.unread',
      'public.v1',
      'public.v2',
    ]);
    // a qualified rule meets only its schema's table
    expect(deniedThroughViews(['vault.secrets'], views).sort()).toEqual(['public.child', 'public.unread']);
    expect(deniedThroughViews([], views)).toEqual([]);
  });
});
