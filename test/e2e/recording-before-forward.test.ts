// `recording: before_forward` through the real broker (a `hoop-broker serve` process on a PostgreSQL
// store): every allowed statement's event is durable before the statement reaches the database. With
// the store made to refuse transcript appends (a trigger on its event table), a statement sent through a
// before_forward target never runs — no row in the table, no line in the server's statement log —
// while the same statement through a default (background) target runs and the connection is closed
// only after, when its event fails to record. Without the refusal, before_forward writes pg.statement
// before and pg.statement.result after; the default writes one pg.statement with its counts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrokerProcess, startBrokerProcess } from '../fixtures/broker-process.js';
import { githubIssuer, loopbackListen, pgTarget } from '../fixtures/config.js';
import { openSession as openSessionAt } from '../fixtures/sessions.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { freePort, type PgServer, startPostgres } from '../fixtures/postgres.js';

const AUD = 'https://hoop.before-forward.test';
const ADMIN = 'before-forward-admin-token-0123456789';
const DB_PASSWORD = 'bf-upstream-pw-5c4b3a';

let issuer: OidcIssuer;
let db: PgServer;
let dir: string;
let broker: BrokerProcess;

const target = (name: string, extra: Record<string, unknown>) =>
  pgTarget(
    { name, port: db.port, database: 'app', user: 'app_writer', passwordEnv: 'BF_DB_PASSWORD' },
    extra,
  );

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-before-forward-'));
  [issuer, db] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
  await db.psql(`CREATE ROLE app_writer LOGIN PASSWORD '${DB_PASSWORD}'`);
  // what the target's role runs is in the server's log: the proof of what reached the database
  await db.psql(`ALTER ROLE app_writer SET log_statement = 'all'`);
  await db.psql('CREATE DATABASE app OWNER app_writer');
  await db.psql('CREATE DATABASE hoop_store');
  await db.psql('SET ROLE app_writer; CREATE TABLE ran (id int, note text);', 'app');
  broker = await startBrokerProcess({
    dir,
    name: 'broker',
    config: {
      listen: loopbackListen({ http: await freePort(), postgres: await freePort() }),
      data_dir: join(dir, 'data'),
      store: { url: { env: 'BF_STORE_URL' } },
      log: { level: 'info' },
      issuers: githubIssuer(issuer, AUD),
      targets: [target('app-first', { recording: 'before_forward' }), target('app-background', {})],
      policies: [
        {
          name: 'prs',
          when: { event_name: 'pull_request' },
          grants: [
            { target: 'app-first', access: 'write' },
            { target: 'app-background', access: 'write' },
          ],
        },
      ],
      admin: { tokens: [{ name: 'ops', token: { env: 'BF_ADMIN' } }] },
    },
    env: { BF_STORE_URL: db.url('hoop_store'), BF_DB_PASSWORD: DB_PASSWORD, BF_ADMIN: ADMIN },
  });
  // the switch the test flips: while it has a row, every transcript append fails in the store
  await db.psql(
    `CREATE TABLE refuse_appends (on_ boolean);
     CREATE FUNCTION refuse_appends() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF EXISTS (SELECT 1 FROM refuse_appends) THEN RAISE EXCEPTION 'transcript appends refused by the test'; END IF;
       RETURN NEW;
     END $$;
     CREATE TRIGGER refuse_appends BEFORE INSERT OR UPDATE ON event_chunks FOR EACH ROW EXECUTE FUNCTION refuse_appends();`,
    'hoop_store',
  );
}, 120_000);

afterAll(async () => {
  await broker?.kill('SIGKILL');
  await Promise.all([issuer?.close(), db?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function openSession(): Promise<{ id: string; secret: string }> {
  return openSessionAt(broker.url, issuer, { event_name: 'pull_request' });
}

async function connect(s: { id: string; secret: string }, database: string): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: broker.pgPort,
    user: s.id,
    password: s.secret,
    database,
    ssl: false, // loopback: the broker does not require TLS
    connectionTimeoutMillis: 10_000,
  });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

type Ev = {
  seq: number;
  kind: string;
  target: string | null;
  operation: Record<string, unknown>;
  rows?: number;
  decision: string;
};
async function transcript(id: string): Promise<Ev[]> {
  const res = await fetch(`${broker.url}/v1/sessions/${id}/transcript`, {
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  const body = (await res.json()) as { events: Ev[]; chain_verified: boolean };
  expect(body.chain_verified).toBe(true);
  return body.events;
}

const rowsWith = async (note: string) =>
  Number((await db.psql(`SELECT count(*) FROM ran WHERE note = '${note}'`, 'app')).trim());
const serverLog = () => readFileSync(join(db.dir, 'server.log'), 'utf8');
const setRefusal = (on: boolean) =>
  db.psql(on ? 'INSERT INTO refuse_appends VALUES (true)' : 'DELETE FROM refuse_appends', 'hoop_store');

describe('recording: before_forward', () => {
  it('records pg.statement before and pg.statement.result after; the default records once, after', async () => {
    const s = await openSession();
    const first = await connect(s, 'app-first');
    await first.query("INSERT INTO ran VALUES (1, 'bf-simple')");
    await first.query('INSERT INTO ran VALUES ($1, $2)', [2, 'bf-extended']);
    expect((await first.query('SELECT count(*)::int AS n FROM ran')).rows[0]).toEqual({ n: 2 });
    await first.end();
    const background = await connect(s, 'app-background');
    await background.query("INSERT INTO ran VALUES (3, 'bg-simple')");
    await background.end();
    let events: Ev[] = [];
    // the background events and the connections' closing are durable within the group-commit window
    for (let i = 0; i < 50; i++) {
      events = await transcript(s.id);
      if (events.filter((e) => e.kind === 'pg.connection.closed').length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const firstConn = events.find((e) => e.kind === 'pg.connection.opened' && e.target === 'app-first')!
      .operation.conn_id;
    const ofFirst = events.filter(
      (e) => e.operation.conn_id === firstConn && e.kind.startsWith('pg.statement'),
    );
    expect(ofFirst.map((e) => [e.kind, e.operation.statement ?? e.operation.statement_kind, e.rows])).toEqual(
      [
        ['pg.statement', "INSERT INTO ran VALUES (1, 'bf-simple')", undefined],
        ['pg.statement.result', 'INSERT', 1],
        ['pg.statement', 'INSERT INTO ran VALUES ($1, $2)', undefined],
        ['pg.statement.result', 'INSERT', 1],
        ['pg.statement', 'SELECT count(*)::int AS n FROM ran', undefined],
        ['pg.statement.result', 'SELECT', 1],
      ],
    );
    const ofBackground = events.filter(
      (e) => e.kind.startsWith('pg.statement') && e.operation.conn_id !== firstConn,
    );
    expect(ofBackground.map((e) => [e.kind, e.operation.statement, e.rows])).toEqual([
      ['pg.statement', "INSERT INTO ran VALUES (3, 'bg-simple')", 1],
    ]);
  }, 60_000);

  it('a statement whose event the store refuses never reaches the database; the default runs it first', async () => {
    const s = await openSession();
    // connections open while the store takes appends (their opening is recorded, durably)
    const simple = await connect(s, 'app-first');
    const extended = await connect(s, 'app-first');
    const background = await connect(s, 'app-background');
    await setRefusal(true);
    try {
      const logBefore = serverLog().length;
      await expect(simple.query("INSERT INTO ran VALUES (10, 'bf-refused-simple')")).rejects.toThrow(
        /transcript could not be recorded|Connection terminated/,
      );
      await expect(
        extended.query('INSERT INTO ran VALUES ($1, $2)', [11, 'bf-refused-extended']),
      ).rejects.toThrow(/transcript could not be recorded|Connection terminated/);
      // the default: the statement runs, the client gets its answer, its event then fails to record and
      // the connection is closed
      await background.query("INSERT INTO ran VALUES (12, 'bg-ran-unrecorded')");
      await expect
        .poll(
          async () =>
            background.query('SELECT 1').then(
              () => 'open',
              () => 'closed',
            ),
          { timeout: 10_000 },
        )
        .toBe('closed');

      expect(await rowsWith('bf-refused-simple')).toBe(0);
      expect(await rowsWith('bf-refused-extended')).toBe(0);
      expect(await rowsWith('bg-ran-unrecorded')).toBe(1);
      const log = serverLog().slice(logBefore);
      const statementLines = log.split('\n').filter((l) => /LOG: {2}(statement|execute [^:]*):/.test(l));
      expect(statementLines.some((l) => l.includes('bg-ran-unrecorded'))).toBe(true);
      expect(statementLines.some((l) => l.includes('bf-refused'))).toBe(false);
      expect(log).not.toContain('bf-refused-simple');
      expect(log.match(/INSERT INTO ran VALUES \(\$1, \$2\)/g) ?? []).toHaveLength(0);
    } finally {
      await setRefusal(false);
      for (const c of [simple, extended, background]) await c.end().catch(() => undefined);
    }
    // the broker logged why it closed them, without the statement text
    const why = broker.logs.filter((l) => String(l.msg).includes('could not record a transcript event'));
    expect(why.length).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(why)).not.toContain('bf-refused');
  }, 60_000);
});
