// Other sessions' statement text. Every session through the broker runs as the target's one upstream
// role, and PostgreSQL shows a role the statement text of its own other backends: a read session could
// read, in pg_stat_activity.query, the literal e-mail another job searched for. Under a masking grant
// those columns are masked like the grant's own (a derived column rule), and the functions that return
// the same text are refused as mask bypasses (policy/sql/functions.ts). What remains visible is listed
// in the README (security): the other columns (who, when, state), and other roles' backends are
// PostgreSQL's own "<insufficient privilege>".
import type { Grant, MaskRule } from '../../config/schema.js';

/** Columns that hold statement text of other backends, as "schema.relation.column". */
export const STATEMENT_TEXT_COLUMNS = [
  'pg_catalog.pg_stat_activity.query',
  // pg_stat_statements lives where CREATE EXTENSION put it: public, or an "extensions" schema
  'public.pg_stat_statements.query',
  'extensions.pg_stat_statements.query',
] as const;

/** The grant a session is decided under: with masks, statement text of other backends is masked too. */
export function withStatementTextMasks(grant: Grant): Grant {
  const mask = grant.mask ?? [];
  if (mask.length === 0) return grant;
  const have = new Set(mask.flatMap((r) => ('column' in r ? [r.column.toLowerCase()] : [])));
  const derived: MaskRule[] = STATEMENT_TEXT_COLUMNS.filter((c) => !have.has(c)).map((column) => ({
    column,
  }));
  return derived.length === 0 ? grant : { ...grant, mask: [...mask, ...derived] };
}
