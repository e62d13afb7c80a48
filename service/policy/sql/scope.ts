// Name scopes of a SELECT as the classifier walks it: which relation an alias, a FROM subquery or a
// CTE denotes, and which base-table columns each derived column passes through (for masking: where a
// column's value flows).

/** output: top-level result; derived: a FROM subquery or CTE body (its columns are named for the outer query) */
export type Use = 'output' | 'derived' | 'expression' | 'predicate';

export interface Binding {
  qualifier: string | null;
  table?: string;
  column: string;
}

/** The output columns of a FROM subquery or CTE, each bound to the base-table columns it passes through. */
export interface Derived {
  names: string[];
  columns: Map<string, Binding[]>;
  /** `*` / `t.*` in the subquery's select list: any column name may come from these */
  stars: Binding[];
  /** positional renaming over a star: we cannot tell which column is which */
  opaque: boolean;
}

export interface Scope {
  parent: Scope | null;
  /** alias (or table name when unaliased, also "schema.table") → table as written */
  bases: Map<string, string>;
  derived: Map<string, Derived>;
  ctes: Map<string, Derived>;
  /** names merged by FULL JOIN … USING / NATURAL FULL JOIN: an unqualified reference is a COALESCE */
  merged: Set<string>;
  natural: boolean;
}

export interface Ctx {
  use: Use;
  scope: Scope | null;
  /** the derived relation being built when use is 'derived' */
  target?: Derived;
}

export interface Resolved {
  binding: Binding;
  /** a whole-row (composite) value of the relation, not one of its columns */
  composite: boolean;
}

export function exprUse(use: Use): Use {
  return use === 'predicate' ? 'predicate' : 'expression';
}

export function newScope(parent: Scope | null): Scope {
  return { parent, bases: new Map(), derived: new Map(), ctes: new Map(), merged: new Set(), natural: false };
}

export function newDerived(): Derived {
  return { names: [], columns: new Map(), stars: [], opaque: false };
}

/** Apply `AS s(a, b)` / `WITH c(a, b)` positional renaming. */
export function renamed(d: Derived, colnames: string[]): Derived {
  if (colnames.length === 0) return d;
  if (d.stars.length > 0) return { ...d, opaque: true };
  const out = newDerived();
  d.names.forEach((name, i) => {
    const to = colnames[i] ?? name;
    out.names.push(to);
    const bound = d.columns.get(name) ?? [];
    out.columns.set(to, [...(out.columns.get(to) ?? []), ...bound]);
  });
  return out;
}

export function uniqueBindings(list: Binding[]): Binding[] {
  const seen = new Set<string>();
  return list.filter((b) => {
    const key = `${b.qualifier}\u0000${b.table}\u0000${b.column}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function allBindings(d: Derived): Binding[] {
  const out: Binding[] = [];
  for (const list of d.columns.values()) out.push(...list);
  for (const s of d.stars) out.push({ ...s, column: '*' });
  return out;
}

export function derivedLookup(d: Derived, column: string): Binding[] {
  if (d.opaque) return allBindings(d);
  const out = [...(d.columns.get(column) ?? [])];
  for (const s of d.stars) out.push({ ...s, column: s.column === '*' ? column : s.column });
  return out;
}
