// Approval holds through the real broker (in-process, embedded store) in front of a real PostgreSQL:
// psql, node-postgres and node-pg-migrate; a held statement does not reach the server until approved
// (API, CLI), a denial or a timeout is a non-fatal 42501, revocation ends the wait, self-approval is
// refused, an approval releases exactly its one statement. What reached the server is read back.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalView } from '../../service/api/schemas.js';
import { main as cli } from '../../service/cli.js';
import type { Config } from '../../service/config/schema.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';
import { tool } from '../gateways/postgres/helpers.js';

const AUD = 'https://hoop.approvals.test';
const ADMIN = 'approvals-admin-token-0123456789abcdef';
const ALICE = 'alice-approver-token-0123456789abcdef';
const OCTO = 'octocat-approver-token-0123456789abcd';
const EVE = 'eve-not-an-approver-token-0123456789ab';
const DB_PASSWORD = 'approvals-upstream-pw-1a2b3c';

let issuer: OidcIssuer;
let db: PgServer;
let b: TestBroker;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-approvals-'));
  [issuer, db] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
  await db.psql(`CREATE ROLE ci_migrator LOGIN PASSWORD '${DB_PASSWORD}'`);
  await db.psql('CREATE DATABASE orders OWNER ci_migrator');
  await db.psql(
    `SET ROLE ci_migrator;
     CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
     INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 5) g;
     CREATE TABLE doomed_a (id int); CREATE TABLE doomed_b (id int); CREATE TABLE doomed_c (id int);
     CREATE TABLE doomed_d (id int); CREATE TABLE doomed_e (id int); CREATE TABLE doomed_f (id int);`,
    'orders',
  );
  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' }, postgres: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'orders-db',
        kind: 'postgres',
        host: '127.0.0.1',
        port: db.port,
        database: 'orders',
        user: 'ci_migrator',
        password: { env: 'APPROVALS_DB_PASSWORD' },
        tls: { mode: 'disable' },
      },
    ],
    policies: [
      {
        name: 'quick-timeout',
        when: { workflow: 'quick' },
        grants: [
          {
            target: 'orders-db',
            access: 'write',
            approve: [{ statement: ['DROP'] }],
            approvers: { users: ['alice'] },
            approval_timeout: '2s',
          },
        ],
      },
      {
        name: 'migrations',
        when: { repository_id: '123456' },
        grants: [
          {
            target: 'orders-db',
            access: 'write',
            deny: [{ statement: ['TRUNCATE'] }],
            approve: [{ statement: ['DROP', 'ALTER TABLE'] }, { table: ['accounts'] }],
            approvers: { users: ['alice', 'octocat'] },
          },
        ],
      },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'APPROVALS_ADMIN' } }] },
    approvals: {
      approver_tokens: [
        { name: 'alice', token: { env: 'APPROVALS_ALICE' }, github_login: 'alice' },
        // the job's own actor: must never approve its own hold
        { name: 'octo', token: { env: 'APPROVALS_OCTO' }, github_login: 'octocat' },
        // a valid approver token whose login no hold lists
        { name: 'eve', token: { env: 'APPROVALS_EVE' }, github_login: 'eve' },
      ],
    },
  };
  b = await startBroker({
    config,
    env: {
      APPROVALS_DB_PASSWORD: DB_PASSWORD,
      APPROVALS_ADMIN: ADMIN,
      APPROVALS_ALICE: ALICE,
      APPROVALS_OCTO: OCTO,
      APPROVALS_EVE: EVE,
    },
  });
}, 120_000);

afterAll(async () => {
  await b?.close();
  await Promise.all([issuer?.close(), db?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function openSession(claims: Record<string, string> = {}): Promise<{ id: string; secret: string }> {
  const res = await fetch(`${b.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ oidc_token: await issuer.mint(claims) }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string };
}

function client(s: { id: string; secret: string }): pg.Client {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: b.pgPort,
    user: s.id,
    password: s.secret,
    database: 'orders-db',
    ssl: { ca: b.caPem },
  });
  c.on('error', () => undefined);
  return c;
}

function pgEnv(s: { id: string; secret: string }): Record<string, string> {
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, b.caPem);
  return {
    PATH: process.env.PATH ?? '',
    PGHOST: '127.0.0.1',
    PGPORT: String(b.pgPort),
    PGUSER: s.id,
    PGPASSWORD: s.secret,
    PGDATABASE: 'orders-db',
    PGSSLMODE: 'verify-ca',
    PGSSLROOTCERT: caFile,
  };
}

async function api(
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${b.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The session's pending approvals, once there are `n` of them. */
async function pending(sessionId: string, n = 1, timeoutMs = 15_000): Promise<ApprovalView[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await api('GET', `/v1/approvals?state=pending&session=${sessionId}`, ADMIN);
    const list = r.body.approvals as ApprovalView[];
    if (list.length >= n) return list;
    if (Date.now() > until) throw new Error(`no ${n} pending approval(s) for ${sessionId}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function transcriptKinds(
  sessionId: string,
): Promise<{ kind: string; operation: Record<string, unknown> }[]> {
  const r = await api('GET', `/v1/sessions/${sessionId}/transcript`, ADMIN);
  return (r.body.events as { kind: string; operation: Record<string, unknown> }[]).filter(
    (e) => e.kind.startsWith('approval.') || e.kind === 'pg.statement' || e.kind === 'pg.denied',
  );
}

const tableExists = async (name: string) =>
  (await db.psql(`SELECT count(*) FROM pg_class WHERE relname = '${name}'`, 'orders')).trim() === '1';

describe('a held statement, approved', () => {
  it('psql: the notice names the approval; nothing reaches the server before the API approves it', async () => {
    const s = await openSession();
    const run = tool('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-At', '-c', 'DROP TABLE doomed_a'], pgEnv(s));
    const [a] = await pending(s.id);
    expect(a!.summary).toBe('DROP TABLE doomed_a');
    expect(a!.job).toMatchObject({ repository: 'octo-org/octo-repo', actor: 'octocat' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await tableExists('doomed_a')).toBe(true); // held: not run
    const t0 = performance.now();
    const decided = await api('POST', `/v1/approvals/${a!.id}`, ALICE, {
      decision: 'approve',
      reason: 'reviewed',
    });
    expect(decided.status).toBe(200);
    expect(decided.body.state).toBe('approved');
    const r = await run;
    const ms = performance.now() - t0;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`hoop: statement held for approval ${a!.id}`);
    expect(r.stderr).toContain('waiting up to 10m');
    expect(await tableExists('doomed_a')).toBe(false);
    expect(ms).toBeLessThan(5000);
    // the statement's own event is recorded in the background, just after the client is answered
    let events = await transcriptKinds(s.id);
    for (let i = 0; i < 50 && events.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 50));
      events = await transcriptKinds(s.id);
    }
    expect(events.map((e) => e.kind)).toEqual(['approval.requested', 'approval.granted', 'pg.statement']);
    expect(events[1]!.operation).toMatchObject({ approval_id: a!.id, by: 'alice', channel: 'api' });
    expect(typeof events[1]!.operation.waited_ms).toBe('number');
  });

  it('node-postgres, extended protocol: approved once, for that execution only; pipelined queries wait in order', async () => {
    const s = await openSession();
    const c = client(s);
    await c.connect();
    try {
      // pipelined: the held UPDATE first, an allowed statement behind it; both wait, in order
      const order: string[] = [];
      const held = c
        .query({
          name: 'pay',
          text: 'UPDATE accounts SET balance = balance - $1 WHERE id = $2',
          values: [10, 1],
        })
        .then((r) => (order.push('held'), r));
      const behind = c.query('SELECT 42 AS behind').then((r) => (order.push('behind'), r));
      const [a] = await pending(s.id);
      expect(a!.summary).toBe('UPDATE accounts SET balance = balance - $1 WHERE id = $2');
      expect(a!.operation_sha256).toMatch(/^[0-9a-f]{64}$/);
      // deciding with the sha of another operation is refused
      const wrong = await api('POST', `/v1/approvals/${a!.id}`, ALICE, {
        decision: 'approve',
        operation_sha256: '0'.repeat(64),
      });
      expect(wrong.status).toBe(409);
      expect(
        (
          await api('POST', `/v1/approvals/${a!.id}`, ALICE, {
            decision: 'approve',
            operation_sha256: a!.operation_sha256,
          })
        ).status,
      ).toBe(200);
      expect((await held).rowCount).toBe(1);
      expect((await behind).rows).toEqual([{ behind: 42 }]);
      expect(order).toEqual(['held', 'behind']);
      // the same prepared statement again, other parameter values: another execution, held on its own
      // (the approval binds the statement text and the values: the first one's approval cannot run it)
      const again = c
        .query({
          name: 'pay',
          text: 'UPDATE accounts SET balance = balance - $1 WHERE id = $2',
          values: [50, 2],
        })
        .catch((e: Error) => e);
      const [b2] = await pending(s.id);
      expect(b2!.id).not.toBe(a!.id);
      expect(b2!.operation_sha256).not.toBe(a!.operation_sha256);
      expect(b2!.summary).toBe('UPDATE accounts SET balance = balance - $1 WHERE id = $2'); // values never shown
      expect(
        (
          await api('POST', `/v1/approvals/${b2!.id}`, ALICE, {
            decision: 'approve',
            operation_sha256: a!.operation_sha256,
          })
        ).status,
      ).toBe(409);
      expect((await api('POST', `/v1/approvals/${b2!.id}`, ALICE, { decision: 'deny' })).status).toBe(200);
      expect(await again).toMatchObject({ code: '42501' });
      // the connection stays usable
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect(
        (await db.psql('SELECT balance FROM accounts WHERE id IN (1, 2) ORDER BY id', 'orders')).trim(),
      ).toBe('90\n100');
    } finally {
      await c.end();
    }
  });

  it('the CLI lists and approves; node-pg-migrate waits through the hold and completes', async () => {
    const s = await openSession();
    const migrations = mkdtempSync(join(dir, 'migrations-'));
    writeFileSync(
      join(migrations, '1700000000000_drop-doomed-b.sql'),
      '-- Up Migration\nDROP TABLE doomed_b;\n-- Down Migration\nCREATE TABLE doomed_b (id int);\n',
    );
    const env = pgEnv(s);
    const url = `postgres://${s.id}:${s.secret}@127.0.0.1:${b.pgPort}/orders-db`;
    const migrate = runner({
      databaseUrl: { connectionString: url, ssl: { ca: b.caPem } },
      dir: migrations,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      log: () => undefined,
      noLock: true,
    } as Parameters<typeof runner>[0]);
    void env;
    const [a] = await pending(s.id);
    expect(a!.summary).toContain('DROP TABLE doomed_b');
    const out: string[] = [];
    const o = { out: (x: string) => out.push(x), err: (x: string) => out.push(x) };
    process.env.HOOP_APPROVER_TOKEN = ALICE;
    try {
      expect(await cli(['approvals', 'list', '--state', 'pending', '--url', b.url], o)).toBe(0);
      expect(out.join('\n')).toContain(a!.id);
      expect(
        await cli(['approvals', 'approve', a!.id, '--reason', 'migration reviewed', '--url', b.url], o),
      ).toBe(0);
      expect(out.at(-1)).toBe(`${a!.id}: approved`);
    } finally {
      delete process.env.HOOP_APPROVER_TOKEN;
    }
    await migrate;
    expect(await tableExists('doomed_b')).toBe(false);
    const granted = (await transcriptKinds(s.id)).find((e) => e.kind === 'approval.granted');
    expect(granted?.operation).toMatchObject({ by: 'alice', channel: 'cli' });
  });
});

describe('a held statement, refused', () => {
  it('denied: a non-fatal 42501 naming who and why; inside a transaction the block is aborted', async () => {
    const s = await openSession();
    const c = client(s);
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO doomed_c VALUES (1)');
      const held = c.query('DROP TABLE doomed_c');
      const [a] = await pending(s.id);
      expect(
        (
          await api('POST', `/v1/approvals/${a!.id}`, ALICE, {
            decision: 'deny',
            reason: 'not during business hours',
          })
        ).status,
      ).toBe(200);
      const err = (await held.catch((e: unknown) => e)) as {
        code?: string;
        message?: string;
        detail?: string;
      };
      expect(err.code).toBe('42501');
      expect(`${err.message} ${err.detail}`).toContain(
        `approval ${a!.id} denied by alice: not during business hours`,
      );
      // PostgreSQL semantics: the error aborted the transaction block, as the server says too
      await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
      expect((await c.query('SELECT count(*)::int AS n FROM doomed_c')).rows).toEqual([{ n: 0 }]);
    } finally {
      await c.end();
    }
    expect(await tableExists('doomed_c')).toBe(true);
    const kinds = (await transcriptKinds(s.id)).map((e) => e.kind);
    expect(kinds).toContain('approval.denied');
    expect(kinds).toContain('pg.denied');
  });

  it('timed out: denied when no decision comes in time (approval_timeout)', async () => {
    const s = await openSession({ workflow: 'quick' });
    const c = client(s);
    await c.connect();
    try {
      const t0 = performance.now();
      const err = (await c.query('DROP TABLE doomed_d').catch((e: unknown) => e)) as {
        code?: string;
        message?: string;
        detail?: string;
      };
      expect(performance.now() - t0).toBeGreaterThan(1500);
      expect(err.code).toBe('42501');
      expect(`${err.message} ${err.detail}`).toContain('timed out');
      expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    } finally {
      await c.end();
    }
    expect(await tableExists('doomed_d')).toBe(true);
    const list = (await api('GET', `/v1/approvals?session=${s.id}`, ADMIN)).body.approvals as ApprovalView[];
    expect(list[0]!.state).toBe('expired');
    // too late to decide
    expect((await api('POST', `/v1/approvals/${list[0]!.id}`, ALICE, { decision: 'approve' })).status).toBe(
      409,
    );
  });

  it('revoked while held: the wait ends, the connection closes, the statement never runs', async () => {
    const s = await openSession();
    const c = client(s);
    await c.connect();
    const held = c.query('DROP TABLE doomed_e').catch((e: unknown) => e);
    const [a] = await pending(s.id);
    expect((await api('DELETE', `/v1/sessions/${s.id}`, ADMIN)).status).toBe(200);
    const err = (await held) as { message?: string };
    expect(err).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 300));
    const after = (await api('GET', `/v1/approvals/${a!.id}`, ADMIN)).body;
    expect(after.state).toBe('abandoned');
    expect((await api('POST', `/v1/approvals/${a!.id}`, ALICE, { decision: 'approve' })).status).toBe(409);
    expect(await tableExists('doomed_e')).toBe(true);
  });

  it('self-approval is refused; an unknown token is refused; an approval of one statement does not release another', async () => {
    const s = await openSession(); // actor octocat
    const c1 = client(s);
    const c2 = client(s);
    await Promise.all([c1.connect(), c2.connect()]);
    try {
      const first = c1.query('DROP TABLE doomed_f');
      await pending(s.id, 1);
      const second = c2.query('UPDATE accounts SET balance = 0 WHERE id = 5');
      const both = await pending(s.id, 2);
      const dropHold = both.find((x) => x.summary.startsWith('DROP'))!;
      const updateHold = both.find((x) => x.summary.startsWith('UPDATE'))!;
      expect(dropHold.operation_sha256).not.toBe(updateHold.operation_sha256);
      const self = await api('POST', `/v1/approvals/${dropHold.id}`, OCTO, { decision: 'approve' });
      expect(self.status).toBe(403);
      expect(self.body.error).toBe('self_approval');
      expect(
        (await api('POST', `/v1/approvals/${dropHold.id}`, 'not-a-token', { decision: 'approve' })).status,
      ).toBe(401);
      const eve = await api('POST', `/v1/approvals/${dropHold.id}`, EVE, { decision: 'approve' });
      expect(eve.status).toBe(403);
      expect(eve.body.error).toBe('not_permitted');
      // a session secret is not an approver credential either
      expect(
        (await api('POST', `/v1/approvals/${dropHold.id}`, s.secret, { decision: 'approve' })).status,
      ).toBe(401);
      expect((await api('POST', `/v1/approvals/${dropHold.id}`, ALICE, { decision: 'approve' })).status).toBe(
        200,
      );
      await first;
      expect(await tableExists('doomed_f')).toBe(false);
      // the UPDATE is still held
      await new Promise((r) => setTimeout(r, 300));
      expect((await db.psql('SELECT balance FROM accounts WHERE id = 5', 'orders')).trim()).toBe('100');
      expect((await api('GET', `/v1/approvals/${updateHold.id}`, ADMIN)).body.state).toBe('pending');
      expect((await api('POST', `/v1/approvals/${updateHold.id}`, ADMIN, { decision: 'deny' })).status).toBe(
        200,
      );
      await expect(second).rejects.toMatchObject({ code: '42501' });
      expect((await db.psql('SELECT balance FROM accounts WHERE id = 5', 'orders')).trim()).toBe('100');
    } finally {
      await Promise.all([c1.end(), c2.end()]);
    }
  });
});

describe('latency', () => {
  it('measures the time from the approving POST to the statement having run (p50 over 20 holds)', async () => {
    const s = await openSession();
    const c = client(s);
    await c.connect();
    const waits: number[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const q = c.query('UPDATE accounts SET balance = balance WHERE id = 3');
        const [a] = await pending(s.id);
        const t0 = performance.now();
        expect((await api('POST', `/v1/approvals/${a!.id}`, ALICE, { decision: 'approve' })).status).toBe(
          200,
        );
        await q;
        waits.push(performance.now() - t0);
      }
    } finally {
      await c.end();
    }
    const sorted = [...waits].sort((x, y) => x - y);
    console.log(
      `approval → statement done (one broker, embedded store): p50 ${sorted[10]!.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms over 20`,
    );
    expect(sorted[10]!).toBeLessThan(2000);
  }, 120_000);
});

describe('pipelining (raw protocol: several messages in one write)', () => {
  async function raw(s: { id: string; secret: string }) {
    const { connectUpstream } = await import('../../service/gateways/postgres/upstream.js');
    const r = await connectUpstream(
      {
        target: {
          name: 'gateway',
          kind: 'postgres',
          host: '127.0.0.1',
          port: b.pgPort,
          database: 'orders-db',
          user: s.id,
          password: { env: 'UNUSED' },
          tls: { mode: 'require' },
        },
        password: s.secret,
      },
      { parameters: new Map([['application_name', 'raw-approvals']]), timeoutMs: 10_000 },
    );
    if (!r.ok) throw new Error(r.message);
    r.conn.socket.resume();
    return r.conn;
  }

  it('extended protocol: the approval binds the parameter values (a Bind with other values is held anew, never released by it)', async () => {
    const { serialize } = await import('pg-protocol');
    const { collectFrames } = await import('../gateways/postgres/helpers.js');
    const s = await openSession();
    const conn = await raw(s);
    const socket = conn.socket;
    const balances = async () =>
      (await db.psql('SELECT balance FROM accounts WHERE id IN (3, 4) ORDER BY id', 'orders')).trim();
    try {
      expect(await balances()).toBe('100\n100');
      // the Parse alone runs nothing: it is prepared at once, nobody is asked
      const text = 'UPDATE accounts SET balance = balance - $1 WHERE id = $2';
      let got = collectFrames(socket as never, (f) => f.type === 'Z', 15_000);
      socket.write(Buffer.concat([serialize.parse({ name: 'pay2', text, types: [] }), serialize.sync()]));
      expect((await got).frames.map((f) => f.type).join('')).toBe('1Z');
      expect((await api('GET', `/v1/approvals?state=pending&session=${s.id}`, ADMIN)).body.approvals).toEqual(
        [],
      );
      // one execution with its values: held, approved
      got = collectFrames(socket as never, (f) => f.type === 'Z', 30_000);
      socket.write(
        Buffer.concat([
          serialize.bind({ statement: 'pay2', values: ['10', '3'] }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const [a] = await pending(s.id);
      expect(a!.summary).toBe(text); // the values are hashed, never shown
      expect(JSON.stringify(a)).not.toContain('"10"');
      expect((await api('POST', `/v1/approvals/${a!.id}`, ALICE, { decision: 'approve' })).status).toBe(200);
      expect((await got).frames.map((f) => f.type).join('')).toContain('2C');
      expect(await balances()).toBe('90\n100');
      // the same statement with other values: a new hold with another hash, denied here; nothing ran
      got = collectFrames(socket as never, (f) => f.type === 'Z', 30_000);
      socket.write(
        Buffer.concat([
          serialize.bind({ statement: 'pay2', values: ['99', '4'] }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const [b2] = await pending(s.id);
      expect(b2!.operation_sha256).not.toBe(a!.operation_sha256);
      expect(
        (
          await api('POST', `/v1/approvals/${b2!.id}`, ALICE, {
            decision: 'approve',
            operation_sha256: a!.operation_sha256,
          })
        ).status,
      ).toBe(409);
      expect((await api('POST', `/v1/approvals/${b2!.id}`, ALICE, { decision: 'deny' })).status).toBe(200);
      expect((await got).frames.map((f) => f.type)).toContain('E');
      expect(await balances()).toBe('90\n100');
      const events = await transcriptKinds(s.id);
      expect(JSON.stringify(events)).not.toContain('"99"');
    } finally {
      socket.destroy();
    }
  });

  it('messages behind a held one wait, in order, simple and extended; the notice comes at once', async () => {
    const { serialize } = await import('pg-protocol');
    const { collectFrames, errorFields } = await import('../gateways/postgres/helpers.js');
    const s = await openSession();
    const conn = await raw(s);
    const socket = conn.socket;
    try {
      await db.psql('SET ROLE ci_migrator; CREATE TABLE IF NOT EXISTS pipe_log (n int)', 'orders');
      // a held ALTER, then an INSERT that only succeeds if the ALTER ran first; then an extended batch
      const writes = Buffer.concat([
        serialize.query('ALTER TABLE pipe_log ADD COLUMN note text'),
        serialize.query("INSERT INTO pipe_log VALUES (1, 'after the alter')"),
        serialize.parse({ text: "INSERT INTO pipe_log VALUES (2, 'extended')", types: [] }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
      ]);
      let readyCount = 0;
      const collecting = collectFrames(socket as never, (f) => f.type === 'Z' && ++readyCount === 3, 30_000);
      socket.write(writes);
      const [a] = await pending(s.id);
      await new Promise((r) => setTimeout(r, 200));
      expect((await db.psql('SELECT count(*) FROM pipe_log', 'orders')).trim()).toBe('0');
      expect((await api('POST', `/v1/approvals/${a!.id}`, ALICE, { decision: 'approve' })).status).toBe(200);
      const { frames } = await collecting;
      const types = frames.map((f) => f.type).join('');
      // Notice; ALTER: CommandComplete, Ready; INSERT: CommandComplete, Ready; Parse/Bind/Execute/Sync
      expect(types).toBe('NCZCZ12CZ');
      expect(errorFields(frames[0]!).M).toContain(`held for approval ${a!.id}`);
      expect((await db.psql('SELECT n, note FROM pipe_log ORDER BY n', 'orders')).trim()).toBe(
        '1|after the alter\n2|extended',
      );
    } finally {
      socket.destroy();
    }
  });
});
