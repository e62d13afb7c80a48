// maskCell: apply one column's action to one cell value (as sent on the wire).
//
// The hot paths (DataRow, COPY output) call maskCellAt on a byte range of the frame, so a cell the
// detectors cannot find anything in costs one pass over its bytes: no subarray, no string. Which
// detectors could match is decided from ASCII facts of the bytes (detectorsMayMatch): every finding
// of every detector needs ASCII characters that UTF-8 never uses inside a multi-byte character, so
// the check on the raw bytes is exact for the decoded text too.
import type { Detector } from '../../config/schema.js';
import type { CellAction, MaskedCell } from '../sql/types.js';
import { maskText, maskWholeValue } from './detectors.js';

/** ASCII facts of a byte range: enough to rule detectors out without decoding. */
const AT = 1;
const UPPER = 2;
const DASH_OR_UNDERSCORE = 4;

/**
 * Could any of the detectors find something in these bytes? Exact (never false when a detector
 * would find something): an email needs '@'; a card 13 digits or more; an API key, token or private
 * key a '_', a '-' or a capital letter (every prefix KEY_HINT knows has one); an IBAN two capitals
 * and two digits.
 */
export function detectorsMayMatch(
  buf: Buffer,
  start: number,
  end: number,
  detectors: readonly Detector[],
): boolean {
  let flags = 0;
  let digits = 0;
  let uppers = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c >= 48 && c <= 57) digits++;
    else if (c >= 65 && c <= 90) {
      uppers++;
      flags |= UPPER;
    } else if (c === 64) flags |= AT;
    else if (c === 45 || c === 95) flags |= DASH_OR_UNDERSCORE;
  }
  for (const d of detectors) {
    switch (d) {
      case 'email':
        if (flags & AT) return true;
        break;
      case 'credit_card':
        if (digits >= 13) return true;
        break;
      case 'api_key':
        if (flags & (UPPER | DASH_OR_UNDERSCORE)) return true;
        break;
      case 'iban':
        if (uppers >= 2 && digits >= 2) return true;
        break;
    }
  }
  return false;
}

/** json/jsonb text (binary jsonb carries a version byte first): is it still valid JSON? */
function validJson(text: string): boolean {
  const body = text.charCodeAt(0) === 1 ? text.slice(1) : text;
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

/** A masked cell: its new value (null: send NULL). */
export interface CellReplacement {
  value: Buffer | null;
}
const TO_NULL: CellReplacement = Object.freeze({ value: null });

/** Masks that are the same for every value are encoded once. */
const encodedMasks = new Map<string, CellReplacement>();
function encodedMask(text: string): CellReplacement {
  let r = encodedMasks.get(text);
  if (r === undefined) {
    r = Object.freeze({ value: Buffer.from(text, 'utf8') });
    // card, key and IBAN masks keep a few characters of the value: bounded, so not kept forever
    if (encodedMasks.size < 4096) encodedMasks.set(text, r);
  }
  return r;
}

/**
 * The cell `buf[start, end)` under its action: null when it goes out unchanged, else what replaces
 * it. A NULL cell (no bytes on the wire) is not passed here: NULL stays NULL.
 */
export function maskCellAt(
  action: CellAction,
  buf: Buffer,
  start: number,
  end: number,
  detectors: readonly Detector[],
): CellReplacement | null {
  switch (action.kind) {
    case 'pass':
      return null;
    case 'null':
      return TO_NULL;
    case 'mask':
      return encodedMask(maskWholeValue(buf.toString('utf8', start, end)));
    case 'detect': {
      if (detectors.length === 0 || !detectorsMayMatch(buf, start, end, detectors)) return null;
      const { text, count } = maskText(buf.toString('utf8', start, end), detectors);
      if (count === 0) return null;
      if (action.json && !validJson(text)) return TO_NULL;
      return { value: Buffer.from(text, 'utf8') };
    }
  }
}

/**
 * NULL stays NULL (masked false). `mask` replaces the whole text with a same-kind mask (the detector's mask
 * when the value is one recognisable value, else `********`); `null` sends NULL; `detect` replaces each
 * finding inside the text. A json/jsonb cell whose masked text is no longer valid JSON (a card number
 * masked inside a JSON number) becomes NULL rather than breaking the client's parser.
 */
export function maskCell(action: CellAction, value: Buffer | null, detectors: Detector[]): MaskedCell {
  if (value === null) return { value: null, masked: false };
  const r = maskCellAt(action, value, 0, value.length, detectors);
  return r === null ? { value, masked: false } : { value: r.value, masked: true };
}
