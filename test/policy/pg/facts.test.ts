import { describe, expect, it } from 'vitest';
import { knowsRelation, namesView } from '../../../service/policy/pg/facts.js';
import { targetViews } from './helpers.js';

describe('catalog facts', () => {
  it('knows a relation by its name or any split of a qualified name', () => {
    const tv = targetViews({ names: ['customers'] });
    expect(knowsRelation(tv, 'customers')).toBe(true);
    expect(knowsRelation(tv, 'public.customers')).toBe(true);
    expect(knowsRelation(tv, 'other.customers_x')).toBe(false);
    const dotted = { ...tv, relations: new Set(['b.c']), qualified: new Set(['a\u0000b.c']) };
    expect(knowsRelation(dotted, 'a.b.c')).toBe(true);
  });

  it('matches a view by relname, schema.relname, or any qualified spelling ending in it', () => {
    const v = { view: 'public.v', relname: 'v' };
    expect(['v', 'public.v', 'other.v'].map((n) => namesView(n, v))).toEqual([true, true, true]);
    expect(namesView('vv', v)).toBe(false);
  });
});
