import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
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
      expect(await store.migrateWithResult()).toEqual({
        applied: MIGRATIONS.slice(1).map((m) => m.version),
        version: MIGRATIONS.length,
      });
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

describe('transcript files (the embedded store on disk)', () => {
  async function withRows<Row>(dir: string, text: string): Promise<Row[]> {
    const db = await PGlite.create({ dataDir: join(dir, 'store') });
    try {
      return (await db.query<Row>(text)).rows;
    } finally {
      await db.close();
    }
  }
  const segment = (dir: string) => join(dir, 'transcripts', '000001.jsonl');
  /** an on-disk store in `dir`, migrated, with one open session */
  async function storeWithSession(dir: string) {
    const store = await openEmbeddedStore(dir);
    const s = makeSession();
    await store.migrate();
    await store.openSession(s, openedEvent(s), tokenFor());
    return { store, s };
  }

  it("writes the recorder's chunk bodies to a file, one self-describing JSON line each, rows pointing at them", async () => {
    const dir = tempDir();
    let store = await openEmbeddedStore(dir);
    const [a, b] = [makeSession(), makeSession()];
    try {
      await store.migrate();
      for (const s of [a, b]) expect((await store.openSession(s, openedEvent(s), tokenFor())).ok).toBe(true);
      // several sessions: one transaction, compare-and-set on the heads remembered from openSession
      const first = await store.appendEventBatches([
        { sessionId: a.id, events: [statementEvent('select 1'), statementEvent('select "ünï" \u0000')] },
        { sessionId: b.id, events: [statementEvent('select 2')] },
      ]);
      expect(first.map((r) => r.ok && r.first_seq)).toEqual([2, 2]);
      // one session, compare-and-set on the remembered head
      await store.appendEventBatches([{ sessionId: a.id, events: [statementEvent('select 3')] }]);
      const before = { a: await store.listEvents(a.id), b: await store.listEvents(b.id) };
      expect(before.a.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      expect(verifyChain(before.a).ok && verifyChain(before.b).ok).toBe(true);
      await store.close();

      const lines = readFileSync(segment(dir), 'utf8').split('\n');
      expect(lines.at(-1)).toBe('');
      const bodies = lines.slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(bodies.map((l) => [l.session_id, l.first_seq, l.prev_hash])).toEqual(
        expect.arrayContaining([
          [a.id, 2, before.a[1]!.prev_hash],
          [b.id, 2, before.b[1]!.prev_hash],
          [a.id, 4, before.a[3]!.prev_hash],
        ]),
      );
      expect(bodies).toHaveLength(3);
      // each event without what the row gives
      expect((bodies[0]!.events as Record<string, unknown>[])[0]).not.toHaveProperty('seq');
      const rows = await withRows<{ first_seq: number; inline: boolean; body_segment: number | null }>(
        dir,
        `SELECT first_seq, events IS NOT NULL AS inline, body_segment FROM event_chunks
         ORDER BY session_id, first_seq`,
      );
      // the opening events stay in their rows; the recorder's chunks are in the file
      expect(rows.filter((r) => r.inline).map((r) => r.first_seq)).toEqual([1, 1]);
      expect(rows.filter((r) => !r.inline).every((r) => r.body_segment === 1)).toBe(true);

      store = await openEmbeddedStore(dir);
      expect(await store.listEvents(a.id)).toEqual(before.a);
      expect(await store.listEvents(b.id, { after_seq: 1 })).toEqual(before.b.slice(1));
      // a fresh store remembers no head: the locking path, which writes its own body
      await store.appendEventBatches([{ sessionId: b.id, events: [statementEvent('select 4')] }]);
      expect(verifyChain(await store.listEvents(b.id)).ok).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('skips bytes no row refers to: after a torn tail the next append starts on a line of its own', async () => {
    const dir = tempDir();
    const opened = await storeWithSession(dir);
    const s = opened.s;
    let store = opened.store;
    try {
      await store.appendEventBatches([{ sessionId: s.id, events: [statementEvent('select 1')] }]);
      await store.close();
      // a crash mid-write: half a line, never committed
      appendFileSync(segment(dir), '{"session_id":"ses_torn","first_seq":9,"ev');
      store = await openEmbeddedStore(dir);
      await store.appendEventBatches([{ sessionId: s.id, events: [statementEvent('select 2')] }]);
      const events = await store.listEvents(s.id);
      expect(events.map((e) => (e.operation as { sql: string }).sql ?? null)).toEqual([
        null,
        'select 1',
        'select 2',
      ]);
      expect(verifyChain(events).ok).toBe(true);
      const lines = readFileSync(segment(dir), 'utf8').split('\n');
      expect(lines).toHaveLength(4);
      expect(lines[1]).toMatch(/^\{"session_id":"ses_torn"/);
      expect(JSON.parse(lines[2]!)).toMatchObject({ session_id: s.id, first_seq: 3 });
    } finally {
      await store.close();
    }
  });

  it('reports a body changed or cut in the file: verifyChain names the event, a short file its place', async () => {
    const dir = tempDir();
    const opened = await storeWithSession(dir);
    const s = opened.s;
    let store = opened.store;
    try {
      await store.appendEventBatches([
        { sessionId: s.id, events: [statementEvent('select 1'), statementEvent('select 2')] },
      ]);
      await store.close();
      // same length, so every offset still holds
      writeFileSync(segment(dir), readFileSync(segment(dir), 'utf8').replace('select 2', 'select 9'));
      store = await openEmbeddedStore(dir);
      const tampered = await store.listEvents(s.id);
      expect(tampered[2]!.operation).toEqual({ sql: 'select 9' });
      expect(verifyChain(tampered)).toMatchObject({
        ok: false,
        seq: 3,
        problem: 'hash does not match the event content',
      });
      await store.close();

      truncateSync(segment(dir), 20);
      store = await openEmbeddedStore(dir);
      await expect(store.listEvents(s.id)).rejects.toThrow(
        new RegExp(`transcript of ${s.id}: the chunk at seq 2 \\(000001\\.jsonl at byte 0\\) is cut short`),
      );
    } finally {
      await store.close();
    }
  });
});
