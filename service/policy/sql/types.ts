// The contract between SQL classification/masking (pure, service/policy) and the PostgreSQL gateway (I/O).
import type { Decision } from '../decision.js';

/** What one statement does, as proven from the real parser's tree (libpg-query). */
export interface ClassifiedStatement {
  /** upper-case statement kind: SELECT, INSERT, UPDATE, DELETE, MERGE, COPY, CREATE TABLE, DROP, TRUNCATE, SET, SHOW, BEGIN, … */
  kind: string;
  /**
   * read: proven read-only (no writes anywhere in the tree, only allow-listed functions, no locking clause);
   * write: DML; ddl: schema change; admin: roles/grants/system/server-side files;
   * transaction: BEGIN/COMMIT/ROLLBACK/SAVEPOINT; session: harmless SET/SHOW/RESET/DISCARD/LISTEN…;
   * unknown: could not be placed (always denied).
   */
  effect: 'read' | 'write' | 'ddl' | 'admin' | 'transaction' | 'session' | 'unknown';
  /** every relation the tree references, as "schema.table" when qualified, else "table" */
  tables: string[];
  /** every function called anywhere in the tree, lower case, "schema.fn" when qualified */
  functions: string[];
  /** the statement's own text with password literals and secret-looking literals redacted */
  text: string;
  /** facts that force a denial whatever the access level (e.g. "COPY … PROGRAM runs a server-side program") */
  forbidden: string[];
  /** for COPY: what the gateway needs to mask COPY TO output or check COPY FROM */
  copy?: { direction: 'to' | 'from'; table?: string; columns?: string[]; query: boolean; program: boolean; file: boolean };
  /** column references, for masking decisions: where a column name is used */
  columnRefs: ColumnRef[];
}

export interface ColumnRef {
  /** the qualifier as written (alias or table), lower case; null when unqualified */
  qualifier: string | null;
  /** column name, lower case; "*" for a star */
  column: string;
  /** bare: a plain output column of a select list; expression: inside an output expression
   *  (function argument, cast, operator, row/array constructor); predicate: WHERE/JOIN/ORDER/GROUP/HAVING */
  use: 'bare' | 'expression' | 'predicate';
}

export type ClassifyResult =
  | { ok: true; statements: ClassifiedStatement[] }
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
  /** run content detectors over a text cell */
  | { kind: 'detect' }
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

/** Signatures the implementation exports (service/policy/sql/*.ts, service/policy/mask/*.ts). */
export interface SqlPolicy {
  classifySql(sql: string): ClassifyResult;
  decideStatement(grant: import('../../config/schema.js').Grant, stmt: ClassifiedStatement): Decision;
  planMask(rules: import('../../config/schema.js').MaskRule[], columns: ColumnOrigin[]): MaskPlan;
  maskCell(action: CellAction, value: Buffer | null, detectors: import('../../config/schema.js').Detector[]): MaskedCell;
  redactSql(sql: string): string;
}
