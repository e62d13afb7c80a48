// Encodings and reported settings the policy depends on. The classifier reads statements as
// PostgreSQL does only with UTF8 and standard_conforming_strings on; under `read` the upstream
// session's default_transaction_read_only is the backstop behind the classifier, and who the session
// is must not change. A client asking otherwise is refused; a setting that moves under the broker
// closes the connection. Pure.
import type { Access } from '../../config/schema.js';
import { isUtf8EncodingName } from '../sql/functions.js';

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
  access: Access,
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
