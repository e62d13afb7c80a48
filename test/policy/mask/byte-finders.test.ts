// The byte finders (byte-finders.ts, cell.ts's byte path) against the text finders they stand in for:
// on the same text, the same findings (at byte offsets, for ASCII text; cards in any UTF-8 text), the
// anchor checks never rule out a key or an IBAN the text finders find, and a cell masked on its bytes
// equals the cell masked as decoded text (maskWholeValue / maskText), for every action and detector set.
import { describe, expect, it } from 'vitest';
import type { Detector } from '../../../service/config/schema.js';
import { maskCellAt } from '../../../service/policy/mask/cell.js';
import {
  findCardsInAscii,
  findEmailsInAscii,
  ibanStartInBytes,
  isWholeEmailInAscii,
  keyHintInBytes,
} from '../../../service/policy/mask/byte-finders.js';
import {
  DETECTORS,
  findSensitiveUnchecked,
  type Finding,
  maskText,
  maskWholeValue,
} from '../../../service/policy/mask/detectors.js';
import type { CellAction } from '../../../service/policy/sql/types.js';

/** a number passing Luhn, of n digits (the last one is the check digit) */
function luhnNumber(seed: number, n: number): string {
  let x = seed;
  const digits: number[] = [];
  for (let i = 0; i < n - 1; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    digits.push(x % 10);
  }
  let sum = 0;
  for (let i = digits.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = digits[i]!;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.join('') + String((10 - (sum % 10)) % 10);
}

const PIECES = [
  'alice@example.com',
  'bob.smith+tag@sub.example.co.uk',
  'a@b',
  'x@y.z',
  '.@.',
  'zoë@example.fr',
  'user-1_x@host-name.io',
  '.a@b.co',
  'a.@b.co',
  'a@b.co.',
  'a@b.co-',
  'a@b..co',
  'a@.b.co',
  'a@b.c0',
  'a@@b.co',
  'a@b.co@c.io',
  'a%b+c@d-e.f.gh',
  '4111 1111 1111 1111',
  '4111-1111-1111-1111',
  '4111111111111111',
  '41111111111111112',
  'qty 2 4111111111111111',
  '1234567890123',
  'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
  'github_pat_11ABCDEFG0123456789_abcdefghijklmnop',
  'AKIAIOSFODNN7EXAMPLE',
  'xoxb-1234567890-abcdef',
  'sk_live_abcdefghij0123',
  'rk_live_abcdefghij0123',
  'hoop_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop',
  '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----',
  'DE89 3704 0044 0532 0130 00',
  'GB82WEST12345698765432',
  'order 123 shipped',
  '中文',
  '\u00a0',
  ' \t',
  '@',
  '_',
  '-',
];

function rand(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x;
  };
}

/** text made of pieces, Luhn numbers, digits, separators and random characters */
function randomText(seed: number): string {
  const r = rand(seed);
  const alphabet = 'aZ9@._- +eyJghp_AKIAskDE41ë\u00e9\u4e2d\n\t1234567890';
  let out = '';
  const n = (r() % 8) + 1;
  for (let i = 0; i < n; i++) {
    const k = r() % 10;
    if (k < 3) out += PIECES[r() % PIECES.length];
    else if (k < 5) {
      const num = luhnNumber(r(), 12 + (r() % 9));
      // sometimes with separators between groups of four
      out += r() % 2 ? num : num.replace(/(\d{4})(?=\d)/g, r() % 2 ? '$1 ' : '$1-');
    } else {
      const m = (r() % 6) + 1;
      for (let j = 0; j < m; j++) out += alphabet[r() % alphabet.length];
    }
  }
  return out;
}

const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);
const TEXTS = [...PIECES, ...Array.from({ length: 6000 }, (_, i) => randomText(i + 1))];

/** byte findings as character findings (ASCII: the same offsets) without the buffer's lead */
const shifted = (fs: Finding[], lead: number): Finding[] =>
  fs.map((f) => ({ ...f, start: f.start - lead, end: f.end - lead }));

/** the text framed by bytes the finders must not look at */
function framed(text: string): { buf: Buffer; start: number; end: number } {
  const lead = Buffer.from('4111111111111111 a@b.co ');
  const value = Buffer.from(text, 'utf8');
  const buf = Buffer.concat([lead, value, Buffer.from('9 AKIA@x.io')]);
  return { buf, start: lead.length, end: lead.length + value.length };
}

describe('the byte finders find what the text finders find', () => {
  it('emails in ASCII text, cards in ASCII text', () => {
    let emails = 0;
    let cards = 0;
    for (const text of TEXTS.filter(isAscii)) {
      const { buf, start, end } = framed(text);
      const e: Finding[] = [];
      findEmailsInAscii(buf, start, end, e);
      expect(shifted(e, start), text).toEqual(findSensitiveUnchecked(text, ['email']));
      const c: Finding[] = [];
      findCardsInAscii(buf, start, end, c);
      expect(shifted(c, start), text).toEqual(findSensitiveUnchecked(text, ['credit_card']));
      emails += e.length;
      cards += c.length;
    }
    expect(emails).toBeGreaterThan(200);
    expect(cards).toBeGreaterThan(300);
  });

  it('a whole email in ASCII text in one pass, as findEmails decides it', () => {
    let whole = 0;
    for (const text of [...TEXTS, ...PIECES.flatMap((a) => PIECES.map((b) => a + b))]) {
      const { buf, start, end } = framed(text);
      const f = findSensitiveUnchecked(text, ['email']);
      const want = f.length === 1 && f[0]!.start === 0 && f[0]!.end === text.length;
      // ASCII only: other text is left to the text path
      expect(isWholeEmailInAscii(buf, start, end), text).toBe(want && isAscii(text));
      if (want) whole++;
    }
    expect(whole).toBeGreaterThan(20);
  });

  it('cards in any UTF-8 text, at byte offsets', () => {
    for (const text of TEXTS.filter((t) => !isAscii(t))) {
      const { buf, start, end } = framed(text);
      const c: Finding[] = [];
      findCardsInAscii(buf, start, end, c);
      const want = findSensitiveUnchecked(text, ['credit_card']).map((f) => ({
        ...f,
        start: Buffer.byteLength(text.slice(0, f.start)),
        end: Buffer.byteLength(text.slice(0, f.end)),
      }));
      expect(shifted(c, start), text).toEqual(want);
    }
  });

  it('the key and IBAN anchor checks never rule out a finding', () => {
    let keys = 0;
    let ibans = 0;
    for (const text of TEXTS) {
      const { buf, start, end } = framed(text);
      if (findSensitiveUnchecked(text, ['api_key']).length > 0) {
        keys++;
        expect(keyHintInBytes(buf, start, end), text).toBe(true);
      }
      if (findSensitiveUnchecked(text, ['iban']).length > 0) {
        ibans++;
        expect(ibanStartInBytes(buf, start, end), text).toBe(true);
      }
    }
    expect(keys).toBeGreaterThan(100);
    expect(ibans).toBeGreaterThan(50);
    const b = Buffer.from('Order shipped to Main St, ref AB-12 x_y');
    expect(keyHintInBytes(b, 0, b.length)).toBe(false);
    expect(ibanStartInBytes(b, 0, b.length)).toBe(false);
  });
});

/** what a cell becomes when masked as decoded text (the reference the byte path must equal) */
function reference(action: CellAction, value: Buffer, detectors: Detector[]): Buffer | null | 'same' {
  const text = value.toString('utf8');
  switch (action.kind) {
    case 'pass':
      return 'same';
    case 'null':
      return null;
    case 'mask':
      return Buffer.from(maskWholeValue(text), 'utf8');
    case 'detect': {
      const r = maskText(text, detectors);
      if (r.count === 0) return 'same';
      if (action.json) {
        try {
          JSON.parse(r.text.charCodeAt(0) === 1 ? r.text.slice(1) : r.text);
        } catch {
          return null;
        }
      }
      return Buffer.from(r.text, 'utf8');
    }
  }
}

describe('maskCellAt on bytes equals masking the decoded text', () => {
  const actions: CellAction[] = [
    { kind: 'mask', rule: 'r' },
    { kind: 'detect' },
    { kind: 'detect', json: true },
  ];
  const sets: Detector[][] = [
    [...DETECTORS],
    ['email'],
    ['credit_card'],
    ['email', 'credit_card'],
    ['credit_card', 'api_key'],
    ['iban', 'email'],
    ['api_key'],
  ];
  it('for every action and detector set', () => {
    let changed = 0;
    for (const text of [
      ...TEXTS,
      '  alice@example.com\n',
      '\u00a0alice@example.com',
      '\t4111111111111111 ',
    ]) {
      const { buf, start, end } = framed(text);
      const value = buf.subarray(start, end);
      for (const action of actions)
        for (const detectors of sets) {
          const want = reference(action, value, detectors);
          const r = maskCellAt(action, buf, start, end, detectors);
          const got = r === null ? 'same' : r.value;
          expect(
            got,
            `${action.kind}${'json' in action ? ' json' : ''} [${detectors}] ${JSON.stringify(text)}`,
          ).toEqual(want);
          if (got !== 'same') changed++;
        }
    }
    expect(changed).toBeGreaterThan(10000);
  });
});
