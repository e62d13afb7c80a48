import { describe, expect, it } from 'vitest';
import {
  DETECTORS,
  findSensitive,
  ibanValid,
  luhnValid,
  maskText,
  maskWholeValue,
} from '../../../service/policy/mask/detectors.js';

const all = DETECTORS;

describe('email', () => {
  it('masks addresses in text, keeping nothing of them', () => {
    expect(maskText('mail alice.o+x@mail.example.co.uk, or bob@ex-ample.org.', ['email'])).toEqual({
      text: 'mail ***@***.***, or ***@***.***.',
      count: 2,
    });
  });
  it('ignores near misses', () => {
    for (const text of [
      '@handle',
      'user@localhost',
      'a@b',
      'x@.com',
      'a@b.c',
      'price 5@3.50',
      'me@host..com',
    ]) {
      expect({ text, found: findSensitive(text, ['email']).length }).toEqual({ text, found: 0 });
    }
  });
});

describe('credit cards', () => {
  it('checks Luhn', () => {
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
    expect(luhnValid('79927398713')).toBe(true);
    expect(luhnValid('12a4')).toBe(false);
  });
  it('masks card numbers with separators, keeping the last four', () => {
    expect(
      maskText('card 4111 1111 1111 1111 or 5500-0000-0000-0004, amex 340000000000009', ['credit_card']),
    ).toEqual({
      text: 'card ****-****-****-1111 or ****-****-****-0004, amex ****-****-****-0009',
      count: 3,
    });
    expect(maskText('qty 2 4111111111111111', ['credit_card']).text).toBe('qty 2 ****-****-****-1111');
  });
  it('leaves order ids that fail Luhn, short numbers and numbers inside words', () => {
    for (const text of [
      'order 4111111111111112',
      'id 1234567890123',
      '12345',
      'x4111111111111111',
      '4111111111111111234567',
      '2024-01-02 10:11:12',
    ]) {
      expect({ text, found: findSensitive(text, ['credit_card']).length }).toEqual({ text, found: 0 });
    }
  });
});

describe('API keys and tokens', () => {
  it('masks known shapes, keeping the issuer prefix', () => {
    const keys: Array<[string, string]> = [
      [`ghp_${'A1b2C3d4'.repeat(4)}abcd`, 'ghp_****'],
      [`gho_${'x'.repeat(36)}`, 'gho_****'],
      [`github_pat_11ABCDEFG_${'y'.repeat(60)}`, 'github_pat_****'],
      ['AKIAIOSFODNN7EXAMPLE', 'AKIA****'],
      ['xoxb-123456789012-abcdefABCDEF', 'xoxb-****'],
      [`sk_live_${'4eC39HqLyjWDarjtT1zdp7dc'}`, 'sk_live_****'],
      [
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
        'eyJ****',
      ],
      [`hoop_${'Zx9_'.repeat(11)}`, 'hoop_****'],
      [
        '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----',
        '-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----',
      ],
    ];
    for (const [key, mask] of keys) {
      expect(maskText(`token: ${key} end`, ['api_key'])).toEqual({ text: `token: ${mask} end`, count: 1 });
    }
  });
  it('masks a private key cut short to the end of the text', () => {
    expect(maskText('k=-----BEGIN PRIVATE KEY-----\nMIIE', ['api_key']).text).toBe(
      'k=-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----',
    );
  });
  it('leaves look-alikes', () => {
    for (const text of [
      'ghp_short',
      'AKIA123',
      'xoxb-1',
      'sk_test_4eC39HqLyjWDarjtT1zdp7dc',
      'eyJhbGciOi',
      'hoop_sessions_opened_total',
      'my_ghp_token',
    ]) {
      expect({ text, found: findSensitive(text, ['api_key']).length }).toEqual({ text, found: 0 });
    }
  });
});

describe('IBAN', () => {
  it('validates mod 97 and country length', () => {
    expect(ibanValid('DE89370400440532013000')).toBe(true);
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('DE89370400440532013001')).toBe(false);
    expect(ibanValid('DE8937040044053201300')).toBe(false);
  });
  it('masks compact and printed IBANs, keeping country and last four', () => {
    expect(maskText('pay DE89 3704 0044 0532 0130 00 now', ['iban'])).toEqual({
      text: 'pay DE****************3000 now',
      count: 1,
    });
    expect(maskText('GB82WEST12345698765432', ['iban']).text).toBe('GB****************5432');
  });
  it('leaves strings that only look like IBANs', () => {
    for (const text of [
      'DE89370400440532013001',
      'XX89370400440532013000',
      'DE89 3704',
      'ADE89370400440532013000',
    ]) {
      expect({ text, found: findSensitive(text, ['iban']).length }).toEqual({ text, found: 0 });
    }
  });
});

describe('whole values and combinations', () => {
  it('masks a masked column’s value by its kind, else with a fixed mask', () => {
    expect(maskWholeValue(' alice@example.com ')).toBe('***@***.***');
    expect(maskWholeValue('4111-1111-1111-1111')).toBe('****-****-****-1111');
    expect(maskWholeValue('Alice Smith')).toBe('********');
    expect(maskWholeValue('contact alice@example.com')).toBe('********');
    expect(maskWholeValue('')).toBe('********');
  });
  it('only runs the detectors asked for', () => {
    expect(maskText('a@b.io 4111111111111111', ['credit_card']).text).toBe('a@b.io ****-****-****-1111');
    expect(maskText('a@b.io 4111111111111111', []).count).toBe(0);
  });
});

describe('adversarial input', () => {
  it('stays linear on 1 MB cells built to make regexes backtrack', () => {
    const mb = 1 << 20;
    const inputs = [
      'a'.repeat(mb),
      'a.'.repeat(mb / 2),
      `${'a'.repeat(mb - 1)}@`,
      '@'.repeat(mb),
      'a@'.repeat(mb / 2),
      `a@${'b.'.repeat(mb / 2)}`,
      '1'.repeat(mb),
      '1 '.repeat(mb / 2),
      '1-'.repeat(mb / 2),
      'eyJ'.repeat(mb / 3),
      `eyJ${'a'.repeat(mb)}`,
      'eyJaaaaaaaaaaa.'.repeat(mb / 15),
      'ghp_'.repeat(mb / 4),
      'github_pat_'.repeat(mb / 11),
      'hoop_'.repeat(mb / 5),
      '-----BEGIN '.repeat(mb / 11),
      '-----BEGIN PRIVATE KEY-----'.repeat(mb / 27),
      'DE89'.repeat(mb / 4),
      'DE89 '.repeat(mb / 5),
      'AKIA'.repeat(mb / 4),
      'xoxb-'.repeat(mb / 5),
    ];
    for (const text of inputs) {
      const t0 = performance.now();
      maskText(text, all);
      const ms = performance.now() - t0;
      expect({ input: text.slice(0, 20), fast: ms < 1500 }).toEqual({ input: text.slice(0, 20), fast: true });
    }
  });
});
