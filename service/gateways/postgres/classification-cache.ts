// A cache in front of classifySql for the hot path: applications send the same read statement over
// and over with different numbers in it ("… WHERE id = 41", "… WHERE id = 42"). Parsing costs tens of
// microseconds; the cache turns that into a string scan.
//
// Soundness: two texts share a key only if they are identical except for digits that start numeric
// literals, at the same positions. The key is computed only for texts made of a small character set
// (no quotes, dollar signs, backslashes, comments or non-ASCII), where telling a numeric literal from
// an identifier is a one-character look-behind, so the two texts lex into the same token sequence
// with only number values differing. A result is cached only when it cannot depend on such a value:
// one plain SELECT, proven read-only, with nothing forbidden, no EXECUTE/PREPARE/COPY and a transcript
// text equal to its source (nothing redacted), and no ORDER BY/GROUP BY/DISTINCT ON by position (ORDER
// BY 1 and ORDER BY 2 read different columns). Anything else goes to the classifier every time.
import type { Grant } from '../../config/schema.js';
import type { Decision } from '../../policy/decision.js';
import { classifySql, decideStatement, type PreparedStatements } from '../../policy/sql/index.js';
import type { ClassifiedStatement, ClassifyResult } from '../../policy/sql/types.js';

export interface CacheEntry {
  stmt: ClassifiedStatement;
  /** where the statement's source lies in the text (same positions in every text with this key) */
  start: number;
  end: number;
  /** decideStatement is pure in (grant, statement): one decision per grant object */
  decisions: WeakMap<Grant, Decision>;
}

export interface CachedClassification {
  result: ClassifyResult;
  /** set when the result came from (or went into) the cache: its decisions can be cached too */
  entry: CacheEntry | null;
}

const MAX_ENTRIES = 10_000;
const MAX_CACHED_LENGTH = 4096;

/** Allowed: a-z A-Z 0-9 _ space \t \n \r = < > ( ) , . ; * + - /  (and no "--", "/*"). */
const ALLOWED = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ \t\n\r=<>(),.;*+-/')
  ALLOWED[c.charCodeAt(0)] = 1;

const isIdentChar = (c: number): boolean =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;

/**
 * The cache key: digits that belong to numeric literals become '0' (length preserved), or null when
 * the text is outside the character set, holds a comment, or a digit run long enough to be a card
 * number or key (13+ digits: the transcript must then go through redaction).
 */
export function numericShapeKey(sql: string): string | null {
  const n = sql.length;
  if (n === 0 || n > MAX_CACHED_LENGTH) return null;
  let out = '';
  let copiedTo = 0;
  let prev = 32;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c >= 128 || ALLOWED[c] === 0) return null;
    if ((c === 45 && prev === 45) || (c === 42 && prev === 47) || (c === 47 && prev === 42)) return null; // -- /* */
    if (c >= 48 && c <= 57 && !isIdentChar(prev)) {
      let j = i;
      while (j < n && sql.charCodeAt(j) >= 48 && sql.charCodeAt(j) <= 57) j++;
      if (j - i >= 13) return null;
      out += sql.slice(copiedTo, i) + '0'.repeat(j - i);
      copiedTo = j;
      prev = 48;
      i = j;
      continue;
    }
    prev = c;
    i++;
  }
  return copiedTo === 0 ? sql : out + sql.slice(copiedTo);
}

function cacheable(stmt: ClassifiedStatement): boolean {
  return (
    stmt.kind === 'SELECT' &&
    stmt.kinds.length === 1 &&
    stmt.effect === 'read' &&
    stmt.forbidden.length === 0 &&
    stmt.maskBypass.length === 0 &&
    stmt.readOnlyEscapes.length === 0 &&
    stmt.executes.length === 0 &&
    stmt.prepare === undefined &&
    stmt.deallocate === undefined &&
    stmt.copy === undefined &&
    stmt.positional === undefined &&
    stmt.text === stmt.source
  );
}

export class ClassificationCache {
  private readonly entries = new Map<string, CacheEntry>();
  hits = 0;
  misses = 0;

  classify(sql: string, prepared: PreparedStatements): CachedClassification {
    const key = numericShapeKey(sql);
    if (key !== null) {
      const e = this.entries.get(key);
      if (e) {
        this.hits++;
        const source = sql.slice(e.start, e.end);
        return { result: { ok: true, statements: [{ ...e.stmt, source, text: source }] }, entry: e };
      }
    }
    this.misses++;
    const result = classifySql(sql, prepared);
    if (key !== null && result.ok && result.statements.length === 1) {
      const stmt = result.statements[0]!;
      const start = sql.indexOf(stmt.source);
      if (start >= 0 && cacheable(stmt)) {
        if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
        const entry: CacheEntry = { stmt, start, end: start + stmt.source.length, decisions: new WeakMap() };
        this.entries.set(key, entry);
        return { result, entry };
      }
    }
    return { result, entry: null };
  }

  /** decideStatement, remembered per grant for cached statements. */
  decide(entry: CacheEntry | null, grant: Grant, stmt: ClassifiedStatement): Decision {
    if (!entry) return decideStatement(grant, stmt);
    let d = entry.decisions.get(grant);
    if (!d) {
      d = decideStatement(grant, entry.stmt);
      entry.decisions.set(grant, d);
    }
    return d;
  }
}
