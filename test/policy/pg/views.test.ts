// View rules (policy/pg/views.ts), with the cases of test/gateways/postgres/bypass.test.ts and
// masking.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import { effectiveGrant, refusedView, viewsNotReadOnly } from '../../../service/policy/pg/views.js';
import { initSqlParser } from '../../../service/policy/sql/index.js';
import { emailView, stmt, stmts, targetViews } from './helpers.js';

beforeAll(async () => {
  await initSqlParser();
});

describe('effectiveGrant', () => {
  it('adds mask rules for view columns over masked columns, and deny rules for views over denied tables', () => {
    const grant: Grant = {
      target: 'db',
      access: 'read',
      mask: [{ column: 'customers.email' }],
      deny: [{ table: ['customers'] }],
    };
    const views = targetViews({ views: [emailView()] });
    const g = effectiveGrant(grant, views);
    expect(g.grant.mask).toEqual([{ column: 'customers.email' }, { column: 'public.contact_view.email' }]);
    expect(g.grant.deny).toEqual([{ table: ['customers'] }, { table: ['public.contact_view'] }]);
    expect(g.unnameable).toEqual([]);
    // memoized: the same grant and lineage give the same object (cached decisions are shared)
    expect(effectiveGrant(grant, views)).toBe(g);
  });

  it('keeps the grant itself when no view passes anything on, and lists unnameable views', () => {
    const grant: Grant = { target: 'db', access: 'read', mask: [{ column: 'customers.email' }] };
    expect(effectiveGrant(grant, targetViews()).grant).toBe(grant);
    const odd = emailView('public.odd.view', true);
    expect(effectiveGrant(grant, targetViews({ views: [odd] })).unnameable).toEqual([odd]);
  });
});

describe('viewsNotReadOnly', () => {
  it('lists views running something that is not read-only, and views reading them', () => {
    const out = viewsNotReadOnly([
      {
        view: 'public.hoop_flip_view',
        relname: 'hoop_flip_view',
        definition: stmt('SELECT public.hoop_flip(1, 2) AS flipped'),
      },
      {
        view: 'public.hoop_outer_view',
        relname: 'hoop_outer_view',
        definition: stmt('SELECT flipped FROM public.hoop_flip_view'),
      },
      { view: 'public.fine', relname: 'fine', definition: stmt('SELECT name FROM customers') },
      { view: 'public.unreadable', relname: 'unreadable', definition: null },
    ]);
    expect(out.map((o) => o.view)).toEqual([
      'public.hoop_flip_view',
      'public.unreadable',
      'public.hoop_outer_view',
    ]);
    expect(out[0]!.why).toMatch(/hoop_flip/);
    expect(out[1]!.why).toBe('its definition could not be read');
    expect(out[2]!.why).toMatch(/^it reads public\.hoop_flip_view, and .*hoop_flip/);
  });
});

describe('refusedView', () => {
  const notReadOnly = [
    { view: 'public.hoop_flip_view', relname: 'hoop_flip_view', why: 'function public.hoop_flip may write' },
  ];

  it('refuses, under read only, a statement naming a view that is not read-only, by any spelling', () => {
    for (const sql of ['SELECT flipped FROM hoop_flip_view', 'SELECT flipped FROM public.hoop_flip_view'])
      expect(refusedView(stmts(sql), 'read', notReadOnly, [])).toMatchObject({
        decision: {
          effect: 'deny',
          rule: 'access: read',
          reasons: [
            'access read: reading view public.hoop_flip_view runs its definition, which is not read-only: function public.hoop_flip may write',
          ],
        },
      });
    expect(refusedView(stmts('SELECT flipped FROM hoop_flip_view'), 'write', notReadOnly, [])).toBeNull();
    expect(refusedView(stmts('SELECT 1 FROM customers'), 'read', notReadOnly, [])).toBeNull();
  });

  it('refuses a statement naming a view over a masked column that no rule can name', () => {
    const odd = emailView('public.odd.view', true);
    expect(refusedView(stmts('SELECT * FROM public."odd.view"'), 'write', [], [odd])).toMatchObject({
      decision: { effect: 'deny', rule: 'mask' },
    });
  });
});
