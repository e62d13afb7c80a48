// The Store, written once over a SqlDriver: the embedded (PGlite) and the PostgreSQL store are this
// class with different drivers, so they run the same SQL and behave the same.
import { chainEvent, type NewEvent, type TranscriptEvent } from '../audit/event.js';
import type { SessionRecord } from '../sessions/types.js';
import { SessionEndedError, StoreClosedError, UnknownSessionError } from './errors.js';
import { type MigrationResult, runMigrations } from './migrations.js';
import {
  checkedDate,
  checkedLimit,
  type DenialRow,
  denialFromRow,
  denialParams,
  type EventRow,
  eventColumns,
  type HeadRow,
  type LockedHeadRow,
  type SessionRow,
  SQL,
  type SqlDriver,
  type SqlRunner,
  sessionFromRow,
  sessionParams,
} from './sql.js';
import type {
  DenialRecord,
  EventBatch,
  EventBatchResult,
  OpenSessionResult,
  Store,
  TokenUse,
} from './store.js';

const DEFAULT_LIST_LIMIT = 100;

export class SqlStore implements Store {
  readonly kind: 'embedded' | 'postgres';
  readonly #driver: SqlDriver;
  /** the driver, counting calls in flight so close() can wait for them */
  readonly #db: SqlDriver;
  readonly #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;

  constructor(db: SqlDriver) {
    this.#driver = db;
    this.kind = db.kind;
    const track = <T>(p: Promise<T>): Promise<T> => {
      this.#inflight.add(p);
      const forget = () => this.#inflight.delete(p);
      p.then(forget, forget);
      return p;
    };
    // Every Store method makes exactly one driver call, right after its checks: tracking the
    // driver call tracks the method.
    this.#db = {
      kind: db.kind,
      query: (statement, params) => track(db.query(statement, params)),
      exec: (script) => track(db.exec(script)),
      transaction: (fn) => track(db.transaction(fn)),
      close: () => db.close(),
    };
  }

  async migrate(): Promise<void> {
    await this.migrateWithResult();
  }

  /** migrate(), reporting what was applied (for start-up logs and tests). */
  async migrateWithResult(): Promise<MigrationResult> {
    this.#checkOpen();
    return runMigrations(this.#db);
  }

  async openSession(session: SessionRecord, opened: NewEvent, token: TokenUse): Promise<OpenSessionResult> {
    this.#checkOpen();
    const tokenExpiry = checkedDate(token.expires_at, 'token.expires_at');
    checkedDate(session.created_at, 'session.created_at');
    checkEventTimes([opened]);
    // The opening event happens when the session is created, so that is its default time.
    const first = chainEvent(null, session.id, opened, session.created_at);
    const params = [
      token.key,
      tokenExpiry,
      ...sessionParams(session, { head_seq: first.seq, head_hash: first.hash }),
      ...eventColumns([first]),
    ];
    const { rowCount } = await this.#db.query(SQL.openSession, params);
    if (rowCount === 0) return { ok: false, reason: 'replay' };
    return { ok: true, opened: first };
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    this.#checkOpen();
    const { rows } = await this.#db.query<SessionRow>(SQL.getSession, [id]);
    return rows[0] ? sessionFromRow(rows[0]) : null;
  }

  async listSessions(filter: { active_at?: Date; limit?: number } = {}): Promise<SessionRecord[]> {
    this.#checkOpen();
    const limit = checkedLimit(filter.limit, DEFAULT_LIST_LIMIT, 'listSessions limit');
    const { rows } =
      filter.active_at === undefined
        ? await this.#db.query<SessionRow>(SQL.listSessions, [limit])
        : await this.#db.query<SessionRow>(SQL.listActiveSessions, [
            checkedDate(filter.active_at, 'active_at'),
            limit,
          ]);
    return rows.map(sessionFromRow);
  }

  async endSession(id: string, at: Date, reason: string, final: NewEvent): Promise<TranscriptEvent | null> {
    this.#checkOpen();
    checkedDate(at, 'endSession at');
    checkEventTimes([final]);
    return this.#db.transaction(async (tx) => {
      // The UPDATE takes the row lock, so it waits for (and then follows) any append in progress.
      const head = (await tx.query<HeadRow>(SQL.endSession, [id, at, reason])).rows[0];
      if (!head) return null;
      const [last] = await appendAfter(tx, id, head, [final], at);
      return last!;
    });
  }

  async listExpiredUnended(now: Date, limit?: number): Promise<SessionRecord[]> {
    this.#checkOpen();
    const max = checkedLimit(limit, DEFAULT_LIST_LIMIT, 'listExpiredUnended limit');
    const { rows } = await this.#db.query<SessionRow>(SQL.listExpiredUnended, [checkedDate(now, 'now'), max]);
    return rows.map(sessionFromRow);
  }

  /**
   * @throws UnknownSessionError when the session does not exist
   * @throws SessionEndedError when endSession already closed the transcript
   */
  async appendEvents(sessionId: string, events: NewEvent[]): Promise<TranscriptEvent[]> {
    this.#checkOpen();
    if (events.length === 0) return [];
    checkEventTimes(events);
    const now = new Date();
    return this.#db.transaction(async (tx) => {
      const head = (await tx.query<LockedHeadRow>(SQL.lockSessionHead, [sessionId])).rows[0];
      if (!head) throw new UnknownSessionError(sessionId);
      if (head.ended_at !== null) throw new SessionEndedError(sessionId);
      return appendAfter(tx, sessionId, head, events, now);
    });
  }

  async appendEventBatches(batches: readonly EventBatch[]): Promise<EventBatchResult[]> {
    this.#checkOpen();
    for (const b of batches) checkEventTimes(b.events);
    const now = new Date();
    const results: EventBatchResult[] = batches.map(() => ({ ok: true, events: [] }));
    // lock in a fixed order so replicas appending to the same sessions cannot deadlock
    const order = batches
      .map((_, i) => i)
      .sort((a, b) => (batches[a]!.sessionId < batches[b]!.sessionId ? -1 : 1));
    await this.#db.transaction(async (tx) => {
      for (const i of order) {
        const { sessionId, events } = batches[i]!;
        if (events.length === 0) continue;
        const head = (await tx.query<LockedHeadRow>(SQL.lockSessionHead, [sessionId])).rows[0];
        if (!head) results[i] = { ok: false, error: new UnknownSessionError(sessionId) };
        else if (head.ended_at !== null) results[i] = { ok: false, error: new SessionEndedError(sessionId) };
        else results[i] = { ok: true, events: await appendAfter(tx, sessionId, head, events, now) };
      }
    });
    return results;
  }

  async listEvents(
    sessionId: string,
    opts: { after_seq?: number; limit?: number } = {},
  ): Promise<TranscriptEvent[]> {
    this.#checkOpen();
    const after = opts.after_seq ?? 0;
    if (!Number.isSafeInteger(after) || after < 0)
      throw new RangeError('listEvents after_seq must be an integer >= 0');
    const limit = checkedLimit(opts.limit, null, 'listEvents limit');
    const { rows } = await this.#db.query<EventRow>(SQL.listEvents, [sessionId, after, limit]);
    return rows.map((r) => r.body);
  }

  async recordDenial(denial: DenialRecord): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.insertDenial, denialParams(denial));
  }

  async listDenials(limit?: number): Promise<DenialRecord[]> {
    this.#checkOpen();
    const max = checkedLimit(limit, DEFAULT_LIST_LIMIT, 'listDenials limit');
    const { rows } = await this.#db.query<DenialRow>(SQL.listDenials, [max]);
    return rows.map(denialFromRow);
  }

  async pruneTokenUses(now: Date): Promise<number> {
    this.#checkOpen();
    const { rowCount } = await this.#db.query(SQL.pruneTokenUses, [checkedDate(now, 'now')]);
    return rowCount;
  }

  async ping(): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.ping, []);
  }

  /** Refuses new calls, waits for those in flight, then releases the database. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
      await this.#driver.close();
    })();
    return this.#closing;
  }

  #checkOpen(): void {
    if (this.#closing) throw new StoreClosedError();
  }
}

/** Chain `events` after `head`, insert them and move the head; inside the caller's transaction, which holds the row lock. */
async function appendAfter(
  tx: SqlRunner,
  sessionId: string,
  head: HeadRow,
  events: readonly NewEvent[],
  now: Date,
): Promise<TranscriptEvent[]> {
  let prev: Pick<TranscriptEvent, 'seq' | 'hash'> = { seq: head.head_seq, hash: head.head_hash };
  const chained = events.map((ev) => {
    const e = chainEvent(prev, sessionId, ev, now);
    prev = e;
    return e;
  });
  await tx.query(SQL.appendEvents, [sessionId, ...eventColumns(chained), prev.seq, prev.hash]);
  return chained;
}

/** A caller-supplied `at` must be a time PostgreSQL reads the same way (ISO-8601). */
function checkEventTimes(events: readonly NewEvent[]): void {
  for (const e of events) {
    if (e.at !== undefined && Number.isNaN(Date.parse(e.at))) {
      throw new TypeError(`event ${e.kind}: at is not an ISO-8601 time`);
    }
  }
}
