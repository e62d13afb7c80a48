// The contract between SQL classification/masking (pure, service/policy) and the PostgreSQL gateway (I/O).

/**
 * read: proven read-only (no writes anywhere in the tree, only allow-listed functions, no locking clause);
 * write: DML or anything with side effects (incl. unknown/user functions, DO, CALL, NOTIFY);
 * ddl: schema change; admin: roles/system/extensions/server maintenance;
 * transaction: BEGIN/COMMIT/ROLLBACK/SAVEPOINT; session: harmless SET/SHOW/RESET/DISCARD/LISTEN…;
 * unknown: could not be placed (always denied).
 */
export type StatementEffect = 'read' | 'write' | 'ddl' | 'admin' | 'transaction' | 'session' | 'unknown';

/** What one statement does, as proven from the real parser's tree (libpg-query). */
export interface ClassifiedStatement {
  /** upper-case statement kind in SQL words: SELECT, INSERT, COPY, CREATE TABLE, DROP INDEX, SET, SHOW, BEGIN, … */
  kind: string;
  /** every statement kind found in the tree, top first, without duplicates (e.g. a data-modifying CTE:
   *  ["SELECT", "DELETE"]; SELECT … INTO: ["SELECT", "CREATE TABLE"]). Deny rules match any of them. */
  kinds: string[];
  effect: StatementEffect;
  /** why the statement is not read-only, one fact per entry naming the statement part or function
   *  (e.g. "DELETE modifies data", "function pg_terminate_backend has side effects"); empty when effect is read */
  effectReasons: string[];
  /** facts that could lift the upstream read-only guard or change identity (SET ROLE, BEGIN READ WRITE,
   *  RESET ALL, DISCARD ALL, set_config('default_transaction_read_only', …)); any entry denies `read` */
  readOnlyEscapes: string[];
  /** every relation the tree references, as "schema.table" when qualified, else "table" (parser-folded case) */
  tables: string[];
  /** every function called anywhere in the tree, "schema.fn" when qualified. Names are as the parser
   *  resolved them: unquoted names are folded to lower case, quoted names keep their case. */
  functions: string[];
  /** every operator the tree names or implies, "schema.op" when qualified (OPERATOR(schema.op)): written
   *  ones, ANY/ALL and ORDER BY … USING operators, BETWEEN's comparisons, and the "=" that IN, CASE x WHEN,
   *  NULLIF, IS DISTINCT FROM and JOIN … USING / NATURAL look up by name */
  operators: string[];
  /** every type named by a cast (x::t, CAST(x AS t)), "schema.type" when qualified */
  casts: string[];
  /** the statement's own text with password literals and secret-looking literals redacted (for the transcript) */
  text: string;
  /** the statement's original text, unredacted: what to forward upstream. Never log it. */
  source: string;
  /** facts that force a denial whatever the access level (e.g. "COPY … PROGRAM runs a server-side program") */
  forbidden: string[];
  /** facts that read table data by name or by SQL text, out of sight of column masks and table deny rules
   *  (table_to_xml, query_to_xml, dblink…): denied at any level when the grant has column masks or deny.table */
  maskBypass: string[];
  /** relations (or their columns, or a schema) whose name the statement changes, or whose rows it lets
   *  another relation show (INHERIT, ATTACH PARTITION) or derive into a new column (GENERATED): a mask
   *  rule naming them would stop applying, so with column masks these are denied for masked tables */
  reshapes: Reshape[];
  /** it orders, groups or picks by select-list position (ORDER BY 2): its meaning depends on a number in it */
  positional?: true;
  /** for COPY: what the gateway needs to mask COPY TO output or check COPY FROM */
  copy?: CopyInfo;
  /** PREPARE name AS …: the name (the classification above is the inner statement's, kind PREPARE) */
  prepare?: { name: string };
  /** names run by EXECUTE anywhere in the tree (EXECUTE p, EXPLAIN ANALYZE EXECUTE p, CREATE TABLE AS EXECUTE p) */
  executes: string[];
  /** DEALLOCATE name / DEALLOCATE ALL (name null) */
  deallocate?: { name: string | null };
  /** column references, for masking decisions: where a column name is used */
  columnRefs: ColumnRef[];
}

/** See ClassifiedStatement.reshapes: a relation as written ("t" or "s.t"), a column of it, or a schema. */
export type Reshape = { table: string; column?: string; what: string } | { schema: string; what: string };

export interface CopyInfo {
  direction: 'to' | 'from';
  /** the table for `COPY table …`, as written ("schema.table" or "table") */
  table?: string;
  /** the column list of `COPY table (a, b) …`, in order; absent means all columns in table order */
  columns?: string[];
  /** COPY (query) TO … */
  query: boolean;
  /** the inner query's original text for COPY (query): the gateway can Describe it upstream to learn
   *  result-column origins for masking */
  queryText?: string;
  program: boolean;
  /** a server-side file (COPY … TO/FROM 'filename') */
  file: boolean;
  /** data format: text (default), csv or binary */
  format: 'text' | 'csv' | 'binary';
  /** the options that change how rows are encoded, defaults filled in */
  delimiter: string;
  /** NULL marker: "\\N" in text, "" in csv */
  null: string;
  quote: string;
  escape: string;
  header: boolean;
}

export interface ColumnRef {
  /** the qualifier as written (alias or table), parser-folded; null when unqualified or when the
   *  qualifier could not be resolved to a base relation (then it may denote any relation) */
  qualifier: string | null;
  /** the base relation the qualifier denotes ("schema.table" or "table" as written), when known */
  table?: string;
  /** column name, parser-folded; "*" for a star or a whole-row reference */
  column: string;
  /** bare: a plain output column whose origin PostgreSQL reports in RowDescription (the gateway masks it);
   *  expression: the value flows into something whose origin is lost (function argument, cast, operator,
   *  row/array constructor, set operation, scalar subquery, RETURNING, INSERT … SELECT, whole-row value);
   *  predicate: WHERE/JOIN/ORDER/GROUP/HAVING/LIMIT, sublinks used as conditions */
  use: 'bare' | 'expression' | 'predicate';
}

export type ClassifyResult =
  | { ok: true; statements: ClassifiedStatement[] }
  /** position: 1-based character offset into the whole text, as in PostgreSQL's ErrorResponse 'P' field */
  | { ok: false; error: string; position?: number };

/** One grant as the SQL policy sees it (from config Grant). */
export type { Grant } from '../../config/schema.js';

/** Origin of one result column (from RowDescription + the upstream catalog). */
export interface ColumnOrigin {
  name: string;
  /** "schema.table" resolved from the table OID, null for computed columns */
  table: string | null;
  /** attribute name resolved from the column number, null for computed columns */
  column: string | null;
  typeOid: number;
  /** 0 text, 1 binary */
  format: 0 | 1;
}

export type CellAction =
  | { kind: 'pass' }
  /** run content detectors over a text cell; json: the cell is json/jsonb and must stay valid JSON */
  | { kind: 'detect'; json?: boolean }
  /** masked column, text type: replace the text with a same-kind mask */
  | { kind: 'mask'; rule: string }
  /** masked column, non-text type or binary format: send NULL */
  | { kind: 'null'; rule: string };

export interface MaskPlan {
  actions: CellAction[];
  /** false when every action is pass: the gateway can forward rows untouched */
  active: boolean;
}

export interface MaskedCell {
  value: Buffer | null;
  masked: boolean;
}
