// Which setting a set_config call changes when its name is a column: pg_dump's idiom.
import { constText, names, type Node, typed } from './parse-tree.js';

/**
 * pg_dump's `SELECT set_config(name, '…', false) FROM pg_settings WHERE name = 'x'`: the setting name is a
 * column, pinned to one constant by the WHERE clause of a single-table scan of pg_settings.
 */
export function pgSettingsName(arg: unknown, select: Node | undefined): string | undefined {
  const ref = typed(arg);
  if (!select || !ref || ref[0] !== 'ColumnRef' || names(ref[1].fields).pop() !== 'name') return undefined;
  const from = Array.isArray(select.fromClause) ? select.fromClause : [];
  const rel = from.length === 1 ? typed(from[0]) : null;
  if (rel?.[0] !== 'RangeVar' || rel[1].relname !== 'pg_settings') return undefined;
  if (rel[1].schemaname !== undefined && rel[1].schemaname !== 'pg_catalog') return undefined;
  const where = typed(select.whereClause);
  if (where?.[0] !== 'A_Expr' || where[1].kind !== 'AEXPR_OP' || names(where[1].name).join() !== '=') {
    return undefined;
  }
  const sides = [where[1].lexpr, where[1].rexpr];
  const column = sides.find((side) => {
    const t = typed(side);
    return t?.[0] === 'ColumnRef' && names(t[1].fields).pop() === 'name';
  });
  const value = sides
    .map((side) => (typed(side)?.[0] === 'A_Const' ? constText(side) : undefined))
    .find((v) => v !== undefined);
  return column !== undefined ? value : undefined;
}
