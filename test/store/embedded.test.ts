import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, describe, expect, it } from 'vitest';
import { openEmbeddedStore, storeOnPGlite } from '../../service/store/embedded.js';
import { chainEvent, verifyChain } from '../../service/audit/event.js';
import { checkMigrationList, MIGRATIONS } from '../../service/store/migrations.js';
import { makeSession, openedEvent, registerStoreSuite, statementEvent, tokenFor } from './store-suite.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-store-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

registerStoreSuite('embedded store, in memory', async () => {
  const db = await PGlite.create();
  const store = storeOnPGlite(db);
  return {
    store,
    query: async <Row>(text: string, params: unknown[] = []) => (await db.query<Row>(text, params)).rows,
    close: () => store.close(),
  };
});

registerStoreSuite('embedded store, on disk', async () => {
  const dir = tempDir();
  let store = await openEmbeddedStore(dir);
  return {
    get store() {
      return store;
    },
    // The store holds the directory: close it, edit the files with a plain PGlite, reopen (which also
    // checks that everything written so far survives a restart).
    query: async <Row>(text: string, params: unknown[] = []) => {
      await store.close();
      const db = await PGlite.create({ dataDir: join(dir, 'store') });
      try {
        return (await db.query<Row>(text, params)).rows;
      } finally {
        await db.close();
        store = await openEmbeddedStore(dir);
      }
    },
    close: () => store.close(),
  };
});

describe('migration list', () => {
  it('is numbered 1..n with names and SQL', () => {
    expect(() => checkMigrationList(MIGRATIONS)).not.toThrow();
    expect(() => checkMigrationList([{ version: 2, name: 'x', sql: 'SELECT 1' }])).toThrow(/expected 1/);
  });
});

describe('migration 2 (events stored in chunks)', () => {
  it('moves every version-1 event row into a chunk, byte for byte, and the chains still verify', async () => {
    const db = await PGlite.create();
    await db.exec(MIGRATIONS[0]!.sql);
    await db.exec(`CREATE TABLE schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    await db.query('INSERT INTO schema_migrations (version, name) VALUES (1, $1)', [MIGRATIONS[0]!.name]);
    const sessions = [makeSession(), makeSession()];
    const chains = new Map<string, ReturnType<typeof chainEvent>[]>();
    for (const [n, s] of sessions.entries()) {
      const chain: ReturnType<typeof chainEvent>[] = [];
      for (let i = 0; i < 3 + n; i++) {
        // an awkward body: NUL, a lone surrogate, quotes; json keeps the text verbatim
        const ev = statementEvent(`select '\u0000 \ud800 "q"' -- ${i}`);
        chain.push(chainEvent(chain.at(-1) ?? null, s.id, ev, new Date(s.created_at.getTime() + i)));
      }
      chains.set(s.id, chain);
      await db.query(
        `INSERT INTO sessions (id, secret_hash, scram_verifier, issuer, identity, claims, policy, grants,
           created_at, expires_at, head_seq, head_hash)
         VALUES ($1, 'h', 'v', 'github', '{}', '{}', 'p', '[]', $2, $3, $4, $5)`,
        [s.id, s.created_at, s.expires_at, chain.length, chain.at(-1)!.hash],
      );
      for (const e of chain) {
        await db.query(
          `INSERT INTO events (session_id, seq, at, kind, target, body, hash, prev_hash)
           VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8)`,
          [s.id, e.seq, e.at, e.kind, e.target, JSON.stringify(e), e.hash, e.prev_hash],
        );
      }
    }
    const store = storeOnPGlite(db);
    try {
      expect(await store.migrateWithResult()).toEqual({ applied: [2, 3], version: 3 });
      for (const s of sessions) {
        const events = await store.listEvents(s.id);
        expect(events).toEqual(chains.get(s.id));
        expect(verifyChain(events).ok).toBe(true);
        // appends continue the migrated chain, in compact chunks after the moved (whole-event) ones
        await store.appendEvents(s.id, [statementEvent('select after migration')]);
        const after = await store.listEvents(s.id);
        expect(after.slice(0, -1)).toEqual(chains.get(s.id));
        expect(verifyChain(after).ok).toBe(true);
        const kinds = await db.query<{ compact: boolean }>(
          'SELECT prev_hash IS NOT NULL AS compact FROM event_chunks WHERE session_id = $1 ORDER BY first_seq',
          [s.id],
        );
        expect(kinds.rows.map((r) => r.compact)).toEqual([...chains.get(s.id)!.map(() => false), true]);
      }
      const old = await db.query("SELECT to_regclass('events') AS t");
      expect(old.rows).toEqual([{ t: null }]);
    } finally {
      await store.close();
    }
  });
});

describe('transcript appends on the raw protocol (rowless statements)', () => {
  it('report a failing append as a DatabaseError with its SQLSTATE, roll it back, and keep the store usable', async () => {
    const db = await PGlite.create();
    const store = storeOnPGlite(db);
    try {
      await store.migrate();
      const [a, b] = [makeSession(), makeSession()];
      for (const s of [a, b]) {
        const opened = await store.openSession(s, openedEvent(s), tokenFor());
        expect(opened.ok).toBe(true);
      }
      // warm: the compare-and-set statement is prepared on the connection
      await store.appendEventBatches([{ sessionId: a.id, events: [statementEvent('select 1')] }]);
      await db.exec(`ALTER TABLE event_chunks ADD CONSTRAINT no_poison CHECK (events NOT LIKE '%poison%')`);

      // one session: the compare-and-set statement fails (not a compare miss)
      const one = store.appendEventBatches([{ sessionId: a.id, events: [statementEvent('select poison')] }]);
      await expect(one).rejects.toMatchObject({ name: 'DatabaseError', code: '23514' });
      await expect(one).rejects.toThrow(/no_poison/);
      // several sessions: one transaction, rolled back whole (b's clean event is not kept either)
      const both = store.appendEventBatches([
        { sessionId: a.id, events: [statementEvent('select 2')] },
        { sessionId: b.id, events: [statementEvent('select poison')] },
      ]);
      await expect(both).rejects.toMatchObject({ code: '23514' });
      // the locking path (a session whose head is not remembered) fails the same way
      await expect(store.appendEvents(b.id, [statementEvent('select poison')])).rejects.toMatchObject({
        code: '23514',
      });

      await db.exec('ALTER TABLE event_chunks DROP CONSTRAINT no_poison');
      const [ra, rb] = await store.appendEventBatches([
        { sessionId: a.id, events: [statementEvent('select 3'), statementEvent('select 4')] },
        { sessionId: b.id, events: [statementEvent('select 5')] },
      ]);
      expect(ra).toMatchObject({ ok: true, first_seq: 3 });
      expect(rb).toMatchObject({ ok: true, first_seq: 2 });
      const eventsA = await store.listEvents(a.id);
      expect(eventsA.map((e) => (e.operation as { sql?: string }).sql ?? null)).toEqual([
        null,
        'select 1',
        'select 3',
        'select 4',
      ]);
      expect(verifyChain(eventsA).ok).toBe(true);
      expect(verifyChain(await store.listEvents(b.id)).ok).toBe(true);
      // nothing of the failed appends was written
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM event_chunks WHERE events LIKE '%poison%'",
      );
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await store.close();
    }
  });
});
