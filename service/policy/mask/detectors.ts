// Content detectors: find emails, payment cards, API keys/tokens and IBANs in free text and mask them.
//
// Every detector runs in time linear in the text, whatever the text: candidates are located with
// literal anchors ('@', a digit after a non-word character, a known key prefix, two capitals and two
// digits) and expanded by hand; a failed candidate never makes the scanner re-read the same run.
// (A naive /[\w.]+@[\w.]+\.\w+/ is quadratic on a megabyte of "aaaa…", which a cell can hold.)
//
// Masks keep the kind of value recognisable and the column usable, and keep nothing secret:
//   email        ***@***.***            (nothing kept: the local part and domain both identify people)
//   credit card  ****-****-****-1111    (last four kept, as PCI DSS allows for display)
//   api key      ghp_****               (the public prefix names the issuer; the secret part is gone)
//   JWT          eyJ****                (same)
//   private key  -----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----
//   IBAN         DE****************3000 (country and last four kept, length kept: it follows the country)
import type { Detector } from '../../config/schema.js';

export const DETECTORS: readonly Detector[] = ['email', 'credit_card', 'api_key', 'iban'];

export interface Finding {
  start: number;
  end: number;
  detector: Detector;
  mask: string;
}

export const EMAIL_MASK = '***@***.***';
/** The mask for a masked column's text when it is not one recognisable value (same for every value:
 *  the length of the original is not revealed). */
export const GENERIC_MASK = '********';

export const isDigit = (c: number): boolean => c >= 48 && c <= 57;
export const isUpper = (c: number): boolean => c >= 65 && c <= 90;
const isLower = (c: number): boolean => c >= 97 && c <= 122;
export const isAlnum = (c: number): boolean => isDigit(c) || isUpper(c) || isLower(c);

// ---- email -------------------------------------------------------------------------------------

/** Letters beyond ASCII (internationalised addresses), not the Unicode spaces and punctuation blocks. */
const isWideLetter = (c: number): boolean =>
  c >= 0xc0 && !(c >= 0x2000 && c <= 0x206f) && c !== 0x3000 && c !== 0xfeff && !(c >= 0xd800 && c <= 0xdfff);
/** characters of an email's local part, and of its domain (shared with byte-finders.ts) */
export const isLocal = (c: number): boolean =>
  isAlnum(c) ||
  c === 46 /* . */ ||
  c === 95 /* _ */ ||
  c === 37 /* % */ ||
  c === 43 /* + */ ||
  c === 45 /* - */ ||
  isWideLetter(c);
export const isDomain = (c: number): boolean =>
  isAlnum(c) || c === 45 /* - */ || c === 46 /* . */ || isWideLetter(c);

function findEmails(text: string, out: Finding[]): void {
  let floor = 0; // never scan left past the previous '@' or finding: keeps the scan linear
  for (let at = text.indexOf('@'); at !== -1; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > floor && isLocal(text.charCodeAt(start - 1))) start--;
    while (start < at && text.charCodeAt(start) === 46) start++; // a local part does not start with '.'
    floor = at + 1;
    if (start === at) continue;
    let end = at + 1;
    while (end < text.length && isDomain(text.charCodeAt(end))) end++;
    while (end > at + 1 && (text.charCodeAt(end - 1) === 46 || text.charCodeAt(end - 1) === 45)) end--;
    // the domain text[at + 1, end): a dot not first, no '..', and a last label of two or more ASCII
    // letters (by index, without slicing: this runs for every address of a masked column)
    let lastDot = -1;
    let doubleDot = false;
    for (let i = at + 1; i < end; i++) {
      if (text.charCodeAt(i) !== 46) continue;
      if (i > at + 1 && text.charCodeAt(i - 1) === 46) doubleDot = true;
      lastDot = i;
    }
    if (lastDot <= at + 1 || doubleDot || end - lastDot - 1 < 2) continue;
    let letters = true;
    for (let i = lastDot + 1; i < end && letters; i++) {
      const c = text.charCodeAt(i);
      letters = (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    }
    if (!letters) continue;
    out.push({ start, end, detector: 'email', mask: EMAIL_MASK });
    floor = end;
  }
}

// ---- payment cards -----------------------------------------------------------------------------

/** Luhn (mod 10) check over a string of digits. */
export function luhnValid(digits: string): boolean {
  if (!/^[0-9]+$/.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

const cardMask = (digits: string): string => `****-****-****-${digits.slice(-4)}`;

function findCards(text: string, out: Finding[]): void {
  const starts = /(?<![A-Za-z0-9_])[0-9]/g;
  let m: RegExpExecArray | null = starts.exec(text);
  while (m) {
    // A run of digits with single spaces or dashes between them: "4111 1111-1111 1111".
    const start = m.index;
    let end = start;
    let digits = ''; // only the first 20 digits are kept: longer runs are not cards anyway
    let count = 0;
    const groups: Array<[number, number]> = [];
    let groupStart = start;
    while (end < text.length) {
      const c = text.charCodeAt(end);
      if (isDigit(c)) {
        if (count < 20) digits += text[end];
        count++;
        end++;
        continue;
      }
      if ((c === 32 || c === 45) && end + 1 < text.length && isDigit(text.charCodeAt(end + 1))) {
        groups.push([groupStart, end]);
        groupStart = end + 1;
        end++;
        continue;
      }
      break;
    }
    groups.push([groupStart, end]);
    const bounded = end >= text.length || !(isAlnum(text.charCodeAt(end)) || text.charCodeAt(end) === 95);
    if (bounded && count >= 13 && count <= 19 && luhnValid(digits)) {
      out.push({ start, end, detector: 'credit_card', mask: cardMask(digits) });
    } else if (groups.length > 1) {
      // "qty 2 4111111111111111": a card may be one group of a longer run.
      for (const [gs, ge] of groups) {
        const g = text.slice(gs, ge);
        if (g.length >= 13 && g.length <= 19 && luhnValid(g)) {
          out.push({ start: gs, end: ge, detector: 'credit_card', mask: cardMask(g) });
        }
      }
    }
    starts.lastIndex = Math.max(end, start + 1);
    m = starts.exec(text);
  }
}

// ---- API keys and tokens -----------------------------------------------------------------------

/** Keys recognised by a fixed public prefix. Each pattern's repeat is a single character class that
 *  cannot match its own prefix's delimiter, so a failed attempt stops at the end of one run. */
const KEY_PATTERNS: Array<{ re: RegExp; prefix: (m: string) => string }> = [
  { re: /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}/g, prefix: (m) => m.slice(0, 4) },
  { re: /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,}/g, prefix: () => 'github_pat_' },
  { re: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g, prefix: (m) => m.slice(0, 4) },
  { re: /(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}/g, prefix: (m) => m.slice(0, 5) },
  { re: /(?<![A-Za-z0-9])[sr]k_live_[A-Za-z0-9]{10,}/g, prefix: (m) => m.slice(0, 8) },
  { re: /(?<![A-Za-z0-9_])hoop_[A-Za-z0-9_-]{40,}/g, prefix: () => 'hoop_' },
];
const KEY_HINT = /gh[pousr]_|github_pat_|AKIA|ASIA|xox[abprs]-|[sr]k_live_|eyJ|-----BEGIN |hoop_/;

const isB64url = (c: number): boolean => isAlnum(c) || c === 45 || c === 95;

function b64Run(text: string, from: number): number {
  let i = from;
  while (i < text.length && isB64url(text.charCodeAt(i))) i++;
  return i;
}

function findJwts(text: string, out: Finding[]): void {
  let pos = text.indexOf('eyJ');
  while (pos !== -1) {
    const prev = pos > 0 ? text.charCodeAt(pos - 1) : 0;
    const seg1End = b64Run(text, pos);
    let next = seg1End;
    if (!isB64url(prev) && seg1End - pos >= 10 && text.charCodeAt(seg1End) === 46) {
      const seg2End = b64Run(text, seg1End + 1);
      if (seg2End - seg1End - 1 >= 2 && text.charCodeAt(seg2End) === 46) {
        const seg3End = b64Run(text, seg2End + 1);
        if (seg3End - seg2End - 1 >= 10) {
          out.push({ start: pos, end: seg3End, detector: 'api_key', mask: 'eyJ****' });
          next = seg3End;
        }
      }
    }
    // Any 'eyJ' inside the run just read ends at the same place: skip past it.
    pos = text.indexOf('eyJ', Math.max(next, pos + 1));
  }
}

const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----/y;
const PEM_END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----/g;
const PEM_MASK = '-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----';

function findPrivateKeys(text: string, out: Finding[]): void {
  let pos = text.indexOf('-----BEGIN ');
  while (pos !== -1) {
    PEM_BEGIN.lastIndex = pos;
    const begin = PEM_BEGIN.exec(text);
    if (!begin) {
      pos = text.indexOf('-----BEGIN ', pos + 1);
      continue;
    }
    PEM_END.lastIndex = pos + begin[0].length;
    const end = PEM_END.exec(text);
    // A key cut short is still a secret: mask to the end of the text.
    const stop = end ? end.index + end[0].length : text.length;
    out.push({ start: pos, end: stop, detector: 'api_key', mask: PEM_MASK });
    pos = text.indexOf('-----BEGIN ', stop);
  }
}

function findApiKeys(text: string, out: Finding[]): void {
  if (!KEY_HINT.test(text)) return;
  for (const { re, prefix } of KEY_PATTERNS) {
    re.lastIndex = 0;
    let m: RegExpExecArray | null = re.exec(text);
    while (m) {
      out.push({
        start: m.index,
        end: m.index + m[0].length,
        detector: 'api_key',
        mask: `${prefix(m[0])}****`,
      });
      m = re.exec(text);
    }
  }
  findJwts(text, out);
  findPrivateKeys(text, out);
}

// ---- IBAN --------------------------------------------------------------------------------------

/** IBAN length per country (ISO 13616 registry). */
const IBAN_LENGTH: Record<string, number> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  LY: 25,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MR: 27,
  MT: 31,
  MU: 30,
  NL: 18,
  NO: 15,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  SA: 24,
  SC: 31,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
};

/** ISO 7064 mod 97-10 over an IBAN in compact form (no spaces, upper case). */
export function ibanValid(compact: string): boolean {
  if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]+$/.test(compact)) return false;
  const expected = IBAN_LENGTH[compact.slice(0, 2)];
  if (expected !== undefined && expected !== compact.length) return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    if (isDigit(c)) rem = (rem * 10 + (c - 48)) % 97;
    else rem = (rem * 100 + (c - 55)) % 97; // A=10 … Z=35
  }
  return rem === 1;
}

function findIbans(text: string, out: Finding[]): void {
  const starts = /(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}/g;
  let m: RegExpExecArray | null = starts.exec(text);
  while (m) {
    const start = m.index;
    const length = IBAN_LENGTH[m[0].slice(0, 2)];
    let next = start + 1;
    if (length !== undefined) {
      // Compact ("DE89370400440532013000") or printed in groups of four ("DE89 3704 0044 …").
      let compact = '';
      let i = start;
      while (i < text.length && compact.length < length) {
        const c = text.charCodeAt(i);
        if (isDigit(c) || isUpper(c)) {
          compact += text[i];
          i++;
        } else if (c === 32 && compact.length % 4 === 0 && compact.length > 0) {
          i++;
        } else break;
      }
      const bounded = i >= text.length || !isAlnum(text.charCodeAt(i));
      if (compact.length === length && bounded && ibanValid(compact)) {
        const mask = `${compact.slice(0, 2)}${'*'.repeat(length - 6)}${compact.slice(-4)}`;
        out.push({ start, end: i, detector: 'iban', mask });
        next = i;
      }
    }
    starts.lastIndex = next;
    m = starts.exec(text);
  }
}

// ---- all together ------------------------------------------------------------------------------

const FINDERS: Record<Detector, (text: string, out: Finding[]) => void> = {
  email: findEmails,
  credit_card: findCards,
  api_key: findApiKeys,
  iban: findIbans,
};

/**
 * Could this detector find anything in the text? An exact pre-check from ASCII counts (the same facts
 * as cell.ts's detectorsMayMatch on bytes): an email needs '@'; a card 13 digits; a key, token or
 * private key a '_', a '-' or a capital (every KEY_HINT prefix has one); an IBAN two capitals and two
 * digits. Saves running the finders (and their regular expressions) over text that cannot match.
 */
function textFacts(text: string): { at: boolean; digits: number; uppers: number; dash: boolean } {
  let at = false;
  let dash = false;
  let digits = 0;
  let uppers = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c >= 65 && c <= 90) uppers++;
    else if (c === 64) at = true;
    else if (c === 45 || c === 95) dash = true;
  }
  return { at, digits, uppers, dash };
}

function mayFind(d: Detector, f: ReturnType<typeof textFacts>): boolean {
  switch (d) {
    case 'email':
      return f.at;
    case 'credit_card':
      return f.digits >= 13;
    case 'api_key':
      return f.uppers > 0 || f.dash;
    case 'iban':
      return f.uppers >= 2 && f.digits >= 2;
  }
}

/** Every finding of the given detectors, ordered by position, without overlaps (earliest, then longest). */
export function findSensitive(text: string, detectors: readonly Detector[]): Finding[] {
  const all: Finding[] = [];
  const facts = textFacts(text);
  for (let i = 0; i < detectors.length; i++) {
    const d = detectors[i]!;
    if (detectors.indexOf(d) === i && mayFind(d, facts)) FINDERS[d](text, all);
  }
  return ordered(all);
}

/** findSensitive without the ASCII pre-check: what the pre-check must never change (for tests). */
export function findSensitiveUnchecked(text: string, detectors: readonly Detector[]): Finding[] {
  const all: Finding[] = [];
  for (const d of new Set(detectors)) FINDERS[d](text, all);
  return ordered(all);
}

/** Findings sorted by position, overlaps dropped (earliest, then longest): what findSensitive keeps. */
export function ordered(all: Finding[]): Finding[] {
  if (all.length <= 1) return all;
  all.sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: Finding[] = [];
  let reach = -1;
  for (const f of all) {
    if (f.start >= reach) {
      kept.push(f);
      reach = f.end;
    }
  }
  return kept;
}

/** Replace every finding with its mask. `count` is the number of values masked. */
export function maskText(text: string, detectors: readonly Detector[]): { text: string; count: number } {
  const found = findSensitive(text, detectors);
  if (found.length === 0) return { text, count: 0 };
  let out = '';
  let at = 0;
  for (const f of found) {
    out += text.slice(at, f.start) + f.mask;
    at = f.end;
  }
  return { text: out + text.slice(at), count: found.length };
}

/** The mask for a masked column's whole value: the detector's mask when the value is one recognisable
 *  value (of any detector kind), else the fixed generic mask. */
export function maskWholeValue(text: string): string {
  const trimmed = text.trim();
  const found = findSensitive(trimmed, DETECTORS);
  const only = found[0];
  if (found.length === 1 && only && only.start === 0 && only.end === trimmed.length) return only.mask;
  return GENERIC_MASK;
}
