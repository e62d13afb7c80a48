// Session lifecycle over the real HTTP API, on both stores, with tokens from a real test issuer.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  ErrorBody,
  ExplainResult,
  SessionCreated,
  SessionView,
  Transcript,
} from '../../service/api/schemas.js';
import { verifyChain } from '../../service/audit/event.js';
import type { Config } from '../../service/config/schema.js';
import { createLogger } from '../../service/log.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { githubIssuer, loopbackListen, pgTarget } from '../fixtures/config.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';

const AUD = 'https://hoop.test';
const ADMIN = 'admin-token-for-tests-0123456789abcdef';

function baseConfig(issuer: OidcIssuer, pg: PgServer): Config {
  return {
    listen: loopbackListen(),
    issuers: githubIssuer(issuer, AUD),
    targets: [
      pgTarget({
        name: 'orders-db',
        port: pg.port,
        database: 'postgres',
        user: 'postgres',
        passwordEnv: 'T_PG_PASSWORD',
      }),
      pgTarget({
        name: 'billing-db',
        port: pg.port,
        database: 'postgres',
        user: 'postgres',
        passwordEnv: 'T_PG_PASSWORD',
      }),
    ],
    policies: [
      {
        name: 'pr-read',
        when: { repository_id: '123456', event_name: 'pull_request' },
        ttl: '15m',
        grants: [{ target: 'orders-db', access: 'read', mask: [{ column: 'customers.email' }] }],
      },
      {
        name: 'main-write',
        when: { repository_id: '123456', ref: 'refs/heads/main', ref_protected: true },
        ttl: '30m',
        grants: [
          { target: 'orders-db', access: 'write' },
          { target: 'billing-db', access: 'read' },
        ],
      },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'T_ADMIN_TOKEN' } }] },
    limits: { session_rate_per_minute: 1000 },
  };
}

async function call<T>(
  b: TestBroker,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
) {
  const res = await fetch(`${b.url}${path}`, {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as T };
}

const prClaims = {
  repository_id: '123456',
  event_name: 'pull_request',
  ref: 'refs/pull/7/merge',
  ref_protected: 'false',
};
const mainClaims = {
  repository_id: '123456',
  event_name: 'push',
  ref: 'refs/heads/main',
  ref_protected: 'true',
};

let issuer: OidcIssuer;
let pg: PgServer;
beforeAll(async () => {
  [issuer, pg] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
  await pg.psql('CREATE DATABASE hoop_store');
});
afterAll(async () => {
  await issuer?.close();
  await pg?.stop();
});

describe.each(['embedded', 'postgres'] as const)('sessions over HTTP (%s store)', (storeKind) => {
  let b: TestBroker;
  const logLines: string[] = [];
  beforeAll(async () => {
    const config = baseConfig(issuer, pg);
    if (storeKind === 'postgres') config.store = { url: { env: 'T_STORE_URL' } };
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    });
    b = await startBroker({
      config,
      env: { T_PG_PASSWORD: pg.password, T_ADMIN_TOKEN: ADMIN, T_STORE_URL: pg.url('hoop_store') },
      logger: createLogger('debug', sink),
    });
  });
  afterAll(async () => b?.close());

  it('opens a session for a matching token, with connection settings and the broker CA', async () => {
    const token = await issuer.mint(prClaims);
    const res = await call<SessionCreated>(b, 'POST', '/v1/sessions', { body: { oidc_token: token } });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const s = res.body;
    expect(s.id).toMatch(/^ses_[a-z2-7]{32}$/);
    expect(s.secret).toMatch(/^hoop_[A-Za-z0-9_-]{43}$/);
    expect(s.policy).toBe('pr-read');
    expect(s.identity).toMatchObject({ repository_id: '123456', event_name: 'pull_request' });
    expect(s.ca_pem).toContain('BEGIN CERTIFICATE');
    expect(s.targets).toEqual([
      {
        name: 'orders-db',
        kind: 'postgres',
        access: 'read',
        mask: [{ column: 'customers.email' }],
        connection: {
          host: '127.0.0.1',
          port: b.pgPort,
          database: 'orders-db',
          user: s.id,
          sslmode: 'verify-full',
          url: `postgres://${s.id}@127.0.0.1:${b.pgPort}/orders-db?sslmode=verify-full`,
        },
      },
    ]);
    const ttl = Date.parse(s.expires_at) - Date.now();
    expect(ttl).toBeGreaterThan(14 * 60_000);
    expect(ttl).toBeLessThanOrEqual(15 * 60_000);
    // the target's real host credentials never appear
    expect(JSON.stringify(res.body)).not.toContain(pg.password);
  });

  it('authenticates with the session secret only for its own session, or an admin token', async () => {
    const a = (
      await call<SessionCreated>(b, 'POST', '/v1/sessions', {
        body: { oidc_token: await issuer.mint(prClaims) },
      })
    ).body;
    const c = (
      await call<SessionCreated>(b, 'POST', '/v1/sessions', {
        body: { oidc_token: await issuer.mint(prClaims) },
      })
    ).body;
    expect((await call<SessionView>(b, 'GET', `/v1/sessions/${a.id}`, { token: a.secret })).status).toBe(200);
    expect((await call(b, 'GET', `/v1/sessions/${a.id}`, { token: c.secret })).status).toBe(401);
    expect((await call(b, 'GET', `/v1/sessions/${a.id}`)).status).toBe(401);
    expect((await call(b, 'GET', `/v1/sessions/${a.id}`, { token: `${a.secret}x` })).status).toBe(401);
    expect((await call(b, 'GET', '/v1/sessions/ses_doesnotexist', { token: a.secret })).status).toBe(401);
    expect((await call<SessionView>(b, 'GET', `/v1/sessions/${a.id}`, { token: ADMIN })).body.state).toBe(
      'active',
    );
    expect((await call(b, 'GET', '/v1/sessions', { token: a.secret })).status).toBe(401);
    const list = await call<{ sessions: SessionView[] }>(b, 'GET', '/v1/sessions?active=true', {
      token: ADMIN,
    });
    expect(list.status).toBe(200);
    expect(list.body.sessions.map((s) => s.id)).toEqual(expect.arrayContaining([a.id, c.id]));
  });

  it('revokes: transcript is hash-chained from session.opened to session.revoked, still readable', async () => {
    const s = (
      await call<SessionCreated>(b, 'POST', '/v1/sessions', {
        body: { oidc_token: await issuer.mint(mainClaims) },
      })
    ).body;
    expect(s.policy).toBe('main-write');
    const ended: string[] = [];
    const onEnded = (e: { id: string }) => ended.push(e.id);
    b.broker.sessions.events.on('ended', onEnded);
    const del = await call<SessionView>(b, 'DELETE', `/v1/sessions/${s.id}`, { token: s.secret });
    b.broker.sessions.events.off('ended', onEnded);
    expect(del.status).toBe(200);
    expect(del.body.state).toBe('revoked');
    expect(ended).toContain(s.id);
    // idempotent
    expect(
      (await call<SessionView>(b, 'DELETE', `/v1/sessions/${s.id}`, { token: s.secret })).body.state,
    ).toBe('revoked');
    const t = await call<Transcript>(b, 'GET', `/v1/sessions/${s.id}/transcript`, { token: s.secret });
    expect(t.status).toBe(200);
    expect(t.body.state).toBe('revoked');
    expect(t.body.chain_verified).toBe(true);
    expect(t.body.events.map((e) => e.kind)).toEqual(['session.opened', 'session.revoked']);
    expect(t.body.events[0]!.operation).toMatchObject({ policy: 'main-write', issuer: 'github' });
    expect(verifyChain(t.body.events)).toEqual({ ok: true, head: t.body.head_hash });
    // a gateway can no longer use it
    expect(await b.broker.sessions.getActive(s.id)).toBeNull();
  });

  it('expires: the session ends at its ttl with a session.expired event', async () => {
    const s = (
      await call<SessionCreated>(b, 'POST', '/v1/sessions', {
        body: { oidc_token: await issuer.mint(prClaims), ttl: '1s' },
      })
    ).body;
    expect(Date.parse(s.expires_at) - Date.now()).toBeLessThanOrEqual(1000);
    expect(await b.broker.sessions.getActive(s.id)).not.toBeNull();
    await new Promise((r) => setTimeout(r, 1400));
    expect(await b.broker.sessions.getActive(s.id)).toBeNull();
    const t = await call<Transcript>(b, 'GET', `/v1/sessions/${s.id}/transcript`, { token: s.secret });
    expect(t.body.state).toBe('expired');
    expect(t.body.events.map((e) => e.kind)).toEqual(['session.opened', 'session.expired']);
    expect(t.body.chain_verified).toBe(true);
  });

  it('refuses a replayed token and records the denial', async () => {
    const token = await issuer.mint(prClaims);
    expect((await call(b, 'POST', '/v1/sessions', { body: { oidc_token: token } })).status).toBe(201);
    const again = await call<ErrorBody>(b, 'POST', '/v1/sessions', { body: { oidc_token: token } });
    expect(again.status).toBe(401);
    expect(again.body.error).toBe('token already used');
    const denials = await call<{ denials: { kind: string }[] }>(b, 'GET', '/v1/denials', { token: ADMIN });
    expect(denials.body.denials.map((d) => d.kind)).toContain('token.replayed');
  });

  it('403 explains every failed condition of every policy, without target details', async () => {
    const token = await issuer.mint({
      repository_id: '999',
      event_name: 'push',
      ref: 'refs/heads/dev',
      ref_protected: 'false',
    });
    const res = await call<ErrorBody>(b, 'POST', '/v1/sessions', { body: { oidc_token: token } });
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('no policy matches this token');
    expect(res.body.reasons).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          policy: 'pr-read',
          claim: 'repository_id',
          expected: '123456',
          actual: '999',
        }),
        expect.objectContaining({
          policy: 'pr-read',
          claim: 'event_name',
          expected: 'pull_request',
          actual: 'push',
        }),
        expect.objectContaining({
          policy: 'main-write',
          claim: 'ref',
          expected: 'refs/heads/main',
          actual: 'refs/heads/dev',
        }),
        expect.objectContaining({ policy: 'main-write', claim: 'ref_protected', actual: 'false' }),
      ]),
    );
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(pg.password);
    expect(text).not.toContain(String(pg.port));
  });

  it('refuses requested targets outside the grants, naming them', async () => {
    const res = await call<ErrorBody>(b, 'POST', '/v1/sessions', {
      body: { oidc_token: await issuer.mint(prClaims), targets: ['orders-db', 'billing-db'] },
    });
    expect(res.status).toBe(403);
    expect(res.body.reasons.map((r) => r.message).join('\n')).toContain('billing-db');
    const ok = await call<SessionCreated>(b, 'POST', '/v1/sessions', {
      body: { oidc_token: await issuer.mint(mainClaims), targets: ['billing-db'] },
    });
    expect(ok.status).toBe(201);
    expect(ok.body.targets.map((t) => t.name)).toEqual(['billing-db']);
  });

  it('ttl is the smallest of requested, policy and maximum', async () => {
    const long = await call<SessionCreated>(b, 'POST', '/v1/sessions', {
      body: { oidc_token: await issuer.mint(prClaims), ttl: '10h' },
    });
    expect(Date.parse(long.body.expires_at) - Date.now()).toBeLessThanOrEqual(15 * 60_000);
    const short = await call<SessionCreated>(b, 'POST', '/v1/sessions', {
      body: { oidc_token: await issuer.mint(mainClaims), ttl: '5m' },
    });
    expect(Date.parse(short.body.expires_at) - Date.now()).toBeLessThanOrEqual(5 * 60_000);
    expect(Date.parse(short.body.expires_at) - Date.now()).toBeGreaterThan(4 * 60_000);
  });

  it('explain reports the match and opens nothing', async () => {
    const before = (
      await call<{ sessions: SessionView[] }>(b, 'GET', '/v1/sessions?limit=1000', { token: ADMIN })
    ).body.sessions.length;
    const res = await call<ExplainResult>(b, 'POST', '/v1/explain', {
      body: { oidc_token: await issuer.mint(mainClaims) },
    });
    expect(res.status).toBe(200);
    expect(res.body.matched_policy).toBe('main-write');
    const pr = res.body.policies.find((p) => p.name === 'pr-read')!;
    expect(pr.matched).toBe(false);
    expect(pr.failures.map((f) => f.claim)).toContain('event_name');
    const after = (
      await call<{ sessions: SessionView[] }>(b, 'GET', '/v1/sessions?limit=1000', { token: ADMIN })
    ).body.sessions.length;
    expect(after).toBe(before);
  });

  it('rejects malformed requests with a reason, and bad tokens with 401', async () => {
    const missing = await call<ErrorBody>(b, 'POST', '/v1/sessions', { body: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.reasons[0]!.message).toContain('oidc_token');
    const extra = await call<ErrorBody>(b, 'POST', '/v1/sessions', { body: { oidc_token: 'x', nope: 1 } });
    expect(extra.status).toBe(400);
    const badKey = await call<ErrorBody>(b, 'POST', '/v1/sessions', {
      body: { oidc_token: 'x', ssh_public_key: 'ssh-ed25519 AAAA\nssh-rsa AAAA injected' },
    });
    expect(badKey.status).toBe(400);
    expect(badKey.body.reasons[0]!.message).toContain('ssh_public_key');
    const garbage = await call<ErrorBody>(b, 'POST', '/v1/sessions', { body: { oidc_token: 'not.a.jwt' } });
    expect(garbage.status).toBe(401);
    expect(garbage.body.reasons.length).toBeGreaterThan(0);
    const notJson = await fetch(`${b.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"oidc_token":',
    });
    expect(notJson.status).toBe(400);
    const big = await fetch(`${b.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oidc_token: 'a'.repeat(300 * 1024) }),
    });
    expect(big.status).toBe(413);
    // still serving
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
  });

  it('serves health, readiness, metrics and the OpenAPI description', async () => {
    expect((await call(b, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call(b, 'GET', '/readyz')).body).toEqual({ status: 'ready', store: storeKind });
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toMatch(/hoop_sessions_opened_total\{policy="pr-read"\} \d+/);
    expect(metrics).toMatch(/hoop_sessions_denied_total\{reason="token.replayed"\} 1/);
    expect(metrics).toContain('hoop_sessions_active');
    expect(metrics).toContain('hoop_http_request_duration_seconds_bucket');
    const doc = (await call<{ openapi: string; paths: Record<string, unknown> }>(b, 'GET', '/docs/json'))
      .body;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/sessions',
        '/v1/explain',
        '/v1/sessions/{id}',
        '/v1/sessions/{id}/transcript',
      ]),
    );
  });

  it('never logs a secret or a token', () => {
    const all = logLines.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toMatch(/hoop_[A-Za-z0-9_-]{43}/);
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
    expect(all).not.toContain(ADMIN);
    expect(all).not.toContain(pg.password);
  });
});

describe('rate limit', () => {
  it('limits session requests per client address', async () => {
    const config = baseConfig(issuer, pg);
    config.limits = { session_rate_per_minute: 3 };
    const b = await startBroker({ config, env: { T_PG_PASSWORD: pg.password, T_ADMIN_TOKEN: ADMIN } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await call(b, 'POST', '/v1/explain', { body: { oidc_token: 'x.y.z' } })).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      for (let i = 0; i < 3; i++) await call(b, 'POST', '/v1/sessions', { body: { oidc_token: 'x.y.z' } });
      const limited = await call<ErrorBody>(b, 'POST', '/v1/sessions', { body: { oidc_token: 'x.y.z' } });
      expect(limited.status).toBe(429);
      expect(limited.body.reasons[0]!.message).toContain('at most 3 requests per minute');
      expect((await call(b, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await b.close();
    }
  });
});

describe('issuer unavailable', () => {
  it('answers 503 (not 401) when the issuer keys cannot be fetched, and records it', async () => {
    const b = await startBroker({
      config: baseConfig(issuer, pg),
      env: { T_PG_PASSWORD: pg.password, T_ADMIN_TOKEN: ADMIN },
    });
    try {
      issuer.failJwksWith(500);
      const res = await call<ErrorBody>(b, 'POST', '/v1/sessions', {
        body: { oidc_token: await issuer.mint(prClaims) },
      });
      expect(res.status).toBe(503);
      expect(res.body.reasons.length).toBeGreaterThan(0);
      const denials = await call<{ denials: { kind: string }[] }>(b, 'GET', '/v1/denials', { token: ADMIN });
      expect(denials.body.denials.map((d) => d.kind)).toContain('issuer.unavailable');
    } finally {
      issuer.failJwksWith(null);
      await b.close();
    }
  });
});
