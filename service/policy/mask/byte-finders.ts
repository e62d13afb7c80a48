// The detectors' finders on bytes, for the masking hot paths (cell.ts): the same findings as
// detectors.ts's text finders, without decoding a cell into a JS string.
//
// For ASCII text (every byte < 0x80) byte i is character i, so the ports of findEmails and findCards
// give the same findings at byte offsets; findCards' port is exact on any UTF-8 text too (digits,
// spaces and dashes are ASCII, and UTF-8 never uses ASCII bytes inside a multi-byte character), with
// offsets in bytes. The anchor checks (keyHintInBytes, ibanStartInBytes) are exact on UTF-8 for the
// same reason. test/policy/mask/byte-finders.test.ts compares each with its text finder.
import { EMAIL_MASK, type Finding, isAlnum, isDigit, isDomain, isLocal, isUpper } from './detectors.js';

/** findEmails over the ASCII bytes buf[start, end); findings at buffer offsets. */
export function findEmailsInAscii(buf: Uint8Array, start: number, end: number, out: Finding[]): void {
  let floor = start;
  for (let at = buf.indexOf(64, start); at !== -1 && at < end; at = buf.indexOf(64, at + 1)) {
    let s = at;
    while (s > floor && isLocal(buf[s - 1]!)) s--;
    while (s < at && buf[s] === 46) s++;
    floor = at + 1;
    if (s === at) continue;
    let e = at + 1;
    while (e < end && isDomain(buf[e]!)) e++;
    while (e > at + 1 && (buf[e - 1] === 46 || buf[e - 1] === 45)) e--;
    let lastDot = -1;
    let doubleDot = false;
    for (let i = at + 1; i < e; i++) {
      if (buf[i] !== 46) continue;
      if (i > at + 1 && buf[i - 1] === 46) doubleDot = true;
      lastDot = i;
    }
    if (lastDot <= at + 1 || doubleDot || e - lastDot - 1 < 2) continue;
    let letters = true;
    for (let i = lastDot + 1; i < e && letters; i++) {
      const c = buf[i]!;
      letters = (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    }
    if (!letters) continue;
    out.push({ start: s, end: e, detector: 'email', mask: EMAIL_MASK });
    floor = e;
  }
}

/**
 * Is the ASCII text buf[start, end) one email address, whole (findEmails' only finding would be
 * [start, end))? One pass, no finding made: the value of a masked email column. Such a finding starts
 * at the first '@''s local part, so: the local part is all of [start, '@'), does not start with '.',
 * and the domain is all the rest (no second '@'), does not end in '.' or '-', has no '..', and has a
 * dot past its first character followed by two or more ASCII letters to the end.
 */
export function isWholeEmailInAscii(buf: Uint8Array, start: number, end: number): boolean {
  let at = -1;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === 64) {
      at = i;
      break;
    }
    if (c >= 0x80 || !isLocal(c)) return false;
  }
  if (at <= start || buf[start] === 46 || end <= at + 1) return false;
  const last = buf[end - 1];
  if (last === 46 || last === 45) return false;
  let lastDot = -1;
  let prevDot = false;
  for (let i = at + 1; i < end; i++) {
    const c = buf[i]!;
    if (c === 46) {
      if (prevDot) return false;
      prevDot = true;
      lastDot = i;
    } else {
      if (c >= 0x80 || !isDomain(c)) return false;
      prevDot = false;
    }
  }
  if (lastDot <= at + 1 || end - lastDot - 1 < 2) return false;
  for (let i = lastDot + 1; i < end; i++) {
    const c = buf[i]!;
    if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122))) return false;
  }
  return true;
}

const isWordByte = (c: number): boolean => isAlnum(c) || c === 95;

/** Luhn over the digits of buf[from, to) (the spaces and dashes between them skipped). */
function luhnAscii(buf: Uint8Array, from: number, to: number): boolean {
  let sum = 0;
  let double = false;
  for (let i = to - 1; i >= from; i--) {
    const c = buf[i]!;
    if (!isDigit(c)) continue;
    let d = c - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** the card mask from the last four digits before `to` */
function cardMaskAscii(buf: Uint8Array, from: number, to: number): string {
  let last4 = '';
  for (let i = to - 1; i >= from && last4.length < 4; i--) {
    const c = buf[i]!;
    if (isDigit(c)) last4 = String.fromCharCode(c) + last4;
  }
  return `****-****-****-${last4}`;
}

/** findCards over the ASCII bytes buf[start, end); findings at buffer offsets. */
export function findCardsInAscii(buf: Uint8Array, start: number, end: number, out: Finding[]): void {
  let i = start;
  while (i < end) {
    // the next digit not preceded by a word character (the lookbehind of findCards' start pattern)
    const c0 = buf[i]!;
    if (!isDigit(c0) || (i > start && isWordByte(buf[i - 1]!))) {
      i++;
      continue;
    }
    const s = i;
    let e = s;
    let count = 0;
    let groups = 1;
    while (e < end) {
      const c = buf[e]!;
      if (isDigit(c)) {
        count++;
        e++;
        continue;
      }
      if ((c === 32 || c === 45) && e + 1 < end && isDigit(buf[e + 1]!)) {
        groups++;
        e++;
        continue;
      }
      break;
    }
    const bounded = e >= end || !isWordByte(buf[e]!);
    if (bounded && count >= 13 && count <= 19 && luhnAscii(buf, s, e)) {
      out.push({ start: s, end: e, detector: 'credit_card', mask: cardMaskAscii(buf, s, e) });
    } else if (groups > 1) {
      // "qty 2 4111111111111111": a card may be one group of a longer run
      let gs = s;
      for (let g = s; g <= e; g++) {
        if (g < e && isDigit(buf[g]!)) continue;
        const n = g - gs;
        if (n >= 13 && n <= 19 && luhnAscii(buf, gs, g)) {
          out.push({ start: gs, end: g, detector: 'credit_card', mask: cardMaskAscii(buf, gs, g) });
        }
        gs = g + 1;
      }
    }
    i = Math.max(e, s + 1);
  }
}

const oneOf = (c: number, chars: string): boolean => chars.indexOf(String.fromCharCode(c)) !== -1;

/** buf[i, …) starts with the ASCII text `lit` (before `end`) */
function startsWithAscii(buf: Uint8Array, i: number, end: number, lit: string): boolean {
  if (end - i < lit.length) return false;
  for (let k = 0; k < lit.length; k++) if (buf[i + k] !== lit.charCodeAt(k)) return false;
  return true;
}

/**
 * Does KEY_HINT match in the UTF-8 bytes buf[start, end)? Without it findApiKeys finds nothing. Exact
 * on UTF-8 too: the hint is ASCII, and UTF-8 never uses ASCII bytes inside a multi-byte character.
 */
export function keyHintInBytes(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    switch (buf[i]) {
      case 0x67: // g: gh[pousr]_ | github_pat_
        if (i + 3 < end && buf[i + 1] === 0x68 && buf[i + 3] === 0x5f && oneOf(buf[i + 2]!, 'pousr'))
          return true;
        if (startsWithAscii(buf, i, end, 'github_pat_')) return true;
        break;
      case 0x41: // A: AKIA | ASIA
        if (startsWithAscii(buf, i, end, 'AKIA') || startsWithAscii(buf, i, end, 'ASIA')) return true;
        break;
      case 0x78: // x: xox[abprs]-
        if (
          i + 4 < end &&
          startsWithAscii(buf, i, end, 'xox') &&
          buf[i + 4] === 0x2d &&
          oneOf(buf[i + 3]!, 'abprs')
        )
          return true;
        break;
      case 0x73: // s, r: [sr]k_live_
      case 0x72:
        if (startsWithAscii(buf, i + 1, end, 'k_live_')) return true;
        break;
      case 0x65: // e: eyJ
        if (i + 2 < end && buf[i + 1] === 0x79 && buf[i + 2] === 0x4a) return true;
        break;
      case 0x2d: // -----BEGIN
        if (startsWithAscii(buf, i, end, '-----BEGIN ')) return true;
        break;
      case 0x68: // hoop_
        if (startsWithAscii(buf, i, end, 'hoop_')) return true;
        break;
    }
  }
  return false;
}

/**
 * Could findIbans find anything in the UTF-8 bytes buf[start, end)? It starts only at two capitals
 * and two digits not preceded by a letter or digit (exact on UTF-8, as keyHintInBytes).
 */
export function ibanStartInBytes(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i + 3 < end; i++) {
    if (!isUpper(buf[i]!) || !isUpper(buf[i + 1]!) || !isDigit(buf[i + 2]!) || !isDigit(buf[i + 3]!))
      continue;
    if (i === start || !isAlnum(buf[i - 1]!)) return true;
  }
  return false;
}
