// Statements as the classifier reads them, and catalog facts as the gateway would read them.
import type { TargetViews, UserObjects, ViewLineage } from '../../../service/policy/pg/facts.js';
import { classifySql } from '../../../service/policy/sql/index.js';
import type { ClassifiedStatement } from '../../../service/policy/sql/types.js';

export function stmts(sql: string): ClassifiedStatement[] {
  const r = classifySql(sql);
  if (!r.ok) throw new Error(r.error);
  return r.statements;
}

export const stmt = (sql: string): ClassifiedStatement => stmts(sql)[0]!;

export function userObjects(over: Partial<UserObjects> = {}): UserObjects {
  return { functions: new Set(), operators: new Set(), castTargets: new Set(), implicitCasts: [], ...over };
}

export function targetViews(over: Partial<TargetViews> & { names?: string[] } = {}): TargetViews {
  const names = over.names ?? ['customers', 'orders'];
  return {
    views: [],
    traced: new Set(),
    relations: new Set(names),
    qualified: new Set(names.map((n) => `public\u0000${n}`)),
    notReadOnly: [],
    ...over,
  };
}

/** A view over customers.email, as lineage. */
export function emailView(view = 'public.contact_view', dotted = false): ViewLineage {
  return {
    view,
    relname: view.slice(view.indexOf('.') + 1),
    dotted,
    columns: [{ name: 'email', source: { table: 'public.customers', column: 'email' } }],
    definition: stmt('SELECT email FROM customers'),
  };
}
