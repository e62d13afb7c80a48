// What the PostgreSQL gateway reads from a target's catalog for the policy to judge with: pure data.
// The gateway's catalog reader (gateways/postgres/catalog/) fills these in; the judgements in this
// folder take them as arguments.
import type { ViewColumns } from '../mask/views.js';

/**
 * A view's (or materialized view's, or a partition's) result columns traced through its definition:
 * the base column each passes on unchanged, or null for a computed column (policy/mask/views.ts).
 */
export type ViewLineage = ViewColumns;

/** A view found not proven read-only (see viewsNotReadOnly). */
export interface UnsafeView {
  /** "schema.view" */
  view: string;
  relname: string;
  why: string;
}

/** A target's views, traced, and the names of every relation it has (to notice one created since). */
export interface TargetViews {
  views: ViewLineage[];
  /** OIDs of the views, materialized views, partitions and inheritance children traced in `views` */
  traced: ReadonlySet<number>;
  /** relname of every table, view, materialized view, partitioned and foreign table, in any schema */
  relations: ReadonlySet<string>;
  /** the same relations as `schema NUL relname` (see knowsRelation) */
  qualified: ReadonlySet<string>;
  /** views whose definitions are not proven read-only (a side-effect function, a user's function, an
   *  unreadable definition, or a view of that kind read): reading one runs it, so `read` refuses them */
  notReadOnly: UnsafeView[];
}

/** Functions, operators, casts and domain constraints created by users (outside pg_catalog and information_schema, not extension members). */
export interface UserObjects {
  /** names of functions created outside pg_catalog and information_schema */
  functions: ReadonlySet<string>;
  /** names of operators created there */
  operators: ReadonlySet<string>;
  /** pg_type names of the types a conversion to may run a user's function: the targets of casts users
   *  created with a function, and domains whose CHECK constraints call a function defined outside pg_catalog */
  castTargets: ReadonlySet<string>;
  /** the implicit ones among those casts, described ("mytype -> text via public.f(mytype)"): they may
   *  run in any expression, without a cast written */
  implicitCasts: string[];
}

/**
 * Does the traced catalog know the relation a statement names ("rel" or "schema.rel", as the
 * classifier writes it)? Names may hold a '.' themselves, so every split of a qualified name is tried.
 */
export function knowsRelation(tv: TargetViews, name: string): boolean {
  if (tv.relations.has(name)) return true;
  for (let k = name.indexOf('.'); k >= 0; k = name.indexOf('.', k + 1))
    if (tv.qualified.has(`${name.slice(0, k)}\u0000${name.slice(k + 1)}`)) return true;
  return false;
}

/** Does a relation name as a statement writes it ("rel", "schema.rel") denote this view? */
export function namesView(name: string, v: { view: string; relname: string }): boolean {
  return name === v.relname || name === v.view || name.endsWith(`.${v.relname}`);
}
