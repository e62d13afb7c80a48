// The real PostgreSQL parser (libpg-query, WASM). It must be loaded once before any classification;
// until then every call fails closed.
import { loadModule, parseSync, type ScanResult, scanSync } from 'libpg-query';

let ready = false;
let loading: Promise<void> | null = null;

/** Load the parser's WASM module. Call once at start-up (idempotent, concurrent calls share one load). */
export function initSqlParser(): Promise<void> {
  if (ready) return Promise.resolve();
  loading ??= loadModule().then(() => {
    ready = true;
  });
  return loading;
}

export function sqlParserReady(): boolean {
  return ready;
}

export class SqlParserNotReady extends Error {
  constructor() {
    super('SQL parser not initialised: call initSqlParser() at start-up before classifying statements');
  }
}

/** A JSON node of the parse tree: the parser's protobuf-as-JSON output. */
export type ParseNode = { [key: string]: unknown };

export interface RawStatement {
  stmt: ParseNode;
  /** byte offsets into the UTF-8 encoding of the whole text */
  byteStart: number;
  byteEnd: number;
}

export type ParseOutcome =
  { ok: true; statements: RawStatement[] } | { ok: false; error: string; position?: number };

export function parseStatements(sql: string): ParseOutcome {
  if (!ready) throw new SqlParserNotReady();
  let tree: { stmts?: Array<{ stmt?: ParseNode; stmt_location?: number; stmt_len?: number }> };
  try {
    tree = parseSync(sql) as unknown as typeof tree;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const details = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
    const cursor = details?.cursorPosition;
    // libpg-query reports a 0-based character offset; PostgreSQL's ErrorResponse uses 1-based.
    return typeof cursor === 'number' && cursor >= 0
      ? { ok: false, error: message, position: cursor + 1 }
      : { ok: false, error: message };
  }
  const totalBytes = Buffer.byteLength(sql, 'utf8');
  const statements: RawStatement[] = [];
  for (const raw of tree.stmts ?? []) {
    if (!raw.stmt) continue;
    const byteStart = raw.stmt_location ?? 0;
    // The last statement has no stmt_len ("to the end of the text").
    const byteEnd = raw.stmt_len ? byteStart + raw.stmt_len : totalBytes;
    statements.push({ stmt: raw.stmt, byteStart, byteEnd });
  }
  return { ok: true, statements };
}

export function scanTokens(sql: string): ScanResult['tokens'] | null {
  if (!ready) throw new SqlParserNotReady();
  try {
    return scanSync(sql).tokens;
  } catch {
    return null;
  }
}
