// Connection lifecycle through the gateway with real clients: TLS, SCRAM, every refusal with its
// SQLSTATE, revocation and expiry closing live connections, cancel, and the upstream side's TLS and
// password methods.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresTarget } from '../../../service/config/schema.js';
import { startupPacket } from '../../../service/gateways/postgres/upstream.js';
import {
  type GatewayHarness,
  OTHER_TARGET,
  startGatewayHarness,
  TARGET,
  type TestSession,
} from '../../fixtures/pg-gateway-harness.js';
import {
  collectFrames,
  errorFields,
  frame,
  pgClientConfig,
  psql,
  sleep,
  tcp,
  tlsConnect,
} from './helpers.js';

function pgClient(
  h: GatewayHarness,
  s: Pick<TestSession, 'id' | 'secret'>,
  extra: Partial<pg.ClientConfig> = {},
): pg.Client {
  return new pg.Client(pgClientConfig(h, s, extra));
}

async function connectError(client: pg.Client): Promise<{ code?: string; message: string }> {
  try {
    await client.connect();
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  } finally {
    await client.end().catch(() => {});
  }
  throw new Error('connection unexpectedly succeeded');
}

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(async () => {
  await h?.close();
});

/** Send the session's startup packet; the code of the first authentication request that comes back. */
async function firstAuthRequest(sock: Socket, sessionId: string): Promise<number> {
  const got = collectFrames(sock, (f) => f.type === 'R');
  sock.write(
    startupPacket(
      new Map([
        ['user', sessionId],
        ['database', TARGET],
      ]),
    ),
  );
  const { frames } = await got;
  expect(frames.at(-1)?.type).toBe('R');
  return frames.at(-1)!.body.readInt32BE(0);
}

describe('authentication and authorization', () => {
  it('connects psql with verify-full TLS and SCRAM, as the target user, and records the connection', async () => {
    const s = h.createSession();
    const r = await psql(h, s, [
      '-At',
      '-c',
      'SELECT current_user, current_database(), pg_catalog.current_setting($$default_transaction_read_only$$)',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('app_user|app|on');
    await sleep(50);
    const kinds = h.events(s.id).map((e) => e.kind);
    expect(kinds).toEqual(['pg.connection.opened', 'pg.statement', 'pg.connection.closed']);
    const opened = h.events(s.id)[0]!;
    expect(opened.operation).toMatchObject({ application_name: 'psql', tls: true });
    expect(JSON.stringify(h.events(s.id))).not.toContain(h.targetPassword);
  });

  it('binds the channel (SCRAM-SHA-256-PLUS) when the client requires it', async () => {
    const s = h.createSession();
    const r = await psql(h, s, ['-At', '-c', 'SELECT 1'], { PGCHANNELBINDING: 'require' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1');
  });

  it('accepts loopback clients without TLS, and refuses them when TLS is always required', async () => {
    const s = h.createSession();
    const plain = await psql(h, s, ['-At', '-c', 'SELECT 2'], { PGSSLMODE: 'disable', PGHOST: '127.0.0.1' });
    expect(plain.stdout.trim()).toBe('2');
    const strict = await h.startGateway({ requireTls: 'always' });
    const err = await connectError(
      pgClient({ ...h, port: strict.port } as GatewayHarness, s, { ssl: false, host: '127.0.0.1' }),
    );
    expect(err).toEqual({ code: '28000', message: 'hoop: TLS is required to connect to the broker' });
  });

  it('gives the same 28P01 for a wrong secret, an unknown session and a non-session user', async () => {
    const s = h.createSession();
    const wrong = await connectError(pgClient(h, { id: s.id, secret: 'hoop_wrong' }));
    expect(wrong).toEqual({ code: '28P01', message: `password authentication failed for user "${s.id}"` });
    const ghost = 'ses_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    expect(await connectError(pgClient(h, { id: ghost, secret: s.secret }))).toEqual({
      code: '28P01',
      message: `password authentication failed for user "${ghost}"`,
    });
    expect(await connectError(pgClient(h, { id: 'postgres', secret: s.secret }))).toEqual({
      code: '28P01',
      message: 'password authentication failed for user "postgres"',
    });
  });

  it('says a session expired or was revoked only after a correct proof', async () => {
    const expired = h.createSession({ ttlMs: -1000 });
    expect(await connectError(pgClient(h, expired))).toEqual({
      code: '28000',
      message: `hoop: session ${expired.id} has expired`,
    });
    expect((await connectError(pgClient(h, { id: expired.id, secret: 'hoop_wrong' }))).code).toBe('28P01');
    const revoked = h.createSession();
    h.revoke(revoked.id);
    expect(await connectError(pgClient(h, revoked))).toEqual({
      code: '28000',
      message: `hoop: session ${revoked.id} was revoked`,
    });
  });

  it('refuses a target outside the grants (42501) and an unknown target (3D000)', async () => {
    const s = h.createSession();
    expect(await connectError(pgClient(h, s, { database: OTHER_TARGET }))).toEqual({
      code: '42501',
      message: `hoop: session ${s.id} has no grant for target "${OTHER_TARGET}"`,
    });
    expect(await connectError(pgClient(h, s, { database: 'nope' }))).toEqual({
      code: '3D000',
      message: 'database "nope" does not exist',
    });
  });

  it('refuses replication connections', async () => {
    const s = h.createSession();
    const err = await connectError(pgClient(h, s, { replication: 'database' } as Partial<pg.ClientConfig>));
    expect(err).toEqual({
      code: '28000',
      message: 'hoop: replication connections are not allowed through the broker',
    });
  });

  it('answers GSSENCRequest with N and carries on with the startup', async () => {
    const sock = await tcp(h.port);
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    const answer = new Promise<Buffer>((resolve) => sock.once('data', resolve));
    sock.write(gss);
    expect((await answer).toString('latin1')).toBe('N');
    const s = h.createSession();
    expect(await firstAuthRequest(sock, s.id)).toBe(10); // AuthenticationSASL
    sock.destroy();
  });

  it('asks TLS clients for a cleartext password when the config allows it, and checks it', async () => {
    const g = await h.startGateway({ allowCleartextPassword: true });
    const s = h.createSession();
    const client = pgClient({ ...h, port: g.port } as GatewayHarness, s);
    await client.connect();
    expect((await client.query('SELECT 3 AS n')).rows).toEqual([{ n: 3 }]);
    await client.end();
    // and the first authentication request inside TLS is AuthenticationCleartextPassword (3)
    const raw = await tcp(g.port);
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    const yes = new Promise<Buffer>((resolve) => raw.once('data', resolve));
    raw.write(ssl);
    expect((await yes).toString()).toBe('S');
    const secure = tlsConnect({ socket: raw, ca: h.caPem, servername: 'localhost' });
    await new Promise((resolve) => secure.once('secureConnect', resolve));
    expect(await firstAuthRequest(secure as never, s.id)).toBe(3); // AuthenticationCleartextPassword
    secure.destroy();
    // without TLS the same gateway still uses SCRAM (the secret never crosses a clear channel)
    const plain = pgClient({ ...h, port: g.port } as GatewayHarness, s, { ssl: false, host: '127.0.0.1' });
    await plain.connect();
    await plain.end();
  });

  it('closes a client that does not finish its startup in time', async () => {
    const g = await h.startGateway({ limits: { startupTimeoutMs: 300 } });
    const sock = await tcp(g.port);
    const started = Date.now();
    const { frames, closed } = await collectFrames(sock, () => false, 5000);
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(errorFields(frames[0]!)).toMatchObject({
      S: 'FATAL',
      C: '08P01',
      M: 'hoop: startup not completed within 300 ms',
    });
  });
});

describe('startup parameters', () => {
  it('does not forward options: a read session stays read-only whatever PGOPTIONS says', async () => {
    const s = h.createSession();
    const r = await psql(h, s, ['-At', '-c', 'SHOW default_transaction_read_only'], {
      PGOPTIONS: '-c default_transaction_read_only=off -c search_path=evil',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('on');
  });

  it('refuses a client encoding whose characters can hide quotes from the classifier', async () => {
    const s = h.createSession();
    const r = await psql(h, s, ['-At', '-c', 'SELECT 1'], { PGCLIENTENCODING: 'SJIS' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('hoop: client_encoding SJIS is not supported through the broker');
  });

  it('never lets standard_conforming_strings go off on a connection', async () => {
    const s = h.createSession({ access: 'write' });
    const client = pgClient(h, s);
    await client.connect();
    client.on('error', () => {});
    const outcome = await client.query('SET standard_conforming_strings = off').then(
      () => 'allowed',
      (err: { code?: string }) => err.code,
    );
    // refused by the policy (42501), or the connection is closed (0A000) when the setting changes
    expect(['42501', '0A000']).toContain(outcome);
    if (outcome === '42501')
      expect(
        (await client.query('SHOW standard_conforming_strings')).rows[0].standard_conforming_strings,
      ).toBe('on');
    await client.end().catch(() => {});
  });
});

describe('upstream failures and limits', () => {
  /** the harness database as the gateway's only target, with `extra` settings and this password */
  const appTarget = (extra: Partial<PostgresTarget>, password: string) =>
    new Map([
      [
        TARGET,
        {
          target: {
            name: TARGET,
            kind: 'postgres' as const,
            host: '127.0.0.1',
            port: h.pg.port,
            database: 'app',
            user: 'app_user',
            password: { env: 'X' },
            ...extra,
          },
          password,
        },
      ],
    ]);

  it('says only that the target could not be reached when the upstream refuses the broker', async () => {
    const s = h.createSession();
    const g = await h.startGateway({ targets: appTarget({}, 'definitely-wrong-password') });
    const err = await connectError(pgClient({ ...h, port: g.port } as GatewayHarness, s));
    expect(err).toEqual({ code: '08001', message: `hoop: could not connect to target "${TARGET}"` });
    expect(err.message).not.toContain('definitely-wrong-password');
  });

  it('caps connections per session and target when the target says so', async () => {
    const s = h.createSession();
    const g = await h.startGateway({
      targets: appTarget({ max_connections_per_session: 1 }, h.targetPassword),
    });
    const first = pgClient({ ...h, port: g.port } as GatewayHarness, s);
    await first.connect();
    expect(await connectError(pgClient({ ...h, port: g.port } as GatewayHarness, s))).toEqual({
      code: '53300',
      message: `hoop: too many connections for session ${s.id} to target "${TARGET}"`,
    });
    await first.end();
  });
});

describe('live connections', () => {
  const LONG_QUERY = 'SELECT count(*) FROM generate_series(1, 400000000)';
  /** psql running LONG_QUERY through the broker; resolves once the query runs upstream */
  async function longPsqlQuery(s: TestSession) {
    const child = spawn('psql', ['-X', '-c', LONG_QUERY], { env: h.env(s) });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    const exited = new Promise<{ code: number | null; exitedAt: number }>((resolve) =>
      child.on('exit', (code) => resolve({ code, exitedAt: Date.now() })),
    );
    for (let i = 0; i < 100; i++) {
      const running = await h.adminSql(
        `SELECT count(*) FROM pg_stat_activity WHERE query = '${LONG_QUERY}' AND pid <> pg_backend_pid()`,
      );
      if (running.trim() === '1') break;
      await sleep(50);
    }
    return { child, exited, stderr: () => stderr };
  }

  it('closes a live psql connection within 1 s of revocation, saying why', async () => {
    const s = h.createSession();
    const psqlRun = await longPsqlQuery(s);
    const revokedAt = Date.now();
    h.revoke(s.id);
    const { exitedAt } = await psqlRun.exited;
    expect(exitedAt - revokedAt).toBeLessThan(1000);
    expect(psqlRun.stderr()).toContain(`hoop: session ${s.id} was revoked`);
    expect(h.gateway.connectionCount()).toBe(0);
    await sleep(100);
    const closed = h.events(s.id).find((e) => e.kind === 'pg.connection.closed');
    expect(closed?.operation).toMatchObject({ reason: 'session revoked' });
  });

  it('closes connections when the session expires', async () => {
    const s = h.createSession({ ttlMs: 1500 });
    const client = pgClient(h, s);
    await client.connect();
    const ended = new Promise<{ code?: string; message: string }>((resolve) =>
      client.on('error', (err) => resolve({ code: (err as { code?: string }).code, message: err.message })),
    );
    expect(await ended).toEqual({ code: '57P01', message: `hoop: session ${s.id} has expired` });
    await client.end().catch(() => {});
  });

  it('cancels a running query (psql SIGINT and node-postgres cancel) with the broker key', async () => {
    const s = h.createSession();
    const psqlRun = await longPsqlQuery(s);
    psqlRun.child.kill('SIGINT');
    expect((await psqlRun.exited).code).not.toBe(0);
    expect(psqlRun.stderr()).toContain('canceling statement due to user request');

    const client = pgClient(h, s);
    await client.connect();
    const query = new pg.Query('SELECT count(*) FROM generate_series(1, 400000000)');
    const failed = new Promise<{ code?: string }>((resolve) =>
      query.on('error', (err) => resolve(err as { code?: string })),
    );
    client.query(query);
    await sleep(500);
    // node-postgres sends the CancelRequest on a new plain connection, with the key the broker issued
    const canceller = pgClient(h, s, { ssl: false, host: '127.0.0.1' });
    (canceller as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(client, query);
    expect(await failed).toMatchObject({ code: '57014' });
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await client.end();
  });

  it('ignores a cancel request with the wrong key', async () => {
    const s = h.createSession();
    const client = pgClient(h, s);
    await client.connect();
    const pid = (client as unknown as { processID: number }).processID;
    const sock = await tcp(h.port);
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(pid, 8);
    cancel.writeInt32BE(12345, 12);
    sock.end(cancel);
    const r = await client.query('SELECT count(*)::int AS n FROM generate_series(1, 3000000)');
    expect(r.rows).toEqual([{ n: 3000000 }]);
    await client.end();
  });

  it('relays ParameterStatus and sends its own BackendKeyData', async () => {
    const s = h.createSession();
    const client = pgClient(h, s);
    await client.connect();
    const r = await client.query('SHOW server_version');
    expect(r.rows[0].server_version).toMatch(/^\d+/);
    const pid = (client as unknown as { processID: number }).processID;
    const upstreamPids = await h.adminSql(
      "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE usename = 'app_user'",
    );
    expect(upstreamPids.split(',')).not.toContain(String(pid));
    await client.end();
  });

  it('keeps serving other connections when one client sends garbage', async () => {
    const sock = await tcp(h.port);
    const { frames, closed } = await (async () => {
      const p = collectFrames(sock, () => false, 3000);
      sock.write(frame('z', 'garbage'));
      return p;
    })();
    expect(closed).toBe(true);
    expect(errorFields(frames[0]!)).toMatchObject({ S: 'FATAL', C: '08P01' });
    const s = h.createSession();
    const r = await psql(h, s, ['-At', '-c', 'SELECT 42']);
    expect(r.stdout.trim()).toBe('42');
  });
});

describe('upstream TLS and password methods', () => {
  for (const [tls, auth] of [
    ['verify-full', 'scram-sha-256'],
    ['require', 'md5'],
    [undefined, 'password'],
  ] as const) {
    it(`connects upstream with tls=${tls ?? 'disable'} and ${auth}`, async () => {
      const u = await startGatewayHarness({ ...(tls ? { upstreamTls: tls } : {}), upstreamAuth: auth });
      try {
        const s = u.createSession();
        const r = await psql(u, s, ['-At', '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()']);
        expect(r.stderr).toBe('');
        expect(r.stdout.trim()).toBe(tls ? 't' : 'f');
      } finally {
        await u.close();
      }
    });
  }
});
