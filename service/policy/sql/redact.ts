// redactSql: statement text fit for the transcript. Password literals, passwords inside connection
// strings, and secret-looking literals are replaced, using the real scanner's token positions so every
// literal form is found (standard, E'…', U&'…', dollar-quoted). When the text does not parse, every
// string literal is redacted: we cannot tell which ones are secrets.
import { findSensitive } from '../mask/detectors.js';
import { parseStatements, scanTokens, sqlParserReady } from './parser.js';

const REDACTED = "'***'";

/** Cheap pre-check: every redaction below needs one of these in the text (or a 40-character key-like run). */
const SECRET_HINT =
  /[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]|:\/\/|gh[pousr]_|github_pat_|AKIA|ASIA|xox[abprs]-|[sr]k_live_|eyJ|-----BEGIN|hoop_|SCRAM-SHA-256/;

function hasLongKeyRun(text: string): boolean {
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const keyChar =
      (c >= 48 && c <= 57) ||
      (c >= 65 && c <= 90) ||
      (c >= 97 && c <= 122) ||
      c === 43 ||
      c === 47 ||
      c === 61 ||
      c === 95 ||
      c === 45;
    run = keyChar ? run + 1 : 0;
    if (run >= 40) return true;
  }
  return false;
}

function mightHoldSecret(text: string): boolean {
  return SECRET_HINT.test(text) || hasLongKeyRun(text);
}

interface Token {
  start: number;
  end: number;
  text: string;
}

const STRING_START = /^(?:[eEnNbBxX]?'|[uU]&'|\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$)/;
const BIT_STRING = /^[bBxX]'/;

function isStringToken(tok: Token): boolean {
  return STRING_START.test(tok.text) && !BIT_STRING.test(tok.text);
}

/** The value of a literal token, for the common forms; undefined when it needs the parser to decode. */
function literalValue(text: string): string | undefined {
  if (text.startsWith("'")) return text.slice(1, -1).replace(/''/g, "'");
  const dollar = /^(\$[^$]*\$)([\s\S]*)\1$/.exec(text);
  if (dollar) return dollar[2];
  return undefined;
}

const quote = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** key=value connection strings and URIs: keep the shape, drop the password. */
const CONNINFO_PASSWORD = /(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']*)/gi;
const URI_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)([^@\s]+)(@)/gi;

function redactConninfo(value: string): string | null {
  const out = value.replace(CONNINFO_PASSWORD, '$1***').replace(URI_PASSWORD, '$1***$3');
  return out === value ? null : out;
}

/** A long run of key-like characters with letters and digits mixed: hashes, tokens, verifiers. */
const LONG_SECRET = /^(?:SCRAM-SHA-256\$\S+|md5[0-9a-f]{32}|[A-Za-z0-9+/=_-]{40,})$/;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function looksSecret(value: string): boolean {
  if (findSensitive(value, ['api_key']).length > 0) return true;
  const v = value.trim();
  if (UUID.test(v)) return false;
  return LONG_SECRET.test(v) && /[0-9]/.test(v) && /[A-Za-z]/.test(v);
}

export function redactSql(sql: string): string {
  if (!sqlParserReady()) return redactAllLiterals(sql);
  return redactTokens(sql, parseStatements(sql).ok);
}

/** `parses`: the caller already knows whether the text parses (classification does). */
export function redactTokens(sql: string, parses: boolean): string {
  // No quote, no literal: the common case (and pgbench's) costs one regex test. A text that parses and
  // has nothing that could be a password or key needs no scan either (the scan costs more than the parse).
  if (!/['$]/.test(sql)) return sql;
  if (parses && !mightHoldSecret(sql)) return sql;
  const tokens = scanTokens(sql);
  if (!tokens) return redactAllLiterals(sql);
  const bytes = Buffer.from(sql, 'utf8');
  const edits: Array<{ start: number; end: number; text: string }> = [];
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    if (!isStringToken(tok)) continue;
    if (!parses) {
      edits.push({ start: tok.start, end: tok.end, text: REDACTED });
      continue;
    }
    const prev = tokens[i - 1];
    // PASSWORD 'x' (CREATE/ALTER ROLE/USER, ENCRYPTED PASSWORD), OPTIONS (password 'x') of user mappings.
    if (prev && /^password$/i.test(prev.text)) {
      edits.push({ start: tok.start, end: tok.end, text: REDACTED });
      continue;
    }
    const value = literalValue(tok.text);
    if (value === undefined) {
      // E'…' / U&'…': decoding needs the parser; judge the raw text, redact the whole literal if needed.
      if (/password\s*=|:\/\/[^@\s]+@/i.test(tok.text) || looksSecret(tok.text.replace(/^[^']*'|'$/g, ''))) {
        edits.push({ start: tok.start, end: tok.end, text: REDACTED });
      }
      continue;
    }
    const conninfo = redactConninfo(value);
    if (conninfo !== null) {
      edits.push({ start: tok.start, end: tok.end, text: quote(conninfo) });
      continue;
    }
    if (looksSecret(value)) edits.push({ start: tok.start, end: tok.end, text: REDACTED });
  }
  if (edits.length === 0) return sql;
  const parts: Buffer[] = [];
  let at = 0;
  for (const e of edits) {
    parts.push(bytes.subarray(at, e.start), Buffer.from(e.text, 'utf8'));
    at = e.end;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts).toString('utf8');
}

/**
 * Fallback when the scanner cannot read the text (e.g. an unterminated literal): a small lexer that
 * redacts every quoted or dollar-quoted string, including one left open to the end of the text.
 */
export function redactAllLiterals(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      const end = nl === -1 ? sql.length : nl;
      out += sql.slice(i, end);
      i = end;
      continue;
    }
    if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(sql[i - 1]!) && (i < 2 || !/[A-Za-z0-9_]/.test(sql[i - 2]!));
      let j = i + 1;
      while (j < sql.length) {
        if (escapes && sql[j] === '\\') {
          j += 2;
          continue;
        }
        if (sql[j] === "'") {
          if (sql[j + 1] === "'") {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      out += REDACTED;
      i = Math.min(j + 1, sql.length);
      continue;
    }
    if (c === '$') {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 66));
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        out += REDACTED;
        i = close === -1 ? sql.length : close + tag[0].length;
        continue;
      }
    }
    out += c;
    i++;
  }
  return out;
}
