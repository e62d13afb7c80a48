// Masked COPY TO, pg_dump and SELECT through the real gateway, against what the server sends directly
// masked as decoded text (maskWholeValue for the masked column, maskText for the detectors): escaped
// tabs, newlines and backslashes, multi-byte UTF-8, NULLs, and rows of ~100 KB whose CopyData and
// DataRow messages arrive across several reads (findings and UTF-8 characters straddle read
// boundaries somewhere among them). Columns whose type cannot hold text (bigint, numeric) pass as
// they came even when their digits look like a card: the detectors scan text (plan.ts, README).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Detector, MaskRule } from '../../../service/config/schema.js';
import { decodeCopyTextRow, encodeCopyTextRow } from '../../../service/policy/mask/copy.js';
import { maskText, maskWholeValue } from '../../../service/policy/mask/detectors.js';
import {
  type GatewayHarness,
  startGatewayHarness,
  TARGET_DATABASE,
  type TestSession,
} from '../../fixtures/pg-gateway-harness.js';
import { pgClientConfig, psql, tool } from './helpers.js';

const ROWS = 600;
const SEED = `
CREATE TABLE wire (id bigint, email text, note text, card_digits bigint, amount numeric, created timestamptz);
INSERT INTO wire SELECT g,
  CASE WHEN g % 11 = 0 THEN NULL WHEN g % 7 = 0 THEN 'ünï' || g || '@exämple.de' ELSE 'user' || g || '@example.com' END,
  CASE g % 6
    WHEN 0 THEN E'tab\\there 4111 1111 1111 1111'
    WHEN 1 THEN E'line\\nbreak bob' || g || '@example.com'
    WHEN 2 THEN E'back\\\\slash 中文 5500-0000-0000-0004 \\\\N'
    WHEN 3 THEN NULL
    WHEN 4 THEN 'order ' || g || ' shipped'
    ELSE repeat('ë', 30000 + g * 7) || ' 4111111111111111 ' || repeat('x', 20000 + g) || E'\\t carol' || g || '@example.org'
  END,
  4111111111111111, 4111111111111111.25, timestamptz '2024-01-01' + g * interval '1 minute'
FROM generate_series(1, ${ROWS}) g;
`;
const DETECTORS: Detector[] = ['credit_card', 'email'];
const RULES: MaskRule[] = [{ column: 'wire.email' }, ...DETECTORS.map((detector) => ({ detector }))];

let h: GatewayHarness;
let s: TestSession;
let direct: Buffer;
beforeAll(async () => {
  h = await startGatewayHarness({ seedSql: SEED });
  s = h.createSession({ mask: RULES });
  const r = await tool(
    'psql',
    [
      '-X',
      '-h',
      h.pg.dir,
      '-p',
      String(h.pg.port),
      '-U',
      'postgres',
      '-d',
      TARGET_DATABASE,
      '-c',
      'COPY wire TO STDOUT',
    ],
    { PATH: process.env.PATH ?? '' },
  );
  expect(r.stderr).toBe('');
  direct = Buffer.from(r.stdout, 'utf8');
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** the text rows of COPY output */
function lines(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < data.length;) {
    const nl = data.indexOf(0x0a, p);
    out.push(data.subarray(p, nl + 1));
    p = nl + 1;
  }
  return out;
}

/** a column's value masked as decoded text: column 1 under the column rule, text columns scanned */
function maskValue(i: number, v: string | null): string | null {
  if (v === null) return null;
  if (i === 1) return maskWholeValue(v);
  if (i === 2) return maskText(v, DETECTORS).text;
  return v; // bigint, numeric, timestamptz: not text, not scanned
}

/** what the broker must send for COPY wire TO STDOUT: each row decoded, masked, encoded */
function expectedCopy(): Buffer {
  return Buffer.concat(
    lines(direct).map((line) =>
      encodeCopyTextRow(
        decodeCopyTextRow(line).map((v, i) => {
          const m = maskValue(i, v === null ? null : v.toString('utf8'));
          return m === null ? null : Buffer.from(m, 'utf8');
        }),
      ),
    ),
  );
}

describe('masked COPY and pg_dump through the gateway, byte for byte', () => {
  it('has what it is about: escapes, UTF-8, NULLs, big rows, card-like digits in numbers', () => {
    const text = direct.toString('utf8');
    for (const x of [
      '\\t',
      '\\n',
      '\\\\',
      '\\\\N',
      '\\N\t',
      'ë',
      '中文',
      '@exämple.de',
      '\t4111111111111111\t',
    ])
      expect(text).toContain(x);
    expect(lines(direct).length).toBe(ROWS);
    expect(Math.max(...lines(direct).map((l) => l.length))).toBeGreaterThan(80_000); // more than one 64 KB read
  });

  it('COPY … TO STDOUT equals the rows masked one by one', async () => {
    const r = await psql(h, s, ['-c', 'COPY wire TO STDOUT']);
    expect(r.stderr).toBe('');
    const got = Buffer.from(r.stdout, 'utf8');
    const want = expectedCopy();
    expect(got.length).toBe(want.length);
    expect(got.equals(want)).toBe(true);
    expect(r.stdout).not.toMatch(/@example\.(com|org)|@exämple|4111 1111|4111111111111111 |5500-0000/);
    // the numbers with a card's digits pass: their types hold no text
    expect(r.stdout.match(/\t4111111111111111\t4111111111111111\.25\t/g)?.length).toBe(ROWS);
  });

  it('pg_dump -t wire: its COPY block equals the same masked rows', async () => {
    const r = await tool('pg_dump', ['-t', 'wire'], h.env(s));
    expect(r.code).toBe(0);
    const block = /^COPY public\.wire \(.*\) FROM stdin;\n([\s\S]*?)^\\\.\n/m.exec(r.stdout);
    expect(block).not.toBeNull();
    expect(Buffer.from(block![1]!, 'utf8').equals(expectedCopy())).toBe(true);
  });

  it('SELECT through the gateway (DataRow) masks the same values', async () => {
    const c = new pg.Client(pgClientConfig(h, s));
    await c.connect();
    try {
      const res = await c.query<Record<string, string | null>>(
        // int8 and numeric come as strings from node-postgres (a ::text cast would make them text,
        // which the detectors scan)
        'SELECT id, email, note, card_digits, amount FROM wire ORDER BY id',
      );
      const want = lines(direct).map((line) =>
        decodeCopyTextRow(line)
          .slice(0, 5)
          .map((v, i) => maskValue(i, v === null ? null : v.toString('utf8'))),
      );
      // COPY sends the rows in heap order
      want.sort((a, b) => Number(a[0]) - Number(b[0]));
      const got = res.rows.map((row) => [row.id, row.email, row.note, row.card_digits, row.amount]);
      expect(got).toEqual(want);
    } finally {
      await c.end();
    }
  });

  it('a binary COPY of masked columns stays refused', async () => {
    const r = await psql(h, s, ['-c', 'COPY wire TO STDOUT (FORMAT binary)']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR: {2}hoop: COPY denied by policy rule "mask".*binary/s);
    expect(r.stdout).toBe('');
  });
});
