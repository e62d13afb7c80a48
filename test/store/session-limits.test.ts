// Store.openSession with limits, on both stores: the count of live sessions and the insert are one
// transaction under advisory locks, so openings racing at the limit never pass it — on the embedded
// store, on one PostgreSQL store, and on two PostgreSQL stores (replicas) over one database. Ended and
// expired sessions do not count; a replayed token is still refused as a replay below the limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../../service/store/embedded.js';
import { openPostgresStore } from '../../service/store/postgres.js';
import type { SessionLimits, Store } from '../../service/store/store.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';
import { makeSession, openedEvent, tokenFor } from './store-suite.js';

let server: PgServer;
beforeAll(async () => {
  server = await startPostgres();
  await server.psql('CREATE DATABASE limits_store');
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

const limits = (
  repository: string,
  per_repository: number,
  per_policy: number | null = null,
): SessionLimits => ({
  repository,
  per_repository,
  policy: 'main-write',
  per_policy,
});

async function race(stores: Store[], n: number, repository: string, l: SessionLimits) {
  return Promise.all(
    Array.from({ length: n }, (_, i) => {
      const s = makeSession({ identity: { repository, repository_id: '1', run_id: String(i) } });
      return stores[i % stores.length]!.openSession(s, openedEvent(s), tokenFor(), l);
    }),
  );
}

describe.each(['embedded', 'postgres', 'postgres, two replicas'] as const)(
  'openSession limits: %s',
  (kind) => {
    let stores: Store[] = [];
    beforeAll(async () => {
      if (kind === 'embedded') stores = [await openEmbeddedStore(null)];
      else {
        const url = server.url('limits_store');
        stores = [await openPostgresStore(url, { poolSize: 8 })];
        await stores[0]!.migrate();
        if (kind !== 'postgres') stores.push(await openPostgresStore(url, { poolSize: 8 }));
      }
      await stores[0]!.migrate();
    }, 60_000);
    afterAll(async () => {
      for (const s of stores) await s.close();
    });

    it('racing openings never pass sessions_per_repository; ended and expired ones do not count', async () => {
      const repo = `octo/${kind.replace(/\W/g, '-')}`;
      const results = await race(stores, 24, repo, limits(repo, 3));
      expect(results.filter((r) => r.ok)).toHaveLength(3);
      expect(results.filter((r) => !r.ok && r.reason === 'limit')).toHaveLength(21);
      expect(results.find((r) => !r.ok)).toMatchObject({ limit: 'sessions_per_repository', live: 3 });
      // end one: one place frees
      const opened = results.find((r) => r.ok)!;
      if (!opened.ok) throw new Error('unreachable');
      const id = opened.opened.session_id;
      await stores[0]!.endSession(id, new Date(), 'revoked', {
        target: null,
        kind: 'session.revoked',
        operation: {},
        decision: 'info',
        reasons: [],
      });
      expect((await race(stores, 6, repo, limits(repo, 3))).filter((r) => r.ok)).toHaveLength(1);
      // an expired session does not count
      const other = `${repo}-expired`;
      const old = makeSession({
        identity: { repository: other, repository_id: '1' },
        created_at: new Date(Date.now() - 120_000),
        expires_at: new Date(Date.now() - 60_000),
      });
      expect((await stores[0]!.openSession(old, openedEvent(old), tokenFor())).ok).toBe(true);
      expect((await race(stores, 4, other, limits(other, 1))).filter((r) => r.ok)).toHaveLength(1);
    });

    it('sessions_per_policy across repositories; a replay below the limit is a replay', async () => {
      const policyLimited = async (n: number) => {
        const all = await Promise.all(
          Array.from({ length: n }, (_, i) => {
            const repo = `octo/p-${kind.replace(/\W/g, '-')}-${i}`;
            const s = makeSession({
              policy: `p-${kind}`,
              identity: { repository: repo, repository_id: '1' },
            });
            return stores[i % stores.length]!.openSession(s, openedEvent(s), tokenFor(), {
              repository: repo,
              per_repository: 100,
              policy: `p-${kind}`,
              per_policy: 5,
            });
          }),
        );
        return all;
      };
      const r = await policyLimited(16);
      expect(r.filter((x) => x.ok)).toHaveLength(5);
      expect(r.find((x) => !x.ok)).toMatchObject({ reason: 'limit', limit: 'sessions_per_policy', live: 5 });
      const token = tokenFor();
      const a = makeSession({ identity: { repository: 'octo/replay', repository_id: '1' } });
      const b = makeSession({ identity: { repository: 'octo/replay', repository_id: '1' } });
      expect((await stores[0]!.openSession(a, openedEvent(a), token, limits('octo/replay', 5))).ok).toBe(
        true,
      );
      expect(await stores.at(-1)!.openSession(b, openedEvent(b), token, limits('octo/replay', 5))).toEqual({
        ok: false,
        reason: 'replay',
      });
    });
  },
);
