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
import { GENERIC_MASK, maskText } from './detectors.js';

function maskedColumnNames(rules: readonly MaskRule[]): Set<string> {
  const out = new Set<string>();
  for (const rule of rules) {
    if ('column' in rule) out.add(rule.column.toLowerCase().split('.').pop() ?? '');
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
