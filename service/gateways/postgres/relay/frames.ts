// Small pieces of wire text the relay writes itself: a CopyData frame, the query that describes a
// COPY's columns, identifiers quoted for SQL.
import type { CopyInfo } from '../../../policy/sql/types.js';
import { BackendType } from '../backend-messages.js';

export function copyDataFrame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = BackendType.copyData;
  out.writeInt32BE(4 + payload.length, 1);
  payload.copy(out, 5);
  return out;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** The query whose description gives a COPY's columns in COPY's order. */
export function copyDescribeSql(info: CopyInfo): string | null {
  if (info.query) return info.queryText ?? null;
  if (!info.table) return null;
  const table = info.table
    .split('.')
    .map((p) => quoteIdent(p))
    .join('.');
  const cols = info.columns?.length ? info.columns.map(quoteIdent).join(', ') : '*';
  return `SELECT ${cols} FROM ${table}`;
}
