// Which client startup parameters reach the upstream. The broker decides the upstream's identity,
// database and guards; the client only chooses cosmetic, per-session formatting.

/**
 * Forwarded as given. Everything else is dropped: `options` (it can set any GUC, e.g.
 * default_transaction_read_only=off), `search_path` (it could put a client-chosen schema before
 * pg_catalog), `role`, `replication`, and unknown names.
 */
const FORWARDED = new Set([
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'lc_messages',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'bytea_output',
]);

/**
 * Client encodings whose multi-byte characters can contain ASCII bytes (a backslash or a quote):
 * the classifier reads text as UTF-8, so under these a statement could mean one thing to it and
 * another to the server. PostgreSQL allows them only as client encodings; the broker refuses them.
 */
const UNSAFE_ENCODINGS = new Set([
  'sjis',
  'shiftjis',
  'shiftjis2004',
  'big5',
  'gbk',
  'gb18030',
  'uhc',
  'johab',
  'windows932',
  'windows936',
  'windows949',
  'windows950',
  'mskanji',
  'win932',
  'win936',
  'win949',
  'win950',
]);

export function isSafeClientEncoding(value: string): boolean {
  const norm = value.toLowerCase().replace(/[^a-z0-9]/g, '');
  return !UNSAFE_ENCODINGS.has(norm);
}

export interface FilteredStartup {
  forwarded: Map<string, string>;
  dropped: string[];
}

export function filterStartupParameters(params: ReadonlyMap<string, string>): FilteredStartup {
  const forwarded = new Map<string, string>();
  const dropped: string[] = [];
  for (const [key, value] of params) {
    if (key === 'user' || key === 'database') continue;
    const lower = key.toLowerCase();
    if (FORWARDED.has(lower) && !value.includes('\0')) forwarded.set(key, value);
    else dropped.push(key);
  }
  return { forwarded, dropped };
}

/**
 * The upstream's `options`: GUCs the broker pins. standard_conforming_strings=on keeps backslashes in
 * '…' literals literal, as the classifier reads them; a read grant also opens the session read-only
 * so the database enforces what the classifier decided (belt and braces).
 */
export function upstreamOptions(access: 'read' | 'write' | 'admin'): string {
  const opts = ['-c standard_conforming_strings=on'];
  if (access === 'read') opts.push('-c default_transaction_read_only=on');
  return opts.join(' ');
}
