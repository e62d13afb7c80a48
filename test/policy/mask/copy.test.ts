// COPY masking against real COPY output from a real server: decoding, re-encoding, masking, and loading
// the masked output back with COPY FROM to prove it is still well-formed.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskRule } from '../../../service/config/schema.js';
import {
  CopyFormatError,
  CopyOutMasker,
  copyMaskSupport,
  decodeCopyCsvRow,
  decodeCopyTextRow,
  encodeCopyTextRow,
  maskCopyTextRow,
} from '../../../service/policy/mask/copy.js';
import { planMask, TYPE_OID } from '../../../service/policy/mask/plan.js';
import type { CopyInfo } from '../../../service/policy/sql/types.js';
import { type PgServer, startPostgres } from '../../fixtures/postgres.js';

const _run = promisify(execFile);
let server: PgServer;
let client: pg.Client;

const VALUES: Array<[number, string | null, string | null]> = [
  [1, 'alice@example.com', 'plain'],
  [2, 'tab\there@example.com', 'new\nline and cr\r and \\ backslash'],
  [3, null, '\\N is not null'],
  [4, '', 'ctl \u0001\u0008\u000b\u000c end'],
  [5, 'zoë@example.fr', 'a,b "quoted" ;semi'],
  [6, 'not an email', null],
];

function psql(args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      server.dir,
      '-p',
      String(server.port),
      '-U',
      'postgres',
      ...args,
    ]);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(Buffer.concat(err).toString())),
    );
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

const copyOut = (sql: string): Promise<Buffer> => psql(['-c', sql]);

/** Split COPY output into rows (text format: unescaped newlines end rows). */
const textRows = (data: Buffer): Buffer[] => {
  const rows: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 0x0a) continue;
    rows.push(data.subarray(start, i + 1));
    start = i + 1;
  }
  return rows;
};

const copyInfo = (over: Partial<CopyInfo>): CopyInfo => ({
  direction: 'to',
  query: false,
  program: false,
  file: false,
  format: 'text',
  delimiter: '\t',
  null: '\\N',
  quote: '"',
  escape: '"',
  header: false,
  ...over,
});

const rules: MaskRule[] = [{ column: 'copyt.email' }, { detector: 'email' }];
const origins = [
  { name: 'id', table: 'public.copyt', column: 'id', typeOid: 23, format: 0 as const },
  { name: 'email', table: 'public.copyt', column: 'email', typeOid: TYPE_OID.text, format: 0 as const },
  { name: 'note', table: 'public.copyt', column: 'note', typeOid: TYPE_OID.text, format: 0 as const },
];

beforeAll(async () => {
  server = await startPostgres();
  client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  await client.query(
    'CREATE TABLE copyt (id int, email text, note text); CREATE TABLE copyback (LIKE copyt)',
  );
  for (const v of VALUES) await client.query('INSERT INTO copyt VALUES ($1, $2, $3)', v);
});

afterAll(async () => {
  await client?.end();
  await server?.stop();
});

describe('COPY text format', () => {
  it('decodes PostgreSQL’s output to the stored values and re-encodes it byte for byte', async () => {
    const data = await copyOut('COPY copyt TO STDOUT');
    const rows = textRows(data);
    expect(rows).toHaveLength(VALUES.length);
    rows.forEach((row, i) => {
      const decoded = decodeCopyTextRow(row).map((v) => (v === null ? null : v.toString('utf8')));
      const [id, email, note] = VALUES[i]!;
      expect(decoded).toEqual([String(id), email, note]);
      expect(encodeCopyTextRow(decodeCopyTextRow(row)).equals(row)).toBe(true);
    });
  });

  it('masks the masked column and findings elsewhere; the result loads back with COPY FROM', async () => {
    const data = await copyOut("COPY copyt TO STDOUT WITH (DELIMITER '|', NULL 'NIL')");
    const plan = planMask(rules, origins);
    const masker = new CopyOutMasker(copyInfo({ delimiter: '|', null: 'NIL' }), plan.actions, ['email']);
    // feed in odd-sized pieces: rows split across CopyData payloads must still work
    const parts: Buffer[] = [];
    let masked = 0;
    for (let i = 0; i < data.length; i += 7) {
      const r = masker.push(data.subarray(i, i + 7));
      parts.push(r.line);
      masked += r.masked;
    }
    const end = masker.finish();
    parts.push(end.line);
    masked += end.masked;
    const out = Buffer.concat(parts);
    expect(out.toString()).not.toMatch(/alice@|tab\\there@|zoë@/);
    expect(masked).toBe(5); // five non-null emails; NULL stays NULL
    await psql(['-c', "COPY copyback FROM STDIN WITH (DELIMITER '|', NULL 'NIL')"], out);
    const back = await client.query('SELECT id, email, note FROM copyback ORDER BY id');
    expect(back.rows.map((r) => [r.id, r.email, r.note])).toEqual([
      [1, '***@***.***', 'plain'],
      [2, '********', 'new\nline and cr\r and \\ backslash'],
      [3, null, '\\N is not null'],
      [4, '********', 'ctl \u0001\u0008\u000b\u000c end'],
      [5, '***@***.***', 'a,b "quoted" ;semi'],
      [6, '********', null],
    ]);
  });

  it('refuses rows that do not fit the plan', () => {
    expect(() => maskCopyTextRow(Buffer.from('1\t2\n'), [{ kind: 'pass' }], [])).toThrow(CopyFormatError);
  });
});

describe('COPY csv format', () => {
  it('decodes quoted fields, embedded newlines and the null marker', async () => {
    const data = await copyOut('COPY copyt TO STDOUT WITH (FORMAT csv)');
    const masker = new CopyOutMasker(
      copyInfo({ format: 'csv', delimiter: ',', null: '' }),
      [{ kind: 'pass' }, { kind: 'pass' }, { kind: 'pass' }],
      [],
    );
    const r = masker.push(data);
    expect(r.line.equals(data)).toBe(true);
    const record = Buffer.from('2,"tab\there@example.com","new\nline and cr\r and \\ backslash"\n');
    expect(decodeCopyCsvRow(record).map((v) => v?.toString())).toEqual([
      '2',
      'tab\there@example.com',
      'new\nline and cr\r and \\ backslash',
    ]);
    expect(decodeCopyCsvRow(Buffer.from('3,,""\n')).map((v) => v?.toString() ?? null)).toEqual([
      '3',
      null,
      '',
    ]);
  });

  it('masks with a header, custom quote/escape, and loads back', async () => {
    const opts = "FORMAT csv, HEADER, DELIMITER ';', QUOTE '''', ESCAPE '\\'";
    const data = await copyOut(`COPY copyt TO STDOUT WITH (${opts})`);
    const plan = planMask(rules, origins);
    const masker = new CopyOutMasker(
      copyInfo({ format: 'csv', delimiter: ';', null: '', quote: "'", escape: '\\', header: true }),
      plan.actions,
      ['email'],
    );
    const out = Buffer.concat([masker.push(data).line, masker.finish().line]);
    expect(out.toString().split('\n')[0]).toBe('id;email;note');
    expect(out.toString()).not.toMatch(/alice@|zoë@/);
    await client.query('TRUNCATE copyback');
    await psql(['-c', `COPY copyback FROM STDIN WITH (${opts})`], out);
    const back = await client.query('SELECT email, note FROM copyback ORDER BY id');
    expect(back.rows.map((r) => r.email)).toEqual([
      '***@***.***',
      '********',
      null,
      '********',
      '***@***.***',
      '********',
    ]);
    expect(back.rows[4].note).toBe('a,b "quoted" ;semi');
  });
});

describe('copyMaskSupport', () => {
  it('refuses binary COPY only when something must be masked', () => {
    const active = planMask(rules, origins);
    expect(copyMaskSupport('binary', active)).toEqual({
      ok: false,
      reason: expect.stringContaining('binary COPY'),
    });
    expect(copyMaskSupport('text', active)).toEqual({ ok: true });
    expect(copyMaskSupport('csv', active)).toEqual({ ok: true });
    expect(copyMaskSupport('binary', planMask([], origins))).toEqual({ ok: true });
  });
});
