// Broker-wide limits through the real broker (issue 12): live sessions per repository (20 tokens held
// 196 upstream backends before) and upstream connections per target across sessions, each refusal
// clear to the client and counted in /metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionCreated } from '../../service/api/schemas.js';
import type { Config } from '../../service/config/schema.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { githubIssuer, loopbackListen, pgTarget } from '../fixtures/config.js';
import { requestSession } from '../fixtures/sessions.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { fields, msg, openWire, type Wire, WireRefused } from '../fixtures/pg-wire.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';

const AUD = 'https://hoop.test';
let issuer: OidcIssuer;
let pg: PgServer;
let b: TestBroker;

beforeAll(async () => {
  [issuer, pg] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
  const config: Config = {
    listen: loopbackListen(),
    issuers: githubIssuer(issuer, AUD),
    targets: [
      pgTarget({
        name: 'db',
        port: pg.port,
        database: 'postgres',
        user: 'postgres',
        passwordEnv: 'T_PG_PASSWORD',
      }),
    ],
    policies: [
      { name: 'any', when: { repository_id: '123456' }, grants: [{ target: 'db', access: 'read' }] },
    ],
    limits: { session_rate_per_minute: 1000, sessions_per_repository: 2, upstream_connections_per_target: 2 },
  };
  b = await startBroker({ config, env: { T_PG_PASSWORD: pg.password } });
});
afterAll(async () => {
  await b?.close();
  await issuer?.close();
  await pg?.stop();
});

async function open(repository: string) {
  return requestSession(b.url, issuer, { repository_id: '123456', repository });
}

async function metric(name: string): Promise<string> {
  const text = await (await fetch(`${b.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

describe('broker-wide limits', () => {
  let sessions: SessionCreated[] = [];

  it('refuses a repository its third live session with 429 and the reason; other repositories go on', async () => {
    const a = await open('octo/one');
    const c = await open('octo/one');
    expect([a.status, c.status]).toEqual([201, 201]);
    sessions = [a.body, c.body];
    const third = await open('octo/one');
    expect(third.status).toBe(429);
    expect(third.body.reasons?.[0]?.message).toMatch(
      /repository octo\/one already holds 2 live sessions \(limits\.sessions_per_repository is 2\)/,
    );
    expect((await open('octo/two')).status).toBe(201);
    expect(await metric('hoop_limit_refusals_total')).toMatch(/limit="sessions_per_repository"} 1/);
  });

  it('counts sessions_per_repository atomically: of 12 requests at once, exactly 2 open (embedded store)', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, () => open('octo/racing')));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(2);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(10);
    const live = await b.broker.store.listSessions({ active_at: new Date(), limit: 1000 });
    expect(live.filter((x) => x.identity.repository === 'octo/racing')).toHaveLength(2);
  });

  it('caps upstream connections per target across sessions; the refusal names the limit', async () => {
    const [s1, s2] = sessions;
    const wires: Wire[] = [];
    const connect = (s: SessionCreated) =>
      openWire({ port: b.pgPort, user: s.id, password: s.secret, database: 'db' });
    wires.push(await connect(s1!), await connect(s2!));
    const refused = await connect(s1!).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WireRefused);
    expect((refused as WireRefused).sqlstate).toBe('53300');
    expect((refused as WireRefused).message).toMatch(/limits\.upstream_connections_per_target/);
    // the database saw two relayed backends and the broker's catalog connection, not a fourth
    // (psql names itself, so is not counted)
    const backends = await pg.psql(
      "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name = ''",
    );
    expect(Number(backends.trim())).toBeLessThanOrEqual(3);
    wires[0]!.close();
    await new Promise((r) => setTimeout(r, 200));
    const again = await connect(s1!);
    again.send(msg.query('SELECT 1'));
    const r = await again.readyAfter(1);
    expect(r.frames.some((f) => f.type === 'E' && fields(f).C !== undefined)).toBe(false);
    again.close();
    wires[1]!.close();
    expect(await metric('hoop_limit_refusals_total')).toMatch(/limit="upstream_connections_per_target"} 1/);
  });
});
