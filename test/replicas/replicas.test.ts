// Three broker processes on one real PostgreSQL store: a revocation on one replica closes a live
// connection on another within a second (LISTEN/NOTIFY; p50/max over several trials), an expiry
// likewise, a missed notification is caught by the periodic sweep within its period (and a killed
// LISTEN connection reconnects and catches up), a signed workflow_job webhook on one replica closes
// the run's connections on the others, a replica killed
// mid-session leaves `pg.connection.lost` with the last recorded seq in the transcript, and replicas
// with different CAs refuse to start. (Limits across replicas: limits.test.ts; approvals:
// approvals.test.ts; SIGTERM: shutdown.test.ts.)
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrokerProcess, startBrokerProcess } from '../fixtures/broker-process.js';
import { freePort } from '../fixtures/postgres.js';
import { type ReplicaCluster, spread, startReplicaCluster, whenClosed } from '../fixtures/replica-cluster.js';

let cluster: ReplicaCluster;
let A: BrokerProcess;
let B: BrokerProcess;
let C: BrokerProcess;
const PR = { event_name: 'pull_request' };
const WH_SECRET = 'replicas-webhook-secret-5e4d3c';

beforeAll(async () => {
  cluster = await startReplicaCluster({
    name: 'replicas',
    audience: 'https://hoop.replicas.test',
    role: 'ci_reader',
    seed: 'CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 10);',
    env: { REPLICA_WH_SECRET: WH_SECRET },
    config: () => ({
      github_app: { webhook_secret: { env: 'REPLICA_WH_SECRET' } },
      policies: [
        {
          name: 'prs',
          when: { event_name: 'pull_request' },
          grants: [{ target: 'orders-db', access: 'read' }],
        },
      ],
    }),
  });
  // one at a time: the first migrates the store and records the CA
  A = await cluster.start('a');
  [B, C] = await Promise.all([cluster.start('b'), cluster.start('c')]);
}, 180_000);

afterAll(async () => {
  await cluster?.close();
});

describe('replicas on one PostgreSQL store', () => {
  it('a revocation on one replica closes a live connection on another within a second', async () => {
    const pairs: [BrokerProcess, BrokerProcess][] = [
      [A, B],
      [B, C],
      [C, A],
    ];
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) {
      const [on, at] = pairs[i % 3]!;
      const s = await cluster.openSession(on, PR);
      const c = await cluster.connect(at, s);
      expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0]).toEqual({ n: 10 });
      const closed = whenClosed(c);
      const t0 = performance.now();
      expect((await cluster.revoke(on, s.id)).status).toBe(200);
      await closed;
      waits.push(performance.now() - t0);
      await expect(c.query('SELECT 1')).rejects.toThrow();
      // the transcript ends with the revocation, written before the other replica closed its connection
      expect((await cluster.transcript(at, s.id)).events.at(-1)!.kind).toBe('session.revoked');
    }
    const { p50, max, n } = spread(waits);
    console.log(
      `cross-replica revocation, DELETE → connection closed: p50 ${p50} ms, max ${max} ms over ${n}`,
    );
    expect(max).toBeLessThan(1000);
  }, 90_000);

  it('an expiry closes live connections on every replica within a second of expires_at', async () => {
    // sessions opened on A with a 4 s ttl, each connected through B and C (which never saw them opened)
    const sessions = await Promise.all([0, 1, 2].map(() => cluster.openSession(A, PR, { ttl: '4s' })));
    const late: number[] = [];
    await Promise.all(
      sessions.flatMap((s) =>
        [B, C].map(async (at) => {
          const c = await cluster.connect(at, s);
          await c.query('SELECT 1');
          await whenClosed(c);
          late.push(Date.now() - Date.parse(s.expires_at));
        }),
      ),
    );
    const { p50, max, n } = spread(late);
    console.log(
      `cross-replica expiry, expires_at → connection closed: p50 ${p50} ms, max ${max} ms over ${n}`,
    );
    expect(Math.min(...late)).toBeGreaterThanOrEqual(-50); // not before its time (clock read to the ms)
    expect(max).toBeLessThan(1000);
    for (const s of sessions) {
      const t = await cluster.transcript(B, s.id);
      expect(t.events.at(-1)!.kind).toBe('session.expired');
      expect(t.chain_verified).toBe(true);
    }
  }, 60_000);

  it('a signed workflow_job completed webhook on one replica closes the run’s connections on the others', async () => {
    const ours = await cluster.openSession(A, { ...PR, run_id: '5550001', run_attempt: '1' });
    const other = await cluster.openSession(A, { ...PR, run_id: '5550002', run_attempt: '1' });
    const onB = await cluster.connect(B, ours);
    const onC = await cluster.connect(C, ours);
    const otherOnB = await cluster.connect(B, other);
    const body = JSON.stringify({
      action: 'completed',
      repository: { id: 123456, full_name: 'octo-org/octo-repo' },
      workflow_job: { id: 7, run_id: 5550001, run_attempt: 1, name: 'db', conclusion: 'success' },
    });
    const deliver = (sig: string) =>
      fetch(`${C.url}/v1/github/webhook`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'workflow_job',
          'x-github-delivery': crypto.randomUUID(),
          'x-hub-signature-256': sig,
        },
        body,
      });
    // a wrong signature revokes nothing
    expect(
      (await deliver(`sha256=${createHmac('sha256', 'not-the-secret').update(body).digest('hex')}`)).status,
    ).toBe(401);
    expect((await onB.query('SELECT 1 AS x')).rows[0]).toEqual({ x: 1 });
    const closed = Promise.all([whenClosed(onB), whenClosed(onC)]);
    const t0 = performance.now();
    const res = await deliver(`sha256=${createHmac('sha256', WH_SECRET).update(body).digest('hex')}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { revoked: string[] }).revoked).toEqual([ours.id]);
    await closed;
    const ms = performance.now() - t0;
    console.log(`workflow_job webhook on C → connections on B and C closed after ${Math.round(ms)} ms`);
    expect(ms).toBeLessThan(1000);
    // another run's session goes on
    expect((await otherOnB.query('SELECT 1 AS x')).rows[0]).toEqual({ x: 1 });
    await otherOnB.end();
  }, 30_000);

  it('a missed notification is caught by the periodic sweep within its period', async () => {
    // the session ended in the store with no NOTIFY at all (as if the notification were lost): only
    // the sweep (replicas.revocation_sweep, 1 s here) can tell B and C
    const waits: number[] = [];
    const before = (await sweeps(B)) + (await sweeps(C));
    for (let i = 0; i < 4; i++) {
      const s = await cluster.openSession(A, PR);
      const c = await cluster.connect(i % 2 ? C : B, s);
      await c.query('SELECT 1');
      // a random phase against the sweep's timer, so the figures are not locked to one point of it
      await new Promise((r) => setTimeout(r, 250 * i + Math.random() * 250));
      const closed = whenClosed(c);
      const t0 = performance.now();
      await cluster.db.psql(
        `UPDATE sessions SET ended_at = now(), end_reason = 'revoked' WHERE id = '${s.id}'`,
        'hoop_store',
      );
      await closed;
      waits.push(performance.now() - t0);
    }
    const { p50, max, n } = spread(waits);
    console.log(
      `missed notification → closed by the sweep (period 1 s): p50 ${p50} ms, max ${max} ms over ${n}`,
    );
    // one period, with a margin for a loaded machine
    expect(max).toBeLessThan(2500);
    // B and C each heard of all four by their sweep (none by notification: none was sent)
    const until = Date.now() + 3000;
    while ((await sweeps(B)) + (await sweeps(C)) - before < 8 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    console.log(
      `sweep announcements: B ${await sweeps(B)}, C ${await sweeps(C)} (before ${before}); notify B ${await notifies(B)} C ${await notifies(C)}`,
    );
    expect((await sweeps(B)) + (await sweeps(C)) - before).toBe(8);
  }, 60_000);

  it('LISTEN connections killed: a revocation still closes (reconnect after 1 s, then a catch-up sweep), and notifications flow again', async () => {
    const s = await cluster.openSession(A, PR);
    const onB = await cluster.connect(B, s);
    await onB.query('SELECT 1');
    const closed = whenClosed(onB);
    const killed = await cluster.db.psql(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'hoop-broker listen'",
    );
    expect(Number(killed.trim())).toBeGreaterThanOrEqual(3);
    const t0 = performance.now();
    expect((await cluster.revoke(A, s.id)).status).toBe(200);
    await closed;
    const total = performance.now() - t0;
    console.log(`revocation while LISTEN connections were killed: closed after ${Math.round(total)} ms`);
    expect(total).toBeLessThan(2500);
    // LISTEN is back within its 1 s retry: a revocation is again delivered by notification
    await new Promise((r) => setTimeout(r, 2000));
    const notified = await notifies(C);
    const s2 = await cluster.openSession(A, PR);
    const onC = await cluster.connect(C, s2);
    const closed2 = whenClosed(onC);
    const t1 = performance.now();
    expect((await cluster.revoke(A, s2.id)).status).toBe(200);
    await closed2;
    expect(performance.now() - t1).toBeLessThan(1000);
    expect((await notifies(C)) - notified).toBe(1);
  }, 60_000);

  it('a replica killed mid-session leaves pg.connection.lost with the last recorded seq', async () => {
    const s = await cluster.openSession(A, PR);
    const onC = await cluster.connect(C, s);
    await onC.query('SELECT count(*) FROM orders');
    await new Promise((r) => setTimeout(r, 300)); // the statement's event commits (50 ms window)
    const before = (await cluster.transcript(A, s.id)).events;
    const stmt = before.filter((e) => e.kind === 'pg.statement').at(-1)!;
    expect(stmt).toBeDefined();
    await C.kill('SIGKILL');
    const t0 = performance.now();
    const lost = await (async () => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const ev = (await cluster.transcript(A, s.id)).events.find((e) => e.kind === 'pg.connection.lost');
        if (ev) return ev;
        if (Date.now() > deadline) throw new Error('no pg.connection.lost within 15 s');
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    console.log(
      `kill -9 → pg.connection.lost in the transcript after ${Math.round(performance.now() - t0)} ms`,
    );
    expect(lost.operation).toMatchObject({ conn_id: stmt.operation.conn_id, last_seq: stmt.seq });
    // and the session goes on through the other replicas
    const onB = await cluster.connect(B, s);
    expect((await onB.query('SELECT 1 AS x')).rows[0]).toEqual({ x: 1 });
    await onB.end();
    // the transcript still verifies, gap marked
    expect((await cluster.transcript(A, s.id)).chain_verified).toBe(true);
  }, 40_000);

  it('a replica with its own CA refuses to start on a store whose replicas hand out another', async () => {
    const cfg = cluster.config('d', await freePort(), await freePort());
    delete (cfg as { tls?: unknown }).tls; // a generated CA of its own
    await expect(
      startBrokerProcess({ dir: cluster.dir, name: 'd', config: cfg, env: cluster.env() }),
    ).rejects.toThrow(/hand out CA .* give every replica the same certificate by reference/);
  }, 60_000);
});

/** hoop_remote_session_ends_total{via} on one replica */
async function remoteEnds(b: BrokerProcess, via: 'sweep' | 'notify'): Promise<number> {
  const m = await (await fetch(`${b.url}/metrics`)).text();
  return Number(new RegExp(`hoop_remote_session_ends_total\\{via="${via}"\\} (\\d+)`).exec(m)?.[1] ?? 0);
}
const sweeps = (b: BrokerProcess) => remoteEnds(b, 'sweep');
const notifies = (b: BrokerProcess) => remoteEnds(b, 'notify');
