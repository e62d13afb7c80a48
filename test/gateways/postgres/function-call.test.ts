// The fast-path FunctionCall message (libpq's PQfn: psql's \lo_import and \lo_export run on it): the
// broker resolves the function by OID, decides on the call as SQL with the same function rules, masks
// the result like a computed column, and records it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayHarness,
  startGatewayHarness,
  type TestSession,
} from '../../fixtures/pg-gateway-harness.js';
import { collectFrames, errorFields, frame, isReady, psql, rawSession } from './helpers.js';

let h: GatewayHarness;
let dir: string;
beforeAll(async () => {
  h = await startGatewayHarness();
  dir = mkdtempSync(join(tmpdir(), 'hoop-fc-'));
});
afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function oidOf(signature: string): Promise<number> {
  return Number((await h.adminSql(`SELECT '${signature}'::regprocedure::oid`)).trim());
}

/** A FunctionCall message: text arguments, the given result format. */
function functionCall(oid: number, args: Array<string | null>, resultFormat: 0 | 1 = 0): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(8);
  head.writeUInt32BE(oid, 0);
  head.writeInt16BE(1, 4); // one format code for all arguments
  head.writeInt16BE(0, 6); // text
  parts.push(head);
  const n = Buffer.alloc(2);
  n.writeInt16BE(args.length, 0);
  parts.push(n);
  for (const a of args) {
    const len = Buffer.alloc(4);
    if (a === null) {
      len.writeInt32BE(-1, 0);
      parts.push(len);
    } else {
      const v = Buffer.from(a, 'utf8');
      len.writeInt32BE(v.length, 0);
      parts.push(len, v);
    }
  }
  const rf = Buffer.alloc(2);
  rf.writeInt16BE(resultFormat, 0);
  parts.push(rf);
  return frame('F', Buffer.concat(parts));
}

/** Send messages; collect frames through the n-th ReadyForQuery. */
async function exchange(s: TestSession, messages: Buffer[], readies: number) {
  const conn = await rawSession(h.port, s);
  const got = collectFrames(conn.socket, (_f, all) => all.filter(isReady).length === readies);
  conn.socket.write(Buffer.concat(messages));
  const { frames } = await got;
  conn.socket.destroy();
  return frames;
}

/** The value of a FunctionCallResponse ('V'): null for SQL NULL. */
function resultValue(body: Buffer): Buffer | null {
  const len = body.readInt32BE(0);
  return len < 0 ? null : body.subarray(4, 4 + len);
}

describe('FunctionCall', () => {
  it('round-trips a large object with psql: \\lo_import under write, \\lo_export under read', async () => {
    const content = Buffer.concat([Buffer.from('large object \u0000 bytes '), Buffer.alloc(300_000, 7)]);
    const src = join(dir, 'in.bin');
    writeFileSync(src, content);
    const writer = h.createSession({ access: 'write' });
    const imported = await psql(h, writer, ['-At', '-c', `\\lo_import ${src}`]);
    expect(imported.code, imported.stderr).toBe(0);
    const oid = Number(/lo_import (\d+)/.exec(imported.stdout)?.[1]);
    expect(oid).toBeGreaterThan(0);

    const reader = h.createSession();
    const out = join(dir, 'out.bin');
    const exported = await psql(h, reader, ['-At', '-c', `\\lo_export ${oid} ${out}`]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(readFileSync(out).equals(content)).toBe(true);

    // each call is in the transcript as the SQL it stands for, marked as a FunctionCall
    const calls = h
      .events(reader.id)
      .filter((e) => e.kind === 'pg.statement' && e.operation.protocol === 'function-call');
    const names = calls.map((e) => String(e.operation.statement));
    expect(names.some((t) => t.startsWith('SELECT "pg_catalog"."lo_open"('))).toBe(true);
    expect(names.some((t) => t.startsWith('SELECT "pg_catalog"."loread"('))).toBe(true);
    expect(calls.every((e) => e.decision === 'allow')).toBe(true);
  });

  it('refuses \\lo_import under a read grant (lo_creat writes) and keeps serving', async () => {
    const src = join(dir, 'denied.bin');
    writeFileSync(src, 'nope');
    const s = h.createSession();
    const r = await psql(h, s, ['-At', '-c', `\\lo_import ${src}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/FUNCTION CALL denied by policy rule/);
    const denied = h.events(s.id).filter((e) => e.kind === 'pg.denied');
    expect(denied.map((e) => e.operation.statement).join(' ')).toMatch(/"pg_catalog"\."lo_creat/);
    const again = await psql(h, s, ['-At', '-c', 'SELECT 41 + 1']);
    expect(again.stdout.trim()).toBe('42');
  });

  it('masks a text result with the content detectors, in text and binary format', async () => {
    // (textcat: the fast path passes no collation, which lower() and friends would need)
    const textcat = await oidOf('pg_catalog.textcat(text,text)');
    const s = h.createSession({ mask: [{ detector: 'email' }] });
    const frames = await exchange(
      s,
      [
        functionCall(textcat, ['alice@', 'example.com'], 0),
        functionCall(textcat, ['mail bob@example.org', ' now'], 1),
        functionCall(textcat, [null, 'x'], 0),
        functionCall(textcat, ['no ', 'finding'], 0),
      ],
      4,
    );
    expect(frames.map((f) => f.type).join('')).toBe('VZVZVZVZ');
    const values = frames
      .filter((f) => f.type === 'V')
      .map((f) => resultValue(f.body)?.toString('utf8') ?? null);
    expect(values[0]).not.toContain('alice');
    expect(values[0]).toMatch(/^\*+@\*+\.\*+$/);
    expect(values[1]).toMatch(/^mail \S+ now$/);
    expect(values[1]).not.toContain('bob@example.org');
    expect(values[2]).toBeNull();
    expect(values[3]).toBe('no finding');
    const calls = h.events(s.id).filter((e) => e.operation.protocol === 'function-call');
    expect(calls.map((e) => e.masked)).toEqual([1, 1, 0, 0]);
  });

  it('denies a side-effect function under read, an unknown OID, and a malformed message, and stays usable', async () => {
    const terminate = await oidOf('pg_catalog.pg_terminate_backend(integer,bigint)');
    const s = h.createSession();
    const badFormat = Buffer.alloc(10);
    badFormat.writeInt32BE(terminate, 0);
    badFormat.writeInt16BE(1, 4);
    badFormat.writeInt16BE(7, 6); // format code 7: not text, not binary
    const frames = await exchange(
      s,
      [
        functionCall(terminate, ['1', '0']),
        serialize.query('SELECT 1'),
        functionCall(4_000_000_000, []),
        frame('F', badFormat),
        serialize.query('SELECT 2'),
      ],
      5,
    );
    expect(frames.map((f) => f.type).join('')).toBe('EZTDCZEZEZTDCZ');
    const errors = frames.filter((f) => f.type === 'E').map(errorFields);
    expect(errors[0]).toMatchObject({ S: 'ERROR', C: '42501' });
    expect(errors[0]!.D).toMatch(/pg_terminate_backend/);
    expect(errors[1]).toMatchObject({ C: '42501' });
    expect(errors[1]!.D).toMatch(/no function has OID 4000000000/);
    expect(errors[2]!.M).toMatch(/invalid FunctionCall message format/);
    const denied = h.events(s.id).filter((e) => e.kind === 'pg.denied');
    expect(denied).toHaveLength(3);
    // all three were FunctionCall messages; the third was refused before any policy (rule: protocol)
    expect(denied.map((e) => e.operation.protocol)).toEqual([
      'function-call',
      'function-call',
      'function-call',
    ]);
    expect(denied[2]!.operation).toMatchObject({ rule: 'protocol', statement_kind: 'FUNCTION CALL' });
  });

  it('lets a write grant call a function read cannot, and records it', async () => {
    const nextval = await oidOf('pg_catalog.nextval(regclass)');
    await h.adminSql('CREATE SEQUENCE IF NOT EXISTS fc_seq');
    await h.adminSql('GRANT USAGE, UPDATE ON SEQUENCE fc_seq TO PUBLIC');
    const reader = await exchange(h.createSession(), [functionCall(nextval, ['fc_seq'])], 1);
    expect(errorFields(reader[0]!)).toMatchObject({ C: '42501' });
    const w = h.createSession({ access: 'write' });
    const writer = await exchange(w, [functionCall(nextval, ['fc_seq'])], 1);
    expect(writer.map((f) => f.type).join('')).toBe('VZ');
    expect(Number(resultValue(writer[0]!.body)!.toString())).toBeGreaterThan(0);
    expect(h.events(w.id).find((e) => e.operation.protocol === 'function-call')).toMatchObject({
      decision: 'allow',
      operation: { statement: 'SELECT "pg_catalog"."nextval"($1)' },
    });
  });

  it('refuses a call of a function outside pg_catalog under column masks, at write access too', async () => {
    await h.adminSql(
      "CREATE OR REPLACE FUNCTION public.first_email() RETURNS text LANGUAGE sql AS 'SELECT email FROM customers ORDER BY id LIMIT 1'",
    );
    const oid = await oidOf('public.first_email()');
    const unmasked = await exchange(h.createSession({ access: 'write' }), [functionCall(oid, [])], 1);
    expect(resultValue(unmasked[0]!.body)?.toString()).toBe('alice@example.com');
    const masked = h.createSession({ access: 'write', mask: [{ column: 'customers.email' }] });
    const frames = await exchange(masked, [functionCall(oid, [])], 1);
    expect(errorFields(frames[0]!)).toMatchObject({ C: '42501' });
    expect(errorFields(frames[0]!).D).toMatch(/public\.first_email may be a user-defined function/);
    expect(frames.map((f) => f.type).join('')).toBe('EZ');
  });
});
