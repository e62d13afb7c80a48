// maskCell: apply one column's action to one cell value (as sent on the wire).
//
// The hot paths (DataRow, COPY output) call maskCellAt on a byte range of the frame, so a cell the
// detectors cannot find anything in costs one pass over its bytes: no subarray, no string. Which
// detectors could match is decided from ASCII facts of the bytes (detectorsMayMatch): every finding
// of every detector needs ASCII characters that UTF-8 never uses inside a multi-byte character, so
// the check on the raw bytes is exact for the decoded text too.
//
// Past that check, the common findings are found on the bytes as well (maskCellAt): emails in ASCII
// text and payment cards in any UTF-8 text (byte-finders.ts), with API keys and IBANs ruled
// out by an exact byte check of their anchors; the masked cell is then built from byte ranges and
// the masks, without a JS string. Anything else (a key or IBAN that may be there, an email in text
// that is not ASCII, json) takes the text path: decode, maskText, encode.
import type { Detector } from '../../config/schema.js';
import type { CellAction, MaskedCell } from '../sql/types.js';
import {
  findCardsInAscii,
  findEmailsInAscii,
  ibanStartInBytes,
  isWholeEmailInAscii,
  keyHintInBytes,
} from './byte-finders.js';
import {
  DETECTORS,
  EMAIL_MASK,
  type Finding,
  GENERIC_MASK,
  maskText,
  maskWholeValue,
  ordered,
} from './detectors.js';

/** ASCII facts of a byte range: enough to rule detectors out without decoding. */
const AT = 1;
const UPPER = 2;
const DASH_OR_UNDERSCORE = 4;

const WIDE = 8;
/** the last scanFacts: flags (AT, UPPER, DASH_OR_UNDERSCORE, WIDE: a byte ≥ 0x80), digits, capitals */
let factFlags = 0;
let factDigits = 0;
let factUppers = 0;

/** per byte: DIGIT, or its flags (a capital is UPPER); 0 for the bytes that count for nothing */
const DIGIT = 16;
const BYTE_CLASS = new Uint8Array(256);
for (let c = 48; c <= 57; c++) BYTE_CLASS[c] = DIGIT;
for (let c = 65; c <= 90; c++) BYTE_CLASS[c] = UPPER;
BYTE_CLASS[64] = AT;
BYTE_CLASS[45] = DASH_OR_UNDERSCORE;
BYTE_CLASS[95] = DASH_OR_UNDERSCORE;
for (let c = 0x80; c < 256; c++) BYTE_CLASS[c] = WIDE;

function scanFacts(buf: Buffer, start: number, end: number): void {
  let flags = 0;
  let digits = 0;
  let uppers = 0;
  for (let i = start; i < end; i++) {
    const k = BYTE_CLASS[buf[i]!]!;
    if (k === 0) continue; // lower-case letters, spaces, punctuation: most of a text
    if (k === DIGIT) digits++;
    else {
      flags |= k;
      if (k === UPPER) uppers++;
    }
  }
  factFlags = flags;
  factDigits = digits;
  factUppers = uppers;
}

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
  scanFacts(buf, start, end);
  const flags = factFlags;
  const digits = factDigits;
  const uppers = factUppers;
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

const EMAIL_REPLACEMENT: CellReplacement = Object.freeze({ value: Buffer.from(EMAIL_MASK, 'utf8') });
const GENERIC_REPLACEMENT: CellReplacement = Object.freeze({ value: Buffer.from(GENERIC_MASK, 'utf8') });

/** Is an ASCII byte JavaScript whitespace (what String#trim removes)? */
const isAsciiSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

/**
 * Which detectors need looking for in buf[start, end) after scanFacts, each ruled out exactly:
 * EMAIL / CARD (the byte finders can look), OTHER (an API key or an IBAN may be there: text path).
 */
const NEED_EMAIL = 1;
const NEED_CARD = 2;
const NEED_OTHER = 4;
function needed(buf: Buffer, start: number, end: number, detectors: readonly Detector[]): number {
  let need = 0;
  for (let i = 0; i < detectors.length; i++) {
    switch (detectors[i]) {
      case 'email':
        if (factFlags & AT) need |= NEED_EMAIL;
        break;
      case 'credit_card':
        if (factDigits >= 13) need |= NEED_CARD;
        break;
      case 'api_key':
        if (
          factFlags & (UPPER | DASH_OR_UNDERSCORE) &&
          !(need & NEED_OTHER) &&
          keyHintInBytes(buf, start, end)
        )
          need |= NEED_OTHER;
        break;
      case 'iban':
        if (factUppers >= 2 && factDigits >= 2 && !(need & NEED_OTHER) && ibanStartInBytes(buf, start, end))
          need |= NEED_OTHER;
        break;
    }
  }
  return need;
}

/**
 * The byte finders' findings in buf[start, end) for `need` (email only in ASCII text: the caller
 * checks), ordered as findSensitive orders them. Empty: nothing to mask.
 */
function findInBytes(buf: Buffer, start: number, end: number, need: number): Finding[] {
  const found: Finding[] = [];
  if (need & NEED_EMAIL) findEmailsInAscii(buf, start, end, found);
  if (need & NEED_CARD) findCardsInAscii(buf, start, end, found);
  return found.length > 1 ? ordered(found) : found;
}

/** buf[start, end) with each finding replaced by its mask (the masks are ASCII). */
function replaceFindings(buf: Buffer, start: number, end: number, findings: readonly Finding[]): Buffer {
  let size = end - start;
  for (const f of findings) size += f.mask.length - (f.end - f.start);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let from = start;
  for (const f of findings) {
    at = copyBytes(buf, from, f.start, out, at);
    const mask = f.mask;
    for (let k = 0; k < mask.length; k++) out[at++] = mask.charCodeAt(k);
    from = f.end;
  }
  copyBytes(buf, from, end, out, at);
  return out;
}

/** src[from, to) into dst at `at`; returns the end. A loop for a few bytes (Buffer#copy makes a view). */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  if (to - from > 64) return at + src.copy(dst, at, from, to);
  for (let i = from; i < to; i++) dst[at++] = src[i]!;
  return at;
}

/**
 * A masked column's whole value (maskWholeValue) from its bytes when that is exact: ASCII text in
 * which only emails and cards may be. null: take the text path.
 */
function wholeValueMaskAt(buf: Buffer, start: number, end: number): CellReplacement | null {
  let s = start;
  let e = end;
  while (s < e && isAsciiSpace(buf[s]!)) s++;
  while (e > s && isAsciiSpace(buf[e - 1]!)) e--;
  // the common case (an email column), decided in one pass: an email spanning the value is its
  // only finding (email is found first and kept over any overlap)
  if (isWholeEmailInAscii(buf, s, e)) return EMAIL_REPLACEMENT;
  scanFacts(buf, s, e);
  // String#trim also removes non-ASCII spaces: the text path decides for text that is not ASCII
  if (factFlags & WIDE) return null;
  const need = needed(buf, s, e, DETECTORS);
  if (need & NEED_OTHER) return null;
  if (need === 0) return GENERIC_REPLACEMENT;
  const findings = findInBytes(buf, s, e, need);
  const only = findings[0];
  if (findings.length !== 1 || only === undefined || only.start !== s || only.end !== e)
    return GENERIC_REPLACEMENT;
  return only.detector === 'email' ? EMAIL_REPLACEMENT : encodedMask(only.mask);
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
      return (
        wholeValueMaskAt(buf, start, end) ?? encodedMask(maskWholeValue(buf.toString('utf8', start, end)))
      );
    case 'detect': {
      if (detectors.length === 0) return null;
      scanFacts(buf, start, end);
      const need = needed(buf, start, end, detectors);
      if (need === 0) return null;
      // emails and cards on the bytes (an email only in ASCII text); json stays on the text path,
      // which checks that the masked text is still JSON
      if (!(need & NEED_OTHER) && !action.json && (!(need & NEED_EMAIL) || !(factFlags & WIDE))) {
        const findings = findInBytes(buf, start, end, need);
        if (findings.length === 0) return null;
        return { value: replaceFindings(buf, start, end, findings) };
      }
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
