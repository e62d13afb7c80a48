// Per-session upstream roles (target session_roles; issue 12): each session runs as a role of its own,
// member of the configured role, so other jobs' statement text is PostgreSQL's "<insufficient
// privilege>", the database names the job, and the role dies with the session - also after a crash.
// Against the real server: what pg_stat_activity and pg_roles say.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayHarness,
  startGatewayHarness,
  TARGET,
  TARGET_USER,
  type TestSession,
} from '../../fixtures/pg-gateway-harness.js';
import { cells, msg, openWire, type Wire } from '../../fixtures/pg-wire.js';

let h: GatewayHarness;

beforeAll(async () => {
  h = await startGatewayHarness({
    sessionRoles: { member_of: 'app_reader' },
    setupSql: `
      ALTER ROLE ${TARGET_USER} CREATEROLE;
      CREATE ROLE app_reader NOLOGIN;
      GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO app_reader;
      GRANT CREATE ON SCHEMA public TO app_reader;`,
  });
});
afterAll(async () => {
  await h?.close();
});

function viaBroker(s: TestSession): Promise<Wire> {
  return openWire({ port: h.port, user: s.id, password: s.secret, database: TARGET, tls: true });
}

async function one(w: Wire, sql: string): Promise<(string | null)[][]> {
  w.send(msg.query(sql));
  const r = await w.readyAfter(1);
  return r.frames.filter((f) => f.type === 'D').map((f) => cells(f));
}

const roleOf = (s: TestSession) => `hoop_${s.id}`;
const roleExists = async (s: TestSession) =>
  (await h.adminSql(`SELECT count(*) FROM pg_roles WHERE rolname = '${roleOf(s)}'`)).trim() === '1';

describe('per-session upstream roles', () => {
  it("runs each session as its own role acting as member_of; other sessions' statement text is hidden", async () => {
    const a = h.createSession({ access: 'write' });
    const b = h.createSession({ access: 'read' });
    const wa = await viaBroker(a);
    const wb = await viaBroker(b);
    expect(await one(wa, 'SELECT session_user, current_user')).toEqual([[roleOf(a), 'app_reader']]);
    const needle = `needle-${Math.random().toString(36).slice(2)}`;
    await one(wa, `SELECT count(*) FROM customers WHERE name = '${needle}'`);
    const seen = await one(wb, `SELECT usename, query FROM pg_stat_activity WHERE usename = '${roleOf(a)}'`);
    expect(seen).toEqual([[roleOf(a), '<insufficient privilege>']]);
    // the database's own view names the job's session
    const db = await h.adminSql(`SELECT usename, query FROM pg_stat_activity WHERE usename = '${roleOf(a)}'`);
    expect(db).toContain(needle);
    // objects a session creates belong to member_of, so the role can be dropped
    await one(wa, 'CREATE TABLE made_by_session (x int)');
    expect(
      (await h.adminSql(`SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_session'`)).trim(),
    ).toBe('app_reader');
    // the role's own limits: valid until the session's expiry
    const until = await h.adminSql(
      `SELECT rolvaliduntil IS NOT NULL, rolconnlimit FROM pg_roles WHERE rolname = '${roleOf(a)}'`,
    );
    expect(until.trim()).toBe('t|10');
    wa.close();
    wb.close();
  });

  it('revocation ends the role: its backends terminated, the role dropped', async () => {
    const s = h.createSession({ access: 'read' });
    const w = await viaBroker(s);
    await one(w, 'SELECT 1');
    expect(await roleExists(s)).toBe(true);
    h.revoke(s.id);
    const r = await w.read(() => false, 3000);
    expect(r.closed).toBe(true);
    const deadline = Date.now() + 3000;
    while ((await roleExists(s)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await roleExists(s)).toBe(false);
    expect(
      (await h.adminSql(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${roleOf(s)}'`)).trim(),
    ).toBe('0');
  });

  it('after a crash, the next start drops the roles of sessions that ended meanwhile, and keeps live ones', async () => {
    const ended = h.createSession({ access: 'read' });
    const live = h.createSession({ access: 'read' });
    for (const s of [ended, live]) {
      const w = await viaBroker(s);
      await one(w, 'SELECT 1');
      w.close();
    }
    expect(await roleExists(ended)).toBe(true);
    // the session ends while no broker is there to hear of it (no event reaches a gateway)
    ended.record.ended_at = new Date();
    ended.record.end_reason = 'revoked';
    const next = await h.startGateway({});
    const deadline = Date.now() + 5000;
    while ((await roleExists(ended)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await roleExists(ended)).toBe(false);
    expect(await roleExists(live)).toBe(true);
    // and the live session still connects through the new gateway, as its role
    const w = await openWire({
      port: next.port,
      user: live.id,
      password: live.secret,
      database: TARGET,
      tls: true,
    });
    expect(await one(w, 'SELECT session_user')).toEqual([[roleOf(live)]]);
    w.close();
  });
});
