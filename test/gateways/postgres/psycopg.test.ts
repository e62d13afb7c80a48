// psycopg 3 (Python, libpq underneath) through the gateway: binary results, automatic server-side
// prepared statements, pipeline mode, COPY both ways, named cursors and cancel — the protocol paths a
// Python job takes, driven by the real library (Debian python3-psycopg) against the real broker.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayHarness,
  startGatewayHarness,
  type TestSession,
} from '../../fixtures/pg-gateway-harness.js';

const run = promisify(execFile);
const SCRIPT = join(
  fileURLToPath(new URL('.', import.meta.url)),
  '..',
  '..',
  'fixtures',
  'psycopg-client.py',
);
// Debian's interpreter, where python3-psycopg installs (not a version manager's shim on PATH)
const PYTHON = '/usr/bin/python3';

type Outcome =
  { ok: true; value: unknown } | { ok: false; error: { type: string; message: string; sqlstate?: string } };

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(async () => {
  await h?.close();
});

async function psycopg(s: TestSession, mode: 'read' | 'write'): Promise<Map<string, Outcome>> {
  const { stdout } = await run(PYTHON, [SCRIPT, mode], {
    env: { ...h.env(s), PATH: process.env.PATH ?? '' },
    timeout: 60_000,
  });
  const out = new Map<string, Outcome>();
  for (const line of stdout.trim().split('\n')) {
    const r = JSON.parse(line) as { case: string } & Outcome;
    out.set(r.case, r);
  }
  return out;
}

const value = (o: Outcome | undefined): unknown => {
  if (!o?.ok) throw new Error(`case failed: ${JSON.stringify(o)}`);
  return o.value;
};

describe('psycopg 3 through the broker', () => {
  it('reads with masks in text, binary, prepared, pipelined, COPY and cursor form; denies and cancels', async () => {
    const s = h.createSession({
      access: 'read',
      mask: [{ column: 'customers.email' }, { detector: 'credit_card' }],
    });
    const r = await psycopg(s, 'read');
    expect(value(r.get('text rows'))).toEqual([
      [1, '***@***.***', '****-****-****-1111'],
      [2, '***@***.***', '****-****-****-0004'],
      [3, null, null],
    ]);
    expect(value(r.get('binary rows'))).toEqual([[2, '***@***.***', '1990-03-04']]);
    expect(value(r.get('auto-prepared'))).toEqual(Array(8).fill('***@***.***'));
    expect(value(r.get('pipeline'))).toEqual([[['***@***.***']], [[3]], [['Bob']]]);
    expect(value(r.get('denied in pipeline'))).toEqual({
      sqlstate: '42501',
      message: 'hoop: DELETE denied by policy rule "access: read"',
      after: 3,
    });
    expect(value(r.get('copy out'))).toEqual([
      ['1', '***@***.***'],
      ['2', '***@***.***'],
      ['3', null],
    ]);
    expect(value(r.get('server-side cursor'))).toEqual([
      [1, '***@***.***'],
      [2, '***@***.***'],
      [3, null],
    ]);
    expect(r.get('denied')).toMatchObject({
      ok: false,
      error: { sqlstate: '42501', message: 'hoop: UPDATE denied by policy rule "access: read"' },
    });
    expect(value(r.get('usable after denial'))).toEqual([[1]]);
    expect(value(r.get('cancel'))).toMatchObject({ sqlstate: '57014' });
    expect((value(r.get('cancel')) as { seconds: number }).seconds).toBeLessThan(5);
    expect(value(r.get('usable after cancel'))).toEqual([[2]]);
    expect(value(r.get('type info'))).toBe(1700);
    // every statement is in the transcript, none with a cleartext email
    const statements = h.events(s.id).filter((e) => e.kind === 'pg.statement');
    expect(statements.length).toBeGreaterThan(15);
    expect(JSON.stringify(h.events(s.id))).not.toMatch(/alice@example\.com|4111 1111/);
  });

  it('writes with executemany (pipelined batches), COPY FROM in text and binary, and rolls back', async () => {
    const s = h.createSession({ access: 'write' });
    const r = await psycopg(s, 'write');
    expect(value(r.get('create'))).toBe('CREATE TABLE');
    expect(value(r.get('executemany'))).toBe(200);
    expect(value(r.get('copy in text'))).toBe(500);
    expect(value(r.get('copy in binary'))).toBe(800);
    expect(value(r.get('transaction rollback'))).toBe(800);
    expect(value(r.get('drop'))).toBe('DROP TABLE');
    const inserts = h
      .events(s.id)
      .filter((e) => e.kind === 'pg.statement' && e.operation.statement_kind === 'INSERT');
    expect(inserts.length).toBe(200);
  });
});
