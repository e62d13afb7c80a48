// A text COPY stream masked however it is cut: rows with escaped tabs, newlines and backslashes,
// multi-byte UTF-8, NULLs, emails and card numbers, cut into CopyData payloads at arbitrary bytes (a
// row, a UTF-8 character or a finding split across payloads) and fed the ways the relay feeds them
// (whole messages at once through pushRun, the rest one payload at a time through push). The output
// must equal the rows masked one by one from their decoded text (maskWholeValue / maskText).
import { describe, expect, it } from 'vitest';
import type { Detector } from '../../../service/config/schema.js';
import { CopyOutMasker, decodeCopyTextRow, encodeCopyTextRow } from '../../../service/policy/mask/copy.js';
import { maskText, maskWholeValue } from '../../../service/policy/mask/detectors.js';
import { OutBuffer } from '../../../service/policy/mask/out-buffer.js';
import type { CellAction, CopyInfo } from '../../../service/policy/sql/types.js';

const COPY: Pick<CopyInfo, 'format' | 'delimiter' | 'null' | 'quote' | 'escape' | 'header'> = {
  format: 'text',
  delimiter: '\t',
  null: '\\N',
  quote: '"',
  escape: '"',
  header: false,
};
// id (int: passes), email (column mask), note (detectors), created (timestamp: passes)
const ACTIONS: CellAction[] = [
  { kind: 'pass' },
  { kind: 'mask', rule: 'public.t.email' },
  { kind: 'detect' },
  { kind: 'pass' },
];
const DETECTORS: Detector[] = ['email', 'credit_card'];

function rand(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x;
  };
}

const NOTE_PARTS = [
  'card 4111 1111 1111 1111 on file',
  'tab\there',
  'new\nline',
  'back\\slash',
  'cr\rlf',
  'zoë@example.fr',
  '中文 4111-1111-1111-1111',
  'mail bob@example.com now',
  '\\N is text here',
  'order 42 shipped',
  '5500000000000004',
  'x\u0001y',
  '',
];

function rows(seed: number, n: number): Array<Array<string | null>> {
  const r = rand(seed);
  const out: Array<Array<string | null>> = [];
  for (let i = 0; i < n; i++) {
    let note = '';
    for (let k = r() % 4; k >= 0; k--) note += NOTE_PARTS[r() % NOTE_PARTS.length]! + ' ';
    const email = r() % 7 === 0 ? null : r() % 5 === 0 ? 'ünï@exämple.de' : `user${i}@example.com`;
    out.push([String(i), email, r() % 9 === 0 ? null : note, '4111111111111111']);
  }
  return out;
}

const enc = (row: Array<string | null>): Buffer =>
  encodeCopyTextRow(row.map((v) => (v === null ? null : Buffer.from(v, 'utf8'))));

/** each row masked from its decoded text, re-encoded */
function expected(all: Array<Array<string | null>>): Buffer {
  return Buffer.concat(
    all.map((row) => {
      const values = decodeCopyTextRow(enc(row)).map((v) => (v === null ? null : v.toString('utf8')));
      const masked = values.map((v, i) => {
        if (v === null) return null;
        if (i === 1) return maskWholeValue(v);
        if (i === 2) return maskText(v, DETECTORS).text;
        return v;
      });
      return enc(masked);
    }),
  );
}

const frame = (payload: Buffer): Buffer => {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = 0x64;
  out.writeInt32BE(4 + payload.length, 1);
  payload.copy(out, 5);
  return out;
};

/** the payloads of a buffer of CopyData messages */
function payloads(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length;) {
    expect(buf[p]).toBe(0x64);
    const end = p + 1 + buf.readInt32BE(p + 1);
    out.push(buf.subarray(p + 5, end));
    p = end;
  }
  return out;
}

/**
 * The stream cut into payloads at the given byte offsets, framed, and fed as the relay does: a
 * chunk of messages through pushRun (which takes whole messages ending a row), what it leaves
 * through push. The output bytes, in order.
 */
function maskStream(stream: Buffer, cuts: number[], perChunk: number): Buffer {
  const m = new CopyOutMasker(COPY, ACTIONS, DETECTORS);
  const frames: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, stream.length]) {
    if (c > from) frames.push(frame(stream.subarray(from, c)));
    from = Math.max(from, c);
  }
  const out: Buffer[] = [];
  for (let f = 0; f < frames.length; f += perChunk) {
    const chunk = Buffer.concat(frames.slice(f, f + perChunk));
    let pos = 0;
    while (pos < chunk.length) {
      const run = m.pushRun(chunk, pos, chunk.length);
      if (run.end > pos) {
        out.push(...(run.out ? payloads(run.out) : payloads(chunk.subarray(pos, run.end))));
        pos = run.end;
        continue;
      }
      const end = pos + 1 + chunk.readInt32BE(pos + 1);
      const r = m.push(chunk.subarray(pos + 5, end));
      out.push(r.line);
      pos = end;
    }
  }
  out.push(m.finish().line);
  return Buffer.concat(out);
}

describe('a text COPY stream masked however it is cut', () => {
  const all = rows(7, 400);
  const stream = Buffer.concat(all.map(enc));
  const want = expected(all);

  it('has what the test is about: escapes, UTF-8, NULLs, cards and emails', () => {
    const text = stream.toString('utf8');
    for (const s of ['\\t', '\\n', '\\\\', '\\r', '\\N', 'ë', '中', '4111 1111', '@example.com'])
      expect(text).toContain(s);
    expect(want.toString()).not.toMatch(/@example\.com|4111 1111 1111 1111/);
    // the timestamp-like and integer columns are not text: card-like digits there pass (plan.ts)
    expect(want.toString()).toContain('\t4111111111111111\n');
  });

  it('one row per payload (what PostgreSQL sends)', () => {
    const cuts: number[] = [];
    for (let i = 0; i < stream.length; i++) if (stream[i] === 0x0a) cuts.push(i + 1);
    for (const perChunk of [1, 3, 1000]) expect(maskStream(stream, cuts, perChunk).equals(want)).toBe(true);
  });

  it('payloads cut at every byte of a row, and at random bytes', () => {
    // every cut position within the first rows: splits inside escapes, UTF-8 characters and findings
    const firstRows = Buffer.concat(all.slice(0, 6).map(enc)).length;
    for (let c = 1; c < firstRows; c++) {
      expect(maskStream(stream, [c], 2).equals(want), `cut at ${c}`).toBe(true);
    }
    const r = rand(99);
    for (let trial = 0; trial < 40; trial++) {
      const cuts = Array.from({ length: 1 + (r() % 60) }, () => r() % stream.length).sort((a, b) => a - b);
      expect(maskStream(stream, cuts, 1 + (r() % 5)).equals(want), `trial ${trial}`).toBe(true);
    }
  });

  it('a finding cut between two payloads is still masked', () => {
    const row = enc(['1', 'a@b.io', 'pay 4111 1111 1111 1111 now', 'x']);
    const at = row.indexOf('1111 1111') + 2;
    const m = new CopyOutMasker(COPY, ACTIONS, DETECTORS);
    const first = m.push(row.subarray(0, at));
    expect(first.line.length).toBe(0); // held until the row is complete
    const second = m.push(row.subarray(at));
    expect(second.line.toString()).toBe('1\t***@***.***\tpay ****-****-****-1111 now\tx\n');
    expect(second.masked).toBe(2);
  });
});

describe('the output buffer (out-buffer.ts)', () => {
  it('copies mirrored ranges within itself, and keeps them right when the output outgrows the mirror', () => {
    const r = rand(5);
    for (let trial = 0; trial < 30; trial++) {
      const src = Buffer.from(Array.from({ length: 1 + (r() % 20000) }, () => r() % 256));
      const out = new OutBuffer();
      const want: Buffer[] = [];
      out.mirror(src, 0, src.length);
      for (let p = 0; p < src.length;) {
        const n = Math.min(src.length - p, 1 + (r() % 300));
        out.range(src, p, p + n);
        want.push(src.subarray(p, p + n));
        // something longer than what it replaces, now and then far longer
        const extra = Buffer.alloc(r() % 3 === 0 ? 5000 : r() % 40, 0x2a);
        out.bytes(extra);
        want.push(extra);
        p += n + (r() % 20);
      }
      out.unmirror();
      expect(out.take().equals(Buffer.concat(want))).toBe(true);
    }
  });

  it('masks a chunk whose output is several times its input (pushRun)', () => {
    const rowsIn = Array.from({ length: 30000 }, (_, i) => `${i % 10}\tx\n`);
    const chunk = Buffer.concat(rowsIn.map((row) => frame(Buffer.from(row))));
    const m = new CopyOutMasker(COPY, [{ kind: 'pass' }, { kind: 'mask', rule: 'r' }], []);
    const r = m.pushRun(chunk, 0, chunk.length);
    expect(r.end).toBe(chunk.length);
    expect(r.masked).toBe(30000);
    const got = payloads(r.out!).map((b) => b.toString());
    expect(got).toEqual(rowsIn.map((row) => row.replace('x', '********')));
  });
});
