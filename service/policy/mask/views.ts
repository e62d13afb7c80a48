// Column masks through views. A rule names a base column ("customers.email"); a view over it hands the
// same values out under another relation's name, where neither the origin PostgreSQL reports (the
// view's OID and column) nor the classifier's name-based checks would meet the rule. So for each
// grant, every view column that passes a masked column on is given a mask rule of its own, derived
// from the base rule (strict stays strict), and from then on the view column is masked, and refused
// inside expressions, exactly like the base column:
// - a column that is a plain reference (traced by describing the view's definition) gets the rule of
//   the column it comes from, if that one is masked (directly or through another view);
// - a computed column gets one when the definition uses a masked column inside an expression (which
//   computed column it feeds cannot be told), or when the definition could not be read at all.
import type { MaskRule } from '../../config/schema.js';
import { type ColumnMask, columnMaskRules, nameMatches, tableIsRule } from '../sql/decide.js';
import type { ClassifiedStatement, ColumnRef } from '../sql/types.js';

export interface ViewColumns {
  /** "schema.view" */
  view: string;
  /** the view's own name (pg_class.relname) */
  relname: string;
  /** its schema, its name or a column name holds a '.': no rule ("schema.table.column") can name its
   *  columns, so when it passes a masked column on it is refused whole (see ViewMasks.unnameable) */
  dotted: boolean;
  columns: Array<{ name: string; source: { table: string; column: string } | null }>;
  /** the definition as the classifier reads it; null when it could not be parsed or described */
  definition: ClassifiedStatement | null;
}

function ruleFor(masks: readonly ColumnMask[], table: string, column: string): ColumnMask | undefined {
  const dot = table.lastIndexOf('.');
  const schema = table.slice(0, dot).toLowerCase();
  const name = table.slice(dot + 1).toLowerCase();
  const col = column.toLowerCase();
  return masks.find((m) => m.schema === schema && m.table === name && m.column === col);
}

function refMatches(ref: ColumnRef, m: ColumnMask): boolean {
  const column = ref.column.toLowerCase();
  if (column !== m.column && column !== '*') return false;
  return ref.table === undefined || tableIsRule(ref.table, m);
}

export interface ViewMasks {
  /** rules for view columns that pass masked columns on */
  rules: MaskRule[];
  /** views that pass a masked column on but whose names no rule can spell (ViewColumns.dotted):
   *  statements naming them are refused */
  unnameable: ViewColumns[];
}

/** The mask rules a grant's column rules imply for view columns (none without column rules). */
export function viewMaskRules(rules: readonly MaskRule[], views: readonly ViewColumns[]): ViewMasks {
  const masks = columnMaskRules(rules);
  if (masks.length === 0 || views.length === 0) return { rules: [], unnameable: [] };
  const derived: MaskRule[] = [];
  const unnameable = new Set<ViewColumns>();
  // a column passed on from an unnameable view is sensitive too (its "schema.view" string is ambiguous)
  const fromUnnameable = (table: string): boolean => [...unnameable].some((u) => u.view === table);
  const seen = new Set<string>();
  const anyStrict = (): boolean => masks.some((m) => m.strict);
  // a chain of views needs one round per link
  for (let round = 0; round <= views.length; round++) {
    let added = false;
    for (const v of views) {
      let computed: boolean | null = null; // strictness of a mask for computed columns, null: none
      if (v.definition === null) {
        computed = anyStrict();
      } else {
        const def = v.definition;
        for (const m of masks) {
          if (!def.tables.some((t) => tableIsRule(t, m))) continue;
          for (const ref of def.columnRefs)
            if (ref.use === 'expression' && refMatches(ref, m)) computed = (computed ?? false) || m.strict;
        }
      }
      for (const c of v.columns) {
        let strict = c.source ? (ruleFor(masks, c.source.table, c.source.column)?.strict ?? null) : computed;
        if (strict === null && c.source && fromUnnameable(c.source.table)) strict = anyStrict();
        if (strict === null) continue;
        if (v.dotted) {
          if (!unnameable.has(v)) {
            unnameable.add(v);
            added = true;
          }
          continue;
        }
        const column = `${v.view}.${c.name}`;
        if (seen.has(column.toLowerCase())) continue;
        seen.add(column.toLowerCase());
        const rule: MaskRule = strict ? { column, strict: true } : { column };
        derived.push(rule);
        masks.push(...columnMaskRules([rule]));
        added = true;
      }
    }
    if (!added) break;
  }
  return { rules: derived, unnameable: [...unnameable] };
}

/**
 * Table deny rules through views: the relations (views, materialized views, partitions, inheritance
 * children) that read a denied table, directly or through one another, or whose definition could not
 * be read; each "schema.relation". A `deny.table` rule names a table, and these hand its rows out under
 * other names, so a statement naming one is denied like one naming the table.
 */
export function deniedThroughViews(denied: readonly string[], views: readonly ViewColumns[]): string[] {
  if (denied.length === 0 || views.length === 0) return [];
  const names = [...denied];
  const out = new Set<string>();
  const hits = (table: string): boolean => names.some((d) => nameMatches(d, table));
  for (let round = 0; round <= views.length; round++) {
    let added = false;
    for (const v of views) {
      if (out.has(v.view)) continue;
      const reads =
        v.definition === null ||
        v.definition.tables.some(hits) ||
        v.columns.some((c) => c.source !== null && hits(c.source.table));
      if (!reads) continue;
      out.add(v.view);
      names.push(v.view);
      added = true;
    }
    if (!added) break;
  }
  return [...out];
}
