// Limits that must hold across replicas are counted in the store, atomically: two broker processes on
// one real PostgreSQL store, many session requests at once on both, and the live sessions of a
// repository (sessions_per_repository) and of a policy (sessions_per_policy) never exceed their limits,
// counted in the store itself; session_rate_per_minute lets exactly its number through a minute window.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerProcess } from '../fixtures/broker-process.js';
import { type ReplicaCluster, startReplicaCluster } from '../fixtures/replica-cluster.js';

let cluster: ReplicaCluster;
let A: BrokerProcess;
let B: BrokerProcess;
let R: BrokerProcess;
let S: BrokerProcess;

const PER_REPO = 5;
const PER_POLICY = 8;
const RATE = 30;

beforeAll(async () => {
  cluster = await startReplicaCluster({
    name: 'replica-limits',
    audience: 'https://hoop.replica-limits.test',
    role: 'ci_reader',
    seed: 'CREATE TABLE orders (id int);',
    log: 'warn',
    config: () => ({
      policies: [
        {
          name: 'prs',
          when: { event_name: 'pull_request' },
          grants: [{ target: 'orders-db', access: 'read' }],
        },
        { name: 'pushes', when: { event_name: 'push' }, grants: [{ target: 'orders-db', access: 'read' }] },
      ],
      limits: {
        session_rate_per_minute: 10_000,
        sessions_per_repository: PER_REPO,
        sessions_per_policy: PER_POLICY,
      },
    }),
  });
  A = await cluster.start('a');
  B = await cluster.start('b');
  // a second pair with a low rate limit, for the rate test alone
  R = await cluster.start('r', { limits: { session_rate_per_minute: RATE } });
  S = await cluster.start('s', { limits: { session_rate_per_minute: RATE } });
}, 240_000);

afterAll(async () => {
  await cluster?.close();
});

const liveInStore = async (column: 'repository' | 'policy', value: string) =>
  Number(
    (
      await cluster.db.psql(
        column === 'repository'
          ? `SELECT count(*) FROM sessions WHERE ended_at IS NULL AND expires_at > now() AND identity->>'repository' = '${value}'`
          : `SELECT count(*) FROM sessions WHERE ended_at IS NULL AND expires_at > now() AND policy = '${value}'`,
        'hoop_store',
      )
    ).trim(),
  );

describe('limits across replicas, counted atomically in the store', () => {
  it('session_rate_per_minute lets exactly its number through, requests racing on two replicas', async () => {
    // requests that fail verification still count against the rate (it guards the route)
    const post = (b: BrokerProcess) =>
      fetch(`${b.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ oidc_token: 'x'.repeat(600) }),
      }).then((r) => r.status);
    // first in this file, in a fresh minute window: every replica on the store shares the route's
    // counter (the key is route and client address), so no other request may be in this window
    const toNextMinute = 60_000 - (Date.now() % 60_000);
    if (toNextMinute < 15_000) await new Promise((r) => setTimeout(r, toNextMinute + 100));
    const statuses = await Promise.all(Array.from({ length: 2 * RATE }, (_, i) => post([R, S][i % 2]!)));
    const limited = statuses.filter((s) => s === 429).length;
    console.log(
      `concurrent rate: ${statuses.length - limited} through, ${limited} refused 429 (limit ${RATE}/min)`,
    );
    expect(statuses.length - limited).toBe(RATE);
  }, 120_000);
  it('sessions_per_repository and sessions_per_policy hold under concurrent requests on two replicas', async () => {
    // 2 × 20 requests at once, alternating replicas: two repositories under one policy
    const requests = Array.from({ length: 40 }, (_, i) =>
      cluster.requestSession([A, B][i % 2]!, {
        event_name: 'pull_request',
        repository: i < 20 ? 'octo-org/one' : 'octo-org/two',
      }),
    );
    const results = await Promise.all(requests);
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 201 || s === 429)).toBe(true);
    const one = results.slice(0, 20).filter((r) => r.status === 201).length;
    const two = results.slice(20).filter((r) => r.status === 201).length;
    console.log(
      `concurrent opens: octo-org/one ${one}/20, octo-org/two ${two}/20 (limits ${PER_REPO}/repo, ${PER_POLICY}/policy)`,
    );
    expect(one).toBeLessThanOrEqual(PER_REPO);
    expect(two).toBeLessThanOrEqual(PER_REPO);
    // the policy limit is reached exactly: neither overshoot nor a refusal below it
    expect(one + two).toBe(PER_POLICY);
    expect(await liveInStore('repository', 'octo-org/one')).toBe(one);
    expect(await liveInStore('repository', 'octo-org/two')).toBe(two);
    expect(await liveInStore('policy', 'prs')).toBe(PER_POLICY);
    // another policy is counted apart; the repository limit still holds for it
    const pushes = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        cluster.requestSession([A, B][i % 2]!, { event_name: 'push', repository: 'octo-org/three' }),
      ),
    );
    expect(pushes.filter((r) => r.status === 201).length).toBe(PER_REPO);
    expect(await liveInStore('repository', 'octo-org/three')).toBe(PER_REPO);
    // a revoked session frees its place
    const open = results.find((r) => r.session && r.status === 201)!.session!;
    expect((await cluster.revoke(B, open.id)).status).toBe(200);
    const again = await cluster.requestSession(A, {
      event_name: 'pull_request',
      repository:
        results.indexOf(results.find((r) => r.session?.id === open.id)!) < 20
          ? 'octo-org/one'
          : 'octo-org/two',
    });
    expect(again.status).toBe(201);
    // the refusals are counted on both replicas
    for (const b of [A, B]) {
      const m = await (await fetch(`${b.url}/metrics`)).text();
      expect(m).toMatch(/hoop_limit_refusals_total\{limit="sessions_per_policy"\} [1-9]/);
    }
  }, 120_000);
});
