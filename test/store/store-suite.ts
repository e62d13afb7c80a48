// One behaviour suite for every Store implementation: each backend's test file calls registerStoreSuite
// with a harness that opens its store (and gives raw SQL access to the database behind it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_HASH, type NewEvent, type TranscriptEvent, verifyChain } from '../../service/audit/event.js';
import {
  hashSecret,
  makeScramVerifier,
  newSessionId,
  newSessionSecret,
} from '../../service/sessions/secret.js';
import type { SessionRecord } from '../../service/sessions/types.js';
import { SessionEndedError, StoreClosedError, UnknownSessionError } from '../../service/store/errors.js';
import { MIGRATIONS } from '../../service/store/migrations.js';
import type { SqlStore } from '../../service/store/sql-store.js';
import { EXPORT_START, type ExportPosition, type TokenUse } from '../../service/store/store.js';

export interface StoreHarness {
  /** the store under test; may be a new object after query() (on-disk embedded reopens) */
  readonly store: SqlStore;
  /** SQL straight to the database behind the store, bypassing it (to inspect or tamper with rows) */
  query<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<Row[]>;
  /** a second, independent store on the same database: another broker replica (PostgreSQL only) */
  openReplica?(): Promise<SqlStore>;
  close(): Promise<void>;
}

const MINUTE = 60_000;

export function makeSession(overrides: Partial<SessionRecord> = {}): SessionRecord {
  const created = overrides.created_at ?? new Date();
  return {
    id: newSessionId(),
    secret_hash: hashSecret(newSessionSecret()),
    scram_verifier: makeScramVerifier(newSessionSecret(), 16),
    issuer: 'github',
    identity: { repository: 'octo/app', repository_id: '123456', run_id: '42', actor: 'mona' },
    claims: { iss: 'https://token.actions.githubusercontent.com', sub: 'repo:octo/app:ref:refs/heads/main' },
    policy: 'main-write',
    grants: [{ target: 'orders-db', access: 'write' }],
    ssh_public_key: null,
    created_at: created,
    expires_at: new Date(created.getTime() + 15 * MINUTE),
    ended_at: null,
    end_reason: null,
    ...overrides,
  };
}

export function openedEvent(s: SessionRecord): NewEvent {
  return {
    target: null,
    kind: 'session.opened',
    operation: {
      identity: s.identity,
      policy: s.policy,
      grants: s.grants,
      expires_at: s.expires_at.toISOString(),
    },
    decision: 'info',
    reasons: [],
  };
}

let tokenCounter = 0;
export function tokenFor(expiresInMs = 5 * MINUTE): TokenUse {
  tokenCounter++;
  return {
    key: `https://issuer.test|jti-${process.pid}-${tokenCounter}-${Math.random()}`,
    expires_at: new Date(Date.now() + expiresInMs),
  };
}

export function statementEvent(sql: string, extra: Partial<NewEvent> = {}): NewEvent {
  return {
    target: 'orders-db',
    kind: 'pg.statement',
    operation: { sql },
    decision: 'allow',
    reasons: [],
    ...extra,
  };
}

const revokedEvent: NewEvent = {
  target: null,
  kind: 'session.revoked',
  operation: {},
  decision: 'info',
  reasons: ['revoked by admin'],
};

/** Values that change or break through jsonb, text columns or number conversions. */
const AWKWARD: Record<string, unknown> = {
  unicode: 'héllo wörld — 日本語 — 😀 — \u200b',
  nul: 'a\u0000b',
  lone_surrogate: 'x\ud800y',
  quotes: 'it\'s "quoted" \\ back\\slash \n newline \t tab',
  nested: { z: 1, a: [{ y: null, b: [[], {}] }], m: { '': 'empty key', ключ: true } },
  floats: [1.25, 0.1 + 0.2, -0.5, 1e21, 5e-324, 1.7976931348623157e308],
  large_ints: [2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 60],
  empty_array: [],
  empty_object: {},
  booleans: [true, false],
};

async function openSessionOk(store: SqlStore, s: SessionRecord = makeSession()): Promise<TranscriptEvent> {
  const r = await store.openSession(s, openedEvent(s), tokenFor());
  if (!r.ok) throw new Error(`openSession refused: ${r.reason}`);
  return r.opened;
}

export function registerStoreSuite(
  name: string,
  setup: () => Promise<StoreHarness>,
  opts: { replicas?: boolean } = {},
): void {
  describe(name, () => {
    let h: StoreHarness;

    beforeAll(async () => {
      h = await setup();
      const first = await h.store.migrateWithResult();
      expect(first).toEqual({ applied: MIGRATIONS.map((m) => m.version), version: MIGRATIONS.length });
    });

    afterAll(async () => {
      await h?.close();
    });

    it('migrating again applies nothing and records each version once', async () => {
      expect(await h.store.migrateWithResult()).toEqual({ applied: [], version: MIGRATIONS.length });
      await h.store.migrate();
      const rows = await h.query<{ version: number; name: string }>(
        'SELECT version, name FROM schema_migrations ORDER BY version',
      );
      expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    });

    it('approvals: stored, found by state and session, changed only over the version read (compare and set)', async () => {
      const s = makeSession();
      await openSessionOk(h.store, s);
      const a = {
        id: `apr_${s.id.slice(4, 14)}`,
        session_id: s.id,
        target: 'orders-db',
        conn_id: 'pgc_1',
        operation_kind: 'pg.statement',
        summary: 'DROP TABLE t \u0000 ünïcode',
        operation_sha256: 'ab'.repeat(32),
        rule: 'approve[0].statement: DROP',
        reasons: ['DROP TABLE needs approval'],
        policy: 'main-write',
        approvers: { users: ['alice'], teams: [], min: 1 },
        job: { repository: 'octo/app', actor: 'mona' },
        state: 'pending' as const,
        votes: [],
        requested_at: new Date().toISOString(),
        expires_at: new Date(Date.now() + 10 * MINUTE).toISOString(),
      };
      await h.store.insertApproval(a);
      expect(await h.store.getApproval(a.id)).toEqual({ approval: a, version: 1 });
      expect(await h.store.getApproval('apr_unknown')).toBeNull();
      expect((await h.store.listApprovals({ state: 'pending', session_id: s.id })).map((x) => x.id)).toEqual([
        a.id,
      ]);
      const approved = {
        ...a,
        state: 'approved' as const,
        votes: [{ by: 'alice', decision: 'approve' as const, channel: 'api' as const, at: a.requested_at }],
      };
      // two writers over version 1: one wins
      const [first, second] = await Promise.all([
        h.store.updateApproval(approved, 1),
        h.store.updateApproval({ ...a, state: 'expired' }, 1),
      ]);
      expect([first, second].filter(Boolean)).toHaveLength(1);
      const now = await h.store.getApproval(a.id);
      expect(now?.version).toBe(2);
      expect(await h.store.updateApproval(approved, 1)).toBe(false);
      expect(await h.store.listApprovals({ state: 'pending', session_id: s.id })).toEqual([]);
    });

    it('ping answers', async () => {
      await expect(h.store.ping()).resolves.toBeUndefined();
    });

    it('openSession then getSession round-trips every field; the first event starts the chain', async () => {
      const created = new Date('2025-03-04T05:06:07.891Z');
      const s = makeSession({
        created_at: created,
        expires_at: new Date(created.getTime() + 30 * MINUTE),
        identity: { repository: 'octo/app', environment: 'prod ✓', run_attempt: 2 },
        claims: { ...AWKWARD, iat: 1_700_000_000, aud: ['a', 'b'] },
        grants: [
          {
            target: 'orders-db',
            access: 'read',
            mask: [{ column: 'customers.email' }],
            deny: [{ statement: ['DROP'] }],
          },
          { target: 'cluster', access: 'admin' },
        ],
        ssh_public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx test@example',
      });
      const opened = openedEvent(s);
      const r = await h.store.openSession(s, opened, tokenFor());
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.opened).toMatchObject({
        ...opened,
        seq: 1,
        session_id: s.id,
        at: created.toISOString(),
        prev_hash: GENESIS_HASH,
      });
      expect(verifyChain([r.opened])).toEqual({ ok: true, head: r.opened.hash });

      const back = await h.store.getSession(s.id);
      expect(back).toEqual(s);
      expect(back?.created_at).toBeInstanceOf(Date);
      expect(back?.created_at.getTime()).toBe(created.getTime());
      expect(await h.store.listEvents(s.id)).toEqual([r.opened]);
      expect(await h.store.getSession('ses_unknown')).toBeNull();
    });

    it('a replayed token key is refused and writes nothing', async () => {
      const token = tokenFor();
      const first = makeSession();
      const again = makeSession();
      expect((await h.store.openSession(first, openedEvent(first), token)).ok).toBe(true);
      const replay = await h.store.openSession(again, openedEvent(again), {
        ...token,
        expires_at: new Date(),
      });
      expect(replay).toEqual({ ok: false, reason: 'replay' });
      expect(await h.store.getSession(again.id)).toBeNull();
      expect(await h.store.listEvents(again.id)).toEqual([]);
      expect(await h.store.listEvents(first.id)).toHaveLength(1);
      const rows = await h.query<{ n: number }>('SELECT count(*)::int AS n FROM token_uses WHERE key = $1', [
        token.key,
      ]);
      expect(rows).toEqual([{ n: 1 }]);
    });

    it('the same token raced from many promises opens exactly one session', async () => {
      const token = tokenFor();
      const sessions = Array.from({ length: 8 }, () => makeSession());
      const results = await Promise.all(sessions.map((s) => h.store.openSession(s, openedEvent(s), token)));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      const found = await Promise.all(sessions.map((s) => h.store.getSession(s.id)));
      expect(found.filter((s) => s !== null)).toHaveLength(1);
    });

    it('appendEvents chains events in order; awkward values read back identical and re-verify', async () => {
      const s = makeSession();
      const opened = await openSessionOk(h.store, s);
      const batch: NewEvent[] = [
        statementEvent('select 1', { rows: 1, bytes: 0, duration_ms: 1.25, masked: 0 }),
        {
          target: 'orders-db',
          kind: 'pg.awkward',
          operation: AWKWARD,
          decision: 'deny',
          reasons: ['', 'ünïcode'],
        },
        statementEvent('update t set x = 1', {
          approval: { by: 'mona', at: '2025-01-01T00:00:00.000Z', note: null },
          at: '2025-01-01T00:00:01.123Z',
        }),
      ];
      const written = await h.store.appendEvents(s.id, batch);
      expect(written.map((e) => e.seq)).toEqual([2, 3, 4]);
      expect(written[0]!.prev_hash).toBe(opened.hash);
      expect(written[2]!.at).toBe('2025-01-01T00:00:01.123Z');
      const single = await h.store.appendEvents(s.id, [statementEvent('select 2')]);
      expect(single[0]!.seq).toBe(5);

      const all = await h.store.listEvents(s.id);
      expect(all).toEqual([opened, ...written, ...single]);
      expect(all[2]!.operation).toStrictEqual(AWKWARD);
      expect(verifyChain(all)).toEqual({ ok: true, head: single[0]!.hash });
      expect(await h.store.listEvents(s.id, { after_seq: 2, limit: 2 })).toEqual(written.slice(1, 3));
      expect(await h.store.listEvents(s.id, { after_seq: 5 })).toEqual([]);
      expect(await h.store.appendEvents(s.id, [])).toEqual([]);

      // one chunk per append, each a JSON array of its events as chained, less what the row says:
      // session_id, seq (first_seq + index) and prev_hash (the column, then the previous hash)
      const chunks = await h.query<{
        first_seq: number;
        last_seq: number;
        events: string;
        prev_hash: string | null;
      }>(
        `SELECT first_seq, last_seq, events, prev_hash FROM event_chunks WHERE session_id = $1
         ORDER BY first_seq`,
        [s.id],
      );
      expect(chunks.map((c) => [c.first_seq, c.last_seq, c.prev_hash])).toEqual([
        [1, 1, all[0]!.prev_hash],
        [2, 4, all[1]!.prev_hash],
        [5, 5, all[4]!.prev_hash],
      ]);
      expect(chunks.flatMap((c) => JSON.parse(c.events) as unknown[])).toEqual(
        all.map(({ session_id: _s, seq: _q, prev_hash: _p, ...body }) => body),
      );
      // the API returns events with their keys in chain order, as chainEvent made them
      expect(all.map((e) => Object.keys(e))).toEqual(
        [opened, ...written, ...single].map((e) => Object.keys(e)),
      );
    });

    it('verifyChain names the event whose stored body was changed in the database', async () => {
      const s = makeSession();
      await openSessionOk(h.store, s);
      await h.store.appendEvents(s.id, [
        statementEvent('select 1'),
        statementEvent('select 2'),
        statementEvent('select 3'),
      ]);
      expect(verifyChain(await h.store.listEvents(s.id)).ok).toBe(true);
      await h.query(
        `UPDATE event_chunks SET events = replace(events, 'select 2', 'drop table orders')
         WHERE session_id = $1 AND first_seq <= 3 AND last_seq >= 3`,
        [s.id],
      );
      const tampered = await h.store.listEvents(s.id);
      expect(tampered[2]!.operation).toEqual({ sql: 'drop table orders' });
      expect(verifyChain(tampered)).toMatchObject({
        ok: false,
        seq: 3,
        problem: 'hash does not match the event content',
      });
    });

    it('concurrent appendEvents on one session give contiguous seq 1..N and a valid chain', async () => {
      const s = makeSession();
      await openSessionOk(h.store, s);
      const calls = Array.from({ length: 40 }, (_, i) =>
        h.store.appendEvents(
          s.id,
          Array.from({ length: (i % 3) + 1 }, (_, j) => statementEvent(`select ${i}, ${j}`)),
        ),
      );
      const results = await Promise.all(calls);
      const total = 1 + results.reduce((n, r) => n + r.length, 0);
      const all = await h.store.listEvents(s.id);
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(verifyChain(all).ok).toBe(true);
      // each caller's batch is contiguous and is exactly what was stored
      for (const batch of results) {
        const from = batch[0]!.seq;
        expect(batch.map((e) => e.seq)).toEqual(batch.map((_, k) => from + k));
        expect(all.slice(from - 1, from - 1 + batch.length)).toEqual(batch);
      }
    });

    it('appendEvents refuses an unknown session and an ended one', async () => {
      await expect(h.store.appendEvents('ses_nope', [statementEvent('select 1')])).rejects.toBeInstanceOf(
        UnknownSessionError,
      );
      const s = makeSession();
      await openSessionOk(h.store, s);
      await h.store.endSession(s.id, new Date(), 'revoked', revokedEvent);
      await expect(h.store.appendEvents(s.id, [statementEvent('select 1')])).rejects.toBeInstanceOf(
        SessionEndedError,
      );
    });

    it('appendEventBatches writes several sessions in one transaction; an ended session fails alone', async () => {
      const [a, b, ended] = [makeSession(), makeSession(), makeSession()];
      for (const s of [a, b, ended]) await openSessionOk(h.store, s);
      await h.store.endSession(ended.id, new Date(), 'revoked', revokedEvent);
      const results = await h.store.appendEventBatches([
        { sessionId: b.id, events: [statementEvent('select 1'), statementEvent('select 2')] },
        { sessionId: ended.id, events: [statementEvent('select 3')] },
        { sessionId: 'ses_nope', events: [statementEvent('select 4')] },
        { sessionId: a.id, events: [statementEvent('select 5')] },
      ]);
      expect(results.map((r) => r.ok)).toEqual([true, false, false, true]);
      expect(results[1]).toMatchObject({ ok: false, error: expect.any(SessionEndedError) });
      expect(results[2]).toMatchObject({ ok: false, error: expect.any(UnknownSessionError) });
      const bEvents = await h.store.listEvents(b.id);
      expect(bEvents.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(verifyChain(bEvents).ok).toBe(true);
      expect((await h.store.listEvents(a.id)).map((e) => e.operation.sql ?? e.kind)).toEqual([
        'session.opened',
        'select 5',
      ]);
      expect((await h.store.listEvents(ended.id)).at(-1)!.kind).toBe('session.revoked');
    });

    it('an append after the head moved underneath the store chains after the stored head, not a remembered one', async () => {
      const s = makeSession();
      await openSessionOk(h.store, s);
      const [first] = await h.store.appendEventBatches([
        { sessionId: s.id, events: [statementEvent('select 1')] },
      ]);
      expect(first).toMatchObject({ ok: true, first_seq: 2, head: { seq: 2 } });
      // another writer (a replica, an operator) appends behind this store's back
      const stored = await h.store.listEvents(s.id);
      const foreign = { ...stored[1]!, seq: 3, prev_hash: stored[1]!.hash, hash: 'f'.repeat(64) };
      await h.query(
        `WITH c AS (INSERT INTO event_chunks (session_id, first_seq, last_seq, events) VALUES ($1, 3, 3, $2))
         UPDATE sessions SET head_seq = 3, head_hash = $3 WHERE id = $1`,
        [s.id, JSON.stringify([foreign]), foreign.hash],
      );
      const [next] = await h.store.appendEventBatches([
        { sessionId: s.id, events: [statementEvent('select 2')] },
      ]);
      expect(next).toMatchObject({ ok: true, first_seq: 4 });
      const all = await h.store.listEvents(s.id);
      expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      expect(all[3]!.prev_hash).toBe(foreign.hash);
    });

    it('endSession ends once, appends the final event last, and a second call returns null', async () => {
      const s = makeSession();
      await openSessionOk(h.store, s);
      await h.store.appendEvents(s.id, [statementEvent('select 1')]);
      const at = new Date(s.created_at.getTime() + MINUTE);
      const final = await h.store.endSession(s.id, at, 'revoked', revokedEvent);
      expect(final).toMatchObject({ ...revokedEvent, seq: 3, at: at.toISOString(), session_id: s.id });
      expect(await h.store.endSession(s.id, new Date(), 'expired', revokedEvent)).toBeNull();
      expect(await h.store.endSession('ses_unknown', new Date(), 'revoked', revokedEvent)).toBeNull();

      const back = await h.store.getSession(s.id);
      expect(back?.ended_at?.getTime()).toBe(at.getTime());
      expect(back?.end_reason).toBe('revoked');
      const all = await h.store.listEvents(s.id);
      expect(all.at(-1)).toEqual(final);
      expect(verifyChain(all).ok).toBe(true);
    });

    it('racing endSession calls end the session exactly once', async () => {
      const s = makeSession();
      await openSessionOk(h.store, s);
      const appends = Array.from({ length: 10 }, (_, i) =>
        h.store.appendEvents(s.id, [statementEvent(`select ${i}`)]).catch((err: unknown) => err),
      );
      const ends = Array.from({ length: 5 }, () =>
        h.store.endSession(s.id, new Date(), 'revoked', revokedEvent),
      );
      const [ended] = await Promise.all([Promise.all(ends), Promise.all(appends)]);
      expect(ended.filter((e) => e !== null)).toHaveLength(1);
      const all = await h.store.listEvents(s.id);
      expect(all.at(-1)?.kind).toBe('session.revoked');
      expect(all.filter((e) => e.kind === 'session.revoked')).toHaveLength(1);
      expect(verifyChain(all).ok).toBe(true);
    });

    it('listSessions: newest first, the active_at filter and the limit', async () => {
      // A time range no other test uses, so this test sees only its own sessions.
      const T = Date.parse('2100-06-01T12:00:00.000Z');
      const at = (m: number) => new Date(T + m * MINUTE);
      const expired = makeSession({ created_at: at(-30), expires_at: at(-5) });
      const revoked = makeSession({ created_at: at(-20), expires_at: at(30) });
      const active = makeSession({ created_at: at(-10), expires_at: at(10) });
      const endsLater = makeSession({ created_at: at(-5), expires_at: at(30) });
      const future = makeSession({ created_at: at(5), expires_at: at(60) });
      for (const s of [expired, revoked, active, endsLater, future]) await openSessionOk(h.store, s);
      await h.store.endSession(revoked.id, at(-1), 'revoked', revokedEvent);
      await h.store.endSession(endsLater.id, at(1), 'revoked', revokedEvent);

      const ids = (list: SessionRecord[]) => list.map((x) => x.id);
      expect(ids(await h.store.listSessions({ active_at: at(0) }))).toEqual([endsLater.id, active.id]);
      expect(ids(await h.store.listSessions({ active_at: at(0), limit: 1 }))).toEqual([endsLater.id]);
      expect(ids(await h.store.listSessions({ active_at: at(2) }))).toEqual([active.id]);
      expect(ids(await h.store.listSessions({ limit: 3 }))).toEqual([future.id, endsLater.id, active.id]);
      expect((await h.store.listSessions({ active_at: at(0) }))[1]).toEqual(active);
      await expect(h.store.listSessions({ limit: 0 })).rejects.toBeInstanceOf(RangeError);
      await expect(h.store.listSessions({ active_at: new Date(Number.NaN) })).rejects.toBeInstanceOf(
        TypeError,
      );
    });

    it('listExpiredUnended returns expired sessions not yet ended, soonest expiry first', async () => {
      const T = Date.parse('1980-01-01T00:00:00.000Z');
      const at = (m: number) => new Date(T + m * MINUTE);
      const late = makeSession({ created_at: at(0), expires_at: at(12) });
      const early = makeSession({ created_at: at(1), expires_at: at(10) });
      const ended = makeSession({ created_at: at(0), expires_at: at(11) });
      const live = makeSession({ created_at: at(0), expires_at: at(20) });
      for (const s of [late, early, ended, live]) await openSessionOk(h.store, s);
      await h.store.endSession(ended.id, at(11), 'expired', { ...revokedEvent, kind: 'session.expired' });

      const ids = (list: SessionRecord[]) => list.map((x) => x.id);
      expect(ids(await h.store.listExpiredUnended(at(15)))).toEqual([early.id, late.id]);
      expect(ids(await h.store.listExpiredUnended(at(15), 1))).toEqual([early.id]);
      expect(ids(await h.store.listExpiredUnended(at(10)))).toEqual([early.id]);
      expect(ids(await h.store.listExpiredUnended(at(9)))).toEqual([]);
    });

    it('recordDenial and listDenials round-trip, newest first', async () => {
      const T = Date.parse('2300-01-01T00:00:00.000Z');
      const denials = [
        {
          at: new Date(T),
          kind: 'token.invalid',
          reasons: ['bad signature'],
          detail: { issuer: 'github', ip: '127.0.0.1' },
        },
        { at: new Date(T + 1000), kind: 'policy.no_match', reasons: [], detail: { nested: AWKWARD } },
        { at: new Date(T + 2000), kind: 'token.replayed', reasons: ['jti seen', 'ünï\u0000'], detail: {} },
      ];
      for (const d of denials) await h.store.recordDenial(d);
      expect(await h.store.listDenials(2)).toEqual([denials[2], denials[1]]);
      const three = await h.store.listDenials(3);
      expect(three[2]).toEqual(denials[0]);
      expect(three[1]!.detail).toStrictEqual({ nested: AWKWARD });
    });

    it('recording chunks round-trip by recording and seq; an unknown session keeps none', async () => {
      const s = makeSession();
      await openSessionOk(h.store, s);
      const header = `${JSON.stringify({ version: 2, width: 80, height: 24 })}\n`;
      await h.store.appendRecordingChunks(s.id, [
        { recording: 'c2', seq: 0, body: header },
        { recording: 'c1', seq: 0, body: header },
      ]);
      await h.store.appendRecordingChunks(s.id, [
        { recording: 'c1', seq: 1, body: `${JSON.stringify([0.5, 'o', 'ünï \u0000 \x1b[1m'])}\n` },
      ]);
      await h.store.appendRecordingChunks(s.id, []);
      const all = await h.store.listRecordingChunks(s.id);
      expect(all.map((c) => [c.recording, c.seq])).toEqual([
        ['c1', 0],
        ['c1', 1],
        ['c2', 0],
      ]);
      expect(JSON.parse(all[1]!.body)).toEqual([0.5, 'o', 'ünï \u0000 \x1b[1m']);
      expect(await h.store.listRecordingChunks(s.id, 'c2')).toEqual([
        { recording: 'c2', seq: 0, body: header },
      ]);
      await h.store.appendRecordingChunks('ses_unknown', [{ recording: 'x', seq: 0, body: header }]);
      expect(await h.store.listRecordingChunks('ses_unknown')).toEqual([]);
    });

    it('pruneTokenUses deletes only expired token uses, which can then be used again', async () => {
      const T = Date.parse('1970-01-01T00:00:00.000Z');
      const old = [1, 2, 3].map((i) => ({
        key: `prune-old-${i}-${Math.random()}`,
        expires_at: new Date(T + i * 1000),
      }));
      const kept = { key: `prune-kept-${Math.random()}`, expires_at: new Date(T + 10 * 60_000) };
      for (const token of [...old, kept]) {
        const s = makeSession();
        expect((await h.store.openSession(s, openedEvent(s), token)).ok).toBe(true);
      }
      expect(await h.store.pruneTokenUses(new Date(T + 5 * 60_000))).toBe(3);
      expect(await h.store.pruneTokenUses(new Date(T + 5 * 60_000))).toBe(0);
      const again = makeSession();
      expect((await h.store.openSession(again, openedEvent(again), old[0]!)).ok).toBe(true);
      const keptAgain = makeSession();
      expect(await h.store.openSession(keptAgain, openedEvent(keptAgain), kept)).toEqual({
        ok: false,
        reason: 'replay',
      });
    });

    it('claimOnce claims a key once (concurrent claims: exactly one wins), shared with token uses, pruned after expiry', async () => {
      const T = Date.parse('1970-01-01T00:00:00.000Z');
      const key = `github-delivery:${Math.random()}`;
      const claims = await Promise.all([1, 2, 3, 4].map(() => h.store.claimOnce(key, new Date(T + 1000))));
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await h.store.claimOnce(key, new Date(T + 1000))).toBe(false);
      expect(await h.store.claimOnce(`${key}-other`, new Date(T + 1000))).toBe(true);
      await h.store.pruneTokenUses(new Date(T + 60_000));
      expect(await h.store.claimOnce(key, new Date(T + 1000))).toBe(true);
    });

    it.runIf(opts.replicas)(
      'two replicas appending to one session concurrently keep one contiguous chain',
      async () => {
        const replica = await h.openReplica!();
        try {
          const s = makeSession();
          await openSessionOk(h.store, s);
          const calls = Array.from({ length: 60 }, (_, i) =>
            (i % 2 === 0 ? h.store : replica).appendEvents(s.id, [
              statementEvent(`select ${i}`),
              statementEvent('x'),
            ]),
          );
          await Promise.all(calls);
          const all = await replica.listEvents(s.id);
          expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 121 }, (_, i) => i + 1));
          expect(verifyChain(all).ok).toBe(true);
          // and the same token used at two replicas at once opens one session
          const token = tokenFor();
          const a = makeSession();
          const b = makeSession();
          const results = await Promise.all([
            h.store.openSession(a, openedEvent(a), token),
            replica.openSession(b, openedEvent(b), token),
          ]);
          expect(results.filter((r) => r.ok)).toHaveLength(1);
        } finally {
          await replica.close();
        }
      },
    );

    it.runIf(opts.replicas)(
      'group-commit appends from two replicas keep one chain, and an end at one replica stops the other',
      async () => {
        const replica = await h.openReplica!();
        try {
          const s = makeSession();
          await openSessionOk(h.store, s);
          // each store remembers the head it wrote last; the other's appends make that hint stale
          for (let i = 0; i < 20; i++) {
            const [r] = await (i % 3 === 0 ? replica : h.store).appendEventBatches([
              { sessionId: s.id, events: [statementEvent(`select ${i}`), statementEvent(`select ${i}b`)] },
            ]);
            expect(r).toMatchObject({ ok: true });
          }
          const all = await h.store.listEvents(s.id);
          expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
          expect(verifyChain(all).ok).toBe(true);
          await replica.endSession(s.id, new Date(), 'revoked', revokedEvent);
          const [late] = await h.store.appendEventBatches([
            { sessionId: s.id, events: [statementEvent('select after end')] },
          ]);
          expect(late).toMatchObject({ ok: false, error: expect.any(SessionEndedError) });
          expect((await replica.listEvents(s.id)).at(-1)!.kind).toBe('session.revoked');
        } finally {
          await replica.close();
        }
      },
    );

    it('readExport hands out every event once, in order, each with its session, and the denials', async () => {
      // start from where everything written so far ends
      let pos = EXPORT_START;
      for (;;) {
        const b = await h.store.readExport(pos, 1000);
        pos = b.position;
        if (b.drained) break;
      }
      const a = makeSession({ identity: { repository: 'octo/a', run_id: '1', actor: 'mona', sha: 'abc' } });
      const b = makeSession({ identity: { repository: 'octo/b', run_id: '2', actor: 'hubot', sha: 'def' } });
      await openSessionOk(h.store, a);
      await openSessionOk(h.store, b);
      await h.store.appendEventBatches([
        { sessionId: a.id, events: [statementEvent('select 1'), statementEvent('select 2')] },
        { sessionId: b.id, events: [statementEvent('select 3')] },
      ]);
      await h.store.recordDenial({
        at: new Date(),
        kind: 'token.replayed',
        reasons: ['used'],
        detail: { run_id: '9' },
      });
      await h.store.appendEvents(a.id, [statementEvent('select 4')]);
      const seen: { sid: string; seq: number; repo: unknown }[] = [];
      const denials: string[] = [];
      for (let round = 0; round < 10; round++) {
        const batch = await h.store.readExport(pos, 2);
        for (const e of batch.events)
          seen.push({ sid: e.session.id, seq: e.event.seq, repo: e.session.identity.repository });
        denials.push(...batch.denials.map((d) => d.kind));
        pos = batch.position;
        if (batch.drained) break;
      }
      const ofA = seen.filter((x) => x.sid === a.id);
      expect(ofA.map((x) => x.seq)).toEqual([1, 2, 3, 4]);
      expect(ofA.every((x) => x.repo === 'octo/a')).toBe(true);
      expect(seen.filter((x) => x.sid === b.id).map((x) => x.seq)).toEqual([1, 2]);
      expect(seen).toHaveLength(6);
      expect(denials).toEqual(['token.replayed']);
      // nothing more after the saved position
      const after = await h.store.readExport(pos, 100);
      expect(after.events).toEqual([]);
      expect(after.denials).toEqual([]);
      expect(after.position).toEqual(pos);
    });

    it('export leases: one holder at a time, taken over when it runs out; positions saved only by the holder', async () => {
      const sink = `sink-${Math.random()}`;
      const t0 = new Date();
      const later = (ms: number) => new Date(t0.getTime() + ms);
      expect(await h.store.claimExportLease(sink, 'r1', t0, later(30_000), EXPORT_START)).toEqual(
        EXPORT_START,
      );
      expect(await h.store.claimExportLease(sink, 'r2', later(1000), later(31_000), EXPORT_START)).toBeNull();
      const moved = { chunks: ['5', 'ses_x', 3], denials: ['4', '7'] } as ExportPosition;
      expect(await h.store.saveExportPosition(sink, 'r1', moved, later(2000), later(32_000))).toBe(true);
      // r1's lease runs out: r2 takes over at r1's saved position, and r1 can no longer save
      expect(await h.store.claimExportLease(sink, 'r2', later(40_000), later(70_000), EXPORT_START)).toEqual(
        moved,
      );
      expect(await h.store.saveExportPosition(sink, 'r1', EXPORT_START, later(41_000), later(71_000))).toBe(
        false,
      );
      expect((await h.store.listExportPositions()).find((r) => r.sink === sink)).toMatchObject({
        holder: 'r2',
        position: moved,
      });
    });

    it.runIf(opts.replicas)(
      'a transaction still open holds the export back, so a row it commits later is never skipped',
      async () => {
        let pos = EXPORT_START;
        for (;;) {
          const b = await h.store.readExport(pos, 1000);
          pos = b.position;
          if (b.drained) break;
        }
        await h.query('BEGIN');
        await h.query(
          "INSERT INTO denials (at, kind, reasons, detail) VALUES (now(), 'slow.tx', '[]', '{}')",
        );
        // a later transaction commits first
        await h.store.recordDenial({ at: new Date(), kind: 'fast.tx', reasons: [], detail: {} });
        const held = await h.store.readExport(pos, 100);
        expect(held.denials).toEqual([]);
        await h.query('COMMIT');
        const both = await h.store.readExport(pos, 100);
        expect(both.denials.map((d) => d.kind)).toEqual(['slow.tx', 'fast.tx']);
      },
    );

    it('pruneBefore removes ended sessions and denials past the cutoff only once every named sink exported them', async () => {
      const T = Date.parse('1970-01-02T00:00:00.000Z');
      const old = makeSession({ created_at: new Date(T), expires_at: new Date(T + MINUTE) });
      const live = makeSession({ created_at: new Date(T), expires_at: new Date(Date.now() + 60 * MINUTE) });
      await openSessionOk(h.store, old);
      await openSessionOk(h.store, live);
      await h.store.appendEvents(old.id, [statementEvent('select 1')]);
      await h.store.endSession(old.id, new Date(T + 2 * MINUTE), 'revoked', revokedEvent);
      await h.store.recordDenial({ at: new Date(T), kind: 'prune.me', reasons: [], detail: {} });
      const cutoff = new Date(T + 60 * MINUTE);
      const sink = `prune-sink-${Math.random()}`;
      // a sink with no position yet: nothing goes
      expect(await h.store.pruneBefore(cutoff, new Date(), [sink], 100)).toMatchObject({
        sessions: 0,
        denials: 0,
      });
      // the sink starts, but has not read anything: still nothing
      const now = new Date();
      await h.store.claimExportLease(sink, 'r', now, new Date(now.getTime() + MINUTE), EXPORT_START);
      expect(await h.store.pruneBefore(cutoff, new Date(), [sink], 100)).toMatchObject({
        sessions: 0,
        denials: 0,
      });
      expect(await h.store.getSession(old.id)).not.toBeNull();
      // once the sink has exported everything, the old session and denial go; the live session stays
      let pos = EXPORT_START;
      for (;;) {
        const b = await h.store.readExport(pos, 1000);
        pos = b.position;
        if (b.drained) break;
      }
      await h.store.saveExportPosition(sink, 'r', pos, new Date(), new Date(Date.now() + MINUTE));
      const pruned = await h.store.pruneBefore(cutoff, new Date(), [sink], 100_000);
      expect(pruned.sessions).toBeGreaterThanOrEqual(1);
      expect(pruned.denials).toBeGreaterThanOrEqual(1);
      expect(await h.store.getSession(old.id)).toBeNull();
      expect(await h.store.listEvents(old.id)).toEqual([]);
      expect(await h.store.getSession(live.id)).not.toBeNull();
      expect((await h.store.listDenials(100_000)).find((d) => d.kind === 'prune.me')).toBeUndefined();
      const noted = await h.store.listPrunedSince(new Date(now.getTime() - MINUTE));
      expect(noted.find((p) => p.id === old.id)).toMatchObject({ head_seq: 3 });
    });

    it('close waits for calls in flight, is idempotent, and later calls fail', async () => {
      const s = makeSession();
      const pending = h.store.openSession(s, openedEvent(s), tokenFor());
      await h.store.close();
      await expect(pending).resolves.toMatchObject({ ok: true });
      await h.store.close();
      await expect(h.store.ping()).rejects.toBeInstanceOf(StoreClosedError);
      await expect(h.store.getSession(s.id)).rejects.toBeInstanceOf(StoreClosedError);
    });
  });
}
