// The masking hot paths' shortcuts change nothing: the byte pre-check never rules out a detector
// that would find something, a cell masked on a byte range equals one masked as a value, and the
// text COPY fast path (rows split by offset, unchanged payloads passed as they came) masks exactly
// what the row-by-row path does.
import { describe, expect, it } from 'vitest';
import type { Detector } from '../../../service/config/schema.js';
import { detectorsMayMatch, maskCell, maskCellAt } from '../../../service/policy/mask/cell.js';
import { CopyFormatError, CopyOutMasker } from '../../../service/policy/mask/copy.js';
import { DETECTORS, findSensitive, findSensitiveUnchecked } from '../../../service/policy/mask/detectors.js';
import type { CellAction, CopyInfo } from '../../../service/policy/sql/types.js';

/** Values each detector finds something in, and near misses. */
const SAMPLES = [
  'alice@example.com',
  'zoë@example.fr',
  'mail: bob.smith+tag@sub.example.co.uk, ok',
  '4111 1111 1111 1111',
  '4111-1111-1111-1111',
  'qty 2 4111111111111111',
  '411111111111',
  'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
  'github_pat_11ABCDEFG0123456789_abcdefghijklmnop',
  'AKIAIOSFODNN7EXAMPLE',
  'xoxb-1234567890-abcdef',
  'sk_live_abcdefghij0123',
  'hoop_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop',
  '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----',
  'DE89 3704 0044 0532 0130 00',
  'GB82WEST12345698765432',
  'order 123 shipped',
  'plain words only',
  '',
  '@',
  'a@b',
];

/** Random text over an alphabet with every character class the pre-check counts. */
function randomText(seed: number): string {
  const alphabet = 'aZ9@._- +eyJghp_AKIAskDE4111ë\u00e9\u4e2d\n';
  let x = seed;
  let out = '';
  const n = (seed % 60) + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out += alphabet[x % alphabet.length];
  }
  return out;
}

describe('the detectors pre-check', () => {
  const texts = [...SAMPLES, ...Array.from({ length: 3000 }, (_, i) => randomText(i + 1))];
  // random strings built to hold findings: samples glued to random text
  for (let i = 0; i < SAMPLES.length; i++)
    texts.push(`${randomText(i + 7)} ${SAMPLES[i]} ${randomText(i + 11)}`);

  it('never rules out a detector that finds something (bytes and text)', () => {
    let found = 0;
    for (const text of texts) {
      const buf = Buffer.from(text, 'utf8');
      for (const d of DETECTORS) {
        const hits = findSensitiveUnchecked(text, [d]);
        if (hits.length > 0) {
          found++;
          expect(detectorsMayMatch(buf, 0, buf.length, [d]), `${d} in ${JSON.stringify(text)}`).toBe(true);
        }
      }
      expect(findSensitive(text, DETECTORS)).toEqual(findSensitiveUnchecked(text, DETECTORS));
    }
    expect(found).toBeGreaterThan(25);
  });

  it('rules out what cannot match without decoding', () => {
    const b = Buffer.from('order 123 shipped', 'utf8');
    expect(detectorsMayMatch(b, 0, b.length, ['email', 'credit_card', 'api_key', 'iban'])).toBe(false);
    const c = Buffer.from('x 4111 1111 1111 1111 y', 'utf8');
    expect(detectorsMayMatch(c, 0, c.length, ['email'])).toBe(false);
    expect(detectorsMayMatch(c, 0, c.length, ['credit_card'])).toBe(true);
  });
});

describe('maskCellAt', () => {
  const actions: CellAction[] = [
    { kind: 'mask', rule: 'r' },
    { kind: 'detect' },
    { kind: 'detect', json: true },
    { kind: 'null', rule: 'r' },
    { kind: 'pass' },
  ];
  it('on a byte range equals maskCell on the value', () => {
    for (const text of [...SAMPLES, '{"card": 4111111111111111}', '["alice@example.com"]']) {
      const value = Buffer.from(text, 'utf8');
      const framed = Buffer.concat([Buffer.from('xx@yy 4111111111111111 '), value, Buffer.from(' AKIA@')]);
      for (const action of actions) {
        const whole = maskCell(action, value, [...DETECTORS]);
        const r = maskCellAt(action, framed, 23, 23 + value.length, DETECTORS);
        expect(r === null ? { value, masked: false } : { value: r.value, masked: true }).toEqual(whole);
      }
    }
  });
});

const TEXT_COPY: Pick<CopyInfo, 'format' | 'delimiter' | 'null' | 'quote' | 'escape' | 'header'> = {
  format: 'text',
  delimiter: '\t',
  null: '\\N',
  quote: '"',
  escape: '"',
  header: false,
};
const ROW_ACTIONS: CellAction[] = [{ kind: 'pass' }, { kind: 'mask', rule: 'email' }, { kind: 'detect' }];
const DETECT: Detector[] = ['credit_card', 'email'];

describe('text COPY fast path', () => {
  it('passes a payload none of whose rows changes as it came', () => {
    const m = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    const data = Buffer.from('1\t\\N\tplain\n2\t\\N\torder 12 shipped\n');
    const r = m.push(data);
    expect(r.same).toBe(true);
    expect(r.line).toBe(data);
    expect(r.masked).toBe(0);
  });

  it('masks changed rows, keeps the others and the terminators, and frames the result once', () => {
    const m = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    const data = Buffer.from(
      '1\talice@example.com\tplain\r\n2\t\\N\tcard 4111 1111 1111 1111 ok\n3\t\\N\tnothing\n',
    );
    const r = m.push(data);
    expect(r.same).toBe(false);
    expect(r.masked).toBe(2);
    expect(r.line.toString()).toBe(
      '1\t***@***.***\tplain\r\n2\t\\N\tcard ****-****-****-1111 ok\n3\t\\N\tnothing\n',
    );
    expect(r.frame?.[0]).toBe(0x64);
    expect(r.frame?.readInt32BE(1)).toBe(4 + r.line.length);
    expect(r.frame?.subarray(5).equals(r.line)).toBe(true);
  });

  it('decodes escaped fields before the detectors look (an escape can spell what they look for)', () => {
    const m = new CopyOutMasker(TEXT_COPY, [{ kind: 'pass' }, { kind: 'detect' }], ['email']);
    // \100 is '@' in octal; \x2e is '.': only the decoded text is an address
    const r = m.push(Buffer.from('1\tbob\\100example\\x2ecom\n'));
    expect(r.masked).toBe(1);
    expect(r.line.toString()).toBe('1\t***@***.***\n');
    // an escaped delimiter is data, not a field boundary; a masked value is re-escaped
    const t = new CopyOutMasker(TEXT_COPY, [{ kind: 'detect' }, { kind: 'pass' }], ['email']);
    expect(t.push(Buffer.from('a\\tb@example.com c\\\\d\tx\n')).line.toString()).toBe(
      'a\\t***@***.*** c\\\\d\tx\n',
    );
  });

  it('holds a row split across payloads and masks it once complete', () => {
    const m = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    const data = Buffer.from('1\talice@example.com\tplain\n2\tbob@example.com\tx 4111111111111111\n');
    let out = '';
    let masked = 0;
    for (let i = 0; i < data.length; i += 5) {
      const r = m.push(data.subarray(i, i + 5));
      out += r.line.toString();
      masked += r.masked;
    }
    const end = m.finish();
    out += end.line.toString();
    masked += end.masked;
    expect(out).toBe('1\t***@***.***\tplain\n2\t***@***.***\tx ****-****-****-1111\n');
    expect(masked).toBe(3);
  });

  it('masks a last row without a newline, and passes the end-of-data marker', () => {
    const m = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    expect(m.push(Buffer.from('\\.\n')).same).toBe(true);
    m.push(Buffer.from('9\tzoë@example.fr\tz'));
    expect(m.finish().line.toString()).toBe('9\t***@***.***\tz');
  });

  it('refuses rows with too many or too few fields, even when nothing in them would be masked', () => {
    const m = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    expect(() => m.push(Buffer.from('1\t\\N\n'))).toThrow(CopyFormatError);
    const n = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    expect(() => n.push(Buffer.from('1\t\\N\tx\tsmuggled@example.com\n'))).toThrow(CopyFormatError);
  });
});

describe('text COPY: a chunk of CopyData messages at once (pushRun)', () => {
  const frame = (payload: string): Buffer => {
    const body = Buffer.from(payload);
    const out = Buffer.alloc(5 + body.length);
    out[0] = 0x64;
    out.writeInt32BE(4 + body.length, 1);
    body.copy(out, 5);
    return out;
  };
  /** the CopyData payloads in a buffer of messages */
  const payloads = (buf: Buffer): string[] => {
    const out: string[] = [];
    for (let p = 0; p < buf.length;) {
      expect(buf[p]).toBe(0x64);
      const end = p + 1 + buf.readInt32BE(p + 1);
      out.push(buf.toString('utf8', p + 5, end));
      p = end;
    }
    return out;
  };

  it('masks each message as push would, one message out per message in, and stops where it must', () => {
    const rows = [
      '1\t\\N\tplain\n',
      '2\talice@example.com\tx\n',
      '3\t\\N\tcard 4111111111111111\n',
      '4\t\\N\tnothing\n',
    ];
    const partial = frame('5\tbob@exa');
    const chunk = Buffer.concat([...rows.map(frame), partial, Buffer.from([0x63, 0, 0, 0, 4])]);
    const m = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    const r = m.pushRun(chunk, 0, chunk.length);
    expect(r.end).toBe(chunk.length - partial.length - 5); // not the partial row, not the CopyDone
    expect(r.masked).toBe(2);
    expect(payloads(r.out!)).toEqual([
      '1\t\\N\tplain\n',
      '2\t***@***.***\tx\n',
      '3\t\\N\tcard ****-****-****-1111\n',
      '4\t\\N\tnothing\n',
    ]);
    // the rest the usual way
    expect(m.push(partial.subarray(5)).line.length).toBe(0);
    expect(m.push(Buffer.from('ample.com\tz\n')).line.toString()).toBe('5\t***@***.***\tz\n');
  });

  it('passes a run of unchanged messages without copying them, and refuses a bad row', () => {
    const chunk = Buffer.concat([frame('1\t\\N\tplain\n'), frame('2\t\\N\tplain\n')]);
    const m = new CopyOutMasker(TEXT_COPY, ROW_ACTIONS, DETECT);
    expect(m.pushRun(chunk, 0, chunk.length)).toEqual({ end: chunk.length, out: null, masked: 0 });
    const bad = frame('1\talice@example.com\n');
    expect(() => m.pushRun(bad, 0, bad.length)).toThrow(CopyFormatError);
  });
});
