// Which client startup parameters reach the upstream. The broker decides the upstream's identity,
// database and guards; the client only chooses cosmetic, per-session formatting. Keys arrive lower-cased
// (frontend-reader.ts: PostgreSQL's setting names are case-insensitive).

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

// The judgements on encodings and reported settings live in policy/pg/settings.ts.
export {
  clientEncodingProblem,
  reportedSettingProblem,
  type SettingProblem,
} from '../../policy/pg/settings.js';

export interface FilteredStartup {
  forwarded: Map<string, string>;
  dropped: string[];
}

export function filterStartupParameters(params: ReadonlyMap<string, string>): FilteredStartup {
  const forwarded = new Map<string, string>();
  const dropped: string[] = [];
  for (const [key, value] of params) {
    if (key === 'user' || key === 'database') continue;
    // (the client's client_encoding was checked; the upstream always gets UTF8)
    if (key === 'client_encoding') continue;
    if (FORWARDED.has(key) && !value.includes('\0')) forwarded.set(key, value);
    else dropped.push(key);
  }
  forwarded.set('client_encoding', 'UTF8');
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
