// Masking the text fields of ErrorResponse/NoticeResponse (message, DETAIL, HINT, CONTEXT/where):
// PostgreSQL echoes data values in them, e.g. `Key (email)=(a@b.c) already exists.`
//
// - Detectors are applied to the whole text.
// - With column rules: the values of a `Key (…)=(…)` detail are masked when any listed key column has a
//   masked column's name (the detail does not say which table; matching by name errs towards masking);
//   `Failing row contains (…)` (a whole row, columns unnamed) is masked entirely; so is the value echoed by
//   `invalid input syntax for type …: "…"` and a JSON parser's `Token "…" is invalid`, which a condition
//   on a masked column can trigger.
import type { Detector, MaskRule } from '../../config/schema.js';
import { parseQualifiedName } from '../sql/names.js';
import { GENERIC_MASK, maskText } from './detectors.js';

function maskedColumnNames(rules: readonly MaskRule[]): Set<string> {
  const out = new Set<string>();
  for (const rule of rules) {
    if (!('column' in rule)) continue;
    const parsed = parseQualifiedName(rule.column);
    out.add(((parsed.ok ? parsed.parts.at(-1) : rule.column.split('.').pop()) ?? '').toLowerCase());
  }
  return out;
}

const KEY_SUFFIXES = [
  ' already exists',
  ' is not present in table',
  ' is still referenced from table',
  ' conflicts with existing key',
  ' is duplicated',
];

/** Mask the values of every `Key (cols)=(values)` whose columns include a masked column name. */
function maskKeyDetails(text: string, columns: Set<string>): string {
  let out = '';
  let at = 0;
  for (let key = text.indexOf('Key ('); key !== -1; key = text.indexOf('Key (', at)) {
    const eq = text.indexOf(')=(', key + 5);
    if (eq === -1) break;
    const keyColumns = text.slice(key + 5, eq);
    const valueStart = eq + 3;
    // The values end at the ')' before a known suffix, else at the last ')' of the text.
    let valueEnd = -1;
    for (const suffix of KEY_SUFFIXES) {
      const s = text.indexOf(`)${suffix}`, valueStart);
      if (s !== -1 && (valueEnd === -1 || s < valueEnd)) valueEnd = s;
    }
    if (valueEnd === -1) valueEnd = text.lastIndexOf(')');
    if (valueEnd < valueStart) break;
    const words = keyColumns.toLowerCase().split(/[^a-z0-9_$\u0080-\uffff]+/);
    const hit = words.some((w) => columns.has(w));
    out += text.slice(at, valueStart) + (hit ? GENERIC_MASK : text.slice(valueStart, valueEnd));
    at = valueEnd;
  }
  return out + text.slice(at);
}

const ROW_DETAIL = /((?:Failing row|Partition key of the failing row) contains \()([\s\S]*)(\))/;
const INVALID_INPUT = /^(invalid input (?:syntax|value) for [^:]*: ")([\s\S]*)("\s*)$/;
const JSON_TOKEN = /(Token ")([\s\S]*)(" is invalid)/;

/** Mask one error/notice text field. */
export function maskNoticeText(
  text: string,
  rules: readonly MaskRule[],
  detectors: readonly Detector[],
): string {
  let out = detectors.length > 0 ? maskText(text, detectors).text : text;
  const columns = maskedColumnNames(rules);
  if (columns.size === 0) return out;
  out = maskKeyDetails(out, columns);
  out = out.replace(ROW_DETAIL, `$1${GENERIC_MASK}$3`);
  out = out.replace(INVALID_INPUT, `$1${GENERIC_MASK}$3`);
  out = out.replace(JSON_TOKEN, `$1${GENERIC_MASK}$3`);
  return out;
}

/**
 * The last guard on an error or notice text of a statement that reads a table with masked columns
 * (after maskNoticeText). A condition may use a masked column (without `strict`), and the server quotes
 * the value it chokes on in more message shapes than can be listed: a failed cast's input, a `::regclass`
 * lookup's `schema "…" does not exist`, `::regtype`'s `invalid type name "…"`, an XML parser's DETAIL
 * line. So, for field `code` (M, D, H, W) of an answer with SQLSTATE `sqlstate`:
 * - every double-quoted part that the statement does not itself contain (a typo's identifier does; a
 *   qualified name does when each of its parts is) is masked, and with an odd number of quotes (a value holding one) everything from the first quote is;
 * - so is a function name before `(` that the statement does not contain (`function x(integer) does not
 *   exist` from `::regprocedure`);
 * - for a data exception (class 22), whose input may be echoed without quotes: the message is cut at its
 *   first quote (else after its first `: `), and DETAIL, HINT and CONTEXT are masked whole.
 */
export function guardEchoedValues(code: string, text: string, sqlstate: string, statement: string): string {
  if (text === '') return text;
  if (sqlstate.startsWith('22')) {
    if (code !== 'M') return GENERIC_MASK;
    const quote = text.indexOf('"');
    if (quote >= 0) return `${text.slice(0, quote)}"${GENERIC_MASK}"`;
    const colon = text.indexOf(': ');
    return colon < 0 ? text : `${text.slice(0, colon + 2)}${GENERIC_MASK}`;
  }
  const own = statement.toLowerCase();
  // a qualified name the server spells out ("customers.id" in a HINT) counts as written when its parts are
  const written = (part: string): boolean =>
    part.split('.').every((p) => p === '' || own.includes(p.toLowerCase()));
  const quotes = text.split('"').length - 1;
  if (quotes % 2 === 1) return `${text.slice(0, text.indexOf('"'))}"${GENERIC_MASK}`;
  return text
    .replace(/"([^"]*)"/g, (whole, inner: string) => (written(inner) ? whole : `"${GENERIC_MASK}"`))
    .replace(/(^|[\s,])([^\s",()]+)\(/g, (whole, lead: string, name: string) =>
      written(name) ? whole : `${lead}${GENERIC_MASK}(`,
    );
}
