// Which client startup parameters reach the upstream. The broker decides the upstream's identity,
// database and guards; the client only chooses cosmetic, per-session formatting. Keys arrive lower-cased
// (frontend-reader.ts: PostgreSQL's setting names are case-insensitive).
import { isUtf8EncodingName } from '../../policy/sql/functions.js';

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
 * The client encodings a client may ask for. The broker always opens the upstream session with
 * client_encoding=UTF8 (pinned: a role or database default cannot change it, and RESET/DISCARD go back
 * to it), because the classifier reads statements as UTF-8: under SJIS, BIG5, GBK, GB18030 or JOHAB a
 * multi-byte character can end in a backslash or quote byte, so a literal that the classifier reads as
 * one string ends early for the server; under LATIN1 and the other single-byte encodings a name like
 * bücher is spelled in bytes the classifier reads differently. The broker does not transcode: any
 * other encoding is refused with a clear error. SQL_ASCII is accepted, because libpq sends it under
 * the C locale: the server then reads the client's bytes unconverted and checks them as UTF-8, which
 * is exactly how the classifier reads them, and the client is told UTF8.
 */
export function clientEncodingProblem(value: string): string | null {
  if (isUtf8EncodingName(value) || value.toLowerCase().replace(/[^a-z0-9]/g, '') === 'sqlascii') return null;
  return `hoop: client_encoding ${printableValue(value)} is not supported through the broker: it speaks UTF8 only (set PGCLIENTENCODING=UTF8)`;
}

function printableValue(value: string): string {
  const cut = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(cut).slice(1, -1);
}

/** What a reported setting (ParameterStatus, at startup or later) must not say, and why. */
export interface SettingProblem {
  sqlstate: 'featureNotSupported' | 'insufficientPrivilege';
  message: string;
  why: string;
}

/** reported settings a `read` session must never see change */
const READ_GUARD_SETTINGS = new Set([
  'default_transaction_read_only',
  'session_authorization',
  'is_superuser',
]);

/**
 * Every ParameterStatus the upstream reports, the startup ones included, must agree with what the
 * classifier assumes; a disagreement closes the connection before the client can send another
 * statement under it. Under `read`, default_transaction_read_only (PostgreSQL 14+ reports it) is the
 * backstop behind the classifier: it must stay on, and who the session is must not change.
 */
export function reportedSettingProblem(
  name: string,
  value: string,
  access: 'read' | 'write' | 'admin',
  startup: boolean,
): SettingProblem | null {
  if (name === 'standard_conforming_strings' && value !== 'on')
    return {
      sqlstate: 'featureNotSupported',
      message: 'hoop: standard_conforming_strings must stay on through the broker; the connection was closed',
      why: 'standard_conforming_strings turned off',
    };
  if (name === 'client_encoding' && value !== 'UTF8')
    return {
      sqlstate: 'featureNotSupported',
      message: `hoop: the database reported client_encoding ${printableValue(value)}; the broker speaks UTF8 only; the connection was closed`,
      why: 'client_encoding other than UTF8',
    };
  if (access === 'read' && READ_GUARD_SETTINGS.has(name)) {
    // at startup only the read-only guard's own setting is reported as it should be
    if (name === 'default_transaction_read_only' ? value !== 'on' : !startup)
      return {
        sqlstate: 'insufficientPrivilege',
        message: `hoop: ${name} changed to ${printableValue(value)} in a read-only session; the connection was closed`,
        why: `${name} changed under access read`,
      };
  }
  return null;
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
