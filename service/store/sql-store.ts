// The Store, written once over a SqlDriver: the embedded (PGlite) and the PostgreSQL store are this
// class with different drivers, so they run the same SQL and behave the same.
// Size (over 600 lines, on purpose): it is the one implementation of the whole Store interface
// (sessions, token uses, transcripts, recordings, checkpoints, exports, approvals), each method a
// few lines over sql.ts's statements; splitting it by table would split the transactions that span
// several tables (an append with its session check, an end with its NOTIFY).
import { chainEvent, type NewEvent, type TranscriptEvent } from '../audit/event.js';
import { chainEventText, eventText } from '../audit/event-text.js';
import type { ApprovalState, PendingApproval } from '../approvals/types.js';
import type { SessionRecord } from '../sessions/types.js';
import type { ChunkFile } from './chunk-file.js';
import { SessionEndedError, StoreClosedError, UnknownSessionError } from './errors.js';
import { type MigrationResult, runMigrations } from './migrations.js';
import {
  checkedDate,
  checkedLimit,
  type DenialRow,
  denialFromRow,
  denialParams,
  type ChunkBodyRef,
  type ChunkText,
  chunkOfEvents,
  chunkParams,
  type EventChunkRow,
  type HeadRow,
  type LockedHeadRow,
  restoreChunk,
  type SessionRow,
  SQL,
  type SqlDriver,
  type SqlRunner,
  sessionFromRow,
  sessionParams,
} from './sql.js';
import type {
  LiveConnectionRow,
  ChainHead,
  CheckpointRow,
  DenialRecord,
  RecordingChunk,
  EventBatch,
  ExportBatch,
  ExportCursorRow,
  ExportPosition,
  EventBatchResult,
  EventTextBatch,
  OpenSessionResult,
  SessionLimits,
  Store,
  TokenUse,
} from './store.js';

const DEFAULT_LIST_LIMIT = 100;
/** Sessions whose transcript head is remembered (see #heads). */
const MAX_REMEMBERED_HEADS = 10_000;

export class SqlStore implements Store {
  readonly kind: 'embedded' | 'postgres';
  readonly #driver: SqlDriver;
  /** the driver, counting calls in flight so close() can wait for them */
  readonly #db: SqlDriver;
  readonly #track: <T>(p: Promise<T>) => Promise<T>;
  readonly #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;
  /**
   * Each session's transcript head as this store last wrote or read it: a hint that lets an append be
   * one compare-and-set statement (SQL.appendIfHead) instead of lock, read, write. The database stays the
   * authority: when another replica moved the head, or the session ended, the compare fails and the
   * append takes the locking path.
   */
  readonly #heads = new Map<string, HeadRow>();

  /** the embedded store's transcript files (chunk-file.ts): where appendEventBatches writes chunk bodies */
  readonly #bodies: ChunkFile | null;

  constructor(db: SqlDriver, opts: { bodies?: ChunkFile } = {}) {
    this.#driver = db;
    this.#bodies = opts.bodies ?? null;
    this.kind = db.kind;
    const track = <T>(p: Promise<T>): Promise<T> => {
      this.#inflight.add(p);
      const forget = () => this.#inflight.delete(p);
      p.then(forget, forget);
      return p;
    };
    this.#track = track;
    // Every Store method makes exactly one driver call, right after its checks (tracking the driver call
    // tracks the method), or runs whole inside #track (appendEventBatches).
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

  async openSession(
    session: SessionRecord,
    opened: NewEvent,
    token: TokenUse,
    limits?: SessionLimits,
  ): Promise<OpenSessionResult> {
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
      ...chunkParams(chunkOfEvents([first])),
    ];
    if (!limits) {
      const { rowCount } = await this.#db.query(SQL.openSession, params);
      if (rowCount === 0) return { ok: false, reason: 'replay' };
      this.#remember(session.id, first.seq, first.hash);
      return { ok: true, opened: first };
    }
    const result = await this.#db.transaction(async (tx): Promise<OpenSessionResult> => {
      const keys = [`policy|${limits.policy}`];
      if (limits.repository !== null) keys.push(`repository|${limits.repository}`);
      await tx.query(SQL.lockLimitKeys, [keys]);
      // READ COMMITTED: this statement's snapshot starts after the lock, so it sees every session
      // committed by an opening that held the lock before
      const live = (
        await tx.query<{ repository: number; policy: number }>(SQL.countLiveSessions, [
          session.created_at,
          limits.repository,
          limits.policy,
        ])
      ).rows[0]!;
      if (limits.repository !== null && live.repository >= limits.per_repository)
        return { ok: false, reason: 'limit', limit: 'sessions_per_repository', live: live.repository };
      if (limits.per_policy !== null && live.policy >= limits.per_policy)
        return { ok: false, reason: 'limit', limit: 'sessions_per_policy', live: live.policy };
      const { rowCount } = await tx.query(SQL.openSession, params);
      return rowCount === 0 ? { ok: false, reason: 'replay' } : { ok: true, opened: first };
    });
    if (result.ok) this.#remember(session.id, first.seq, first.hash);
    return result;
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
      this.#heads.delete(id);
      const head = (await tx.query<HeadRow>(SQL.endSession, [id, at, reason])).rows[0];
      if (!head) return null;
      const [last] = await appendAfter(tx, id, head, [final], at);
      // delivered to the other replicas' LISTEN when this commits (replicas.ts)
      await tx.query(SQL.notifySessionEnded, [JSON.stringify({ id, reason })]);
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
    this.#heads.delete(sessionId);
    const chained = await this.#db.transaction(async (tx) => {
      const head = (await tx.query<LockedHeadRow>(SQL.lockSessionHead, [sessionId])).rows[0];
      if (!head) throw new UnknownSessionError(sessionId);
      if (head.ended_at !== null) throw new SessionEndedError(sessionId);
      return appendAfter(tx, sessionId, head, events, now);
    });
    const last = chained.at(-1)!;
    this.#remember(sessionId, last.seq, last.hash);
    return chained;
  }

  appendEventBatches(batches: readonly EventBatch[]): Promise<EventBatchResult[]> {
    this.#checkOpen();
    for (const b of batches) checkEventTimes(b.events);
    const at = new Date().toISOString();
    return this.#track(
      this.#appendEventTexts(
        batches.map((b) => ({ sessionId: b.sessionId, events: b.events.map((e) => eventText(e, at)) })),
        at,
      ),
    );
  }

  /**
   * appendEventBatches with each event as eventText made it (audit/event-text.ts): the recorder's form,
   * chained without parsing. The texts are trusted to be eventText's (the broker's own recorder makes them).
   */
  appendEventTexts(batches: readonly EventTextBatch[]): Promise<EventBatchResult[]> {
    this.#checkOpen();
    return this.#track(this.#appendEventTexts(batches, new Date().toISOString()));
  }

  async #appendEventTexts(batches: readonly EventTextBatch[], at: string): Promise<EventBatchResult[]> {
    const results: EventBatchResult[] = batches.map(() => ({ ok: true, first_seq: 0, head: null }));
    // lock in a fixed order so replicas appending to the same sessions cannot deadlock
    const order = batches
      .map((_, i) => i)
      .filter((i) => batches[i]!.events.length > 0)
      .sort((a, b) => (batches[a]!.sessionId < batches[b]!.sessionId ? -1 : 1));
    const written = (i: number, chunk: ChunkText): void => {
      results[i] = {
        ok: true,
        first_seq: chunk.firstSeq,
        head: { seq: chunk.lastSeq, hash: chunk.lastHash },
      };
    };
    // Chain every batch whose session head is remembered; with transcript files, write all those
    // bodies in one write and one fsync before any row refers to them.
    const planned = new Map<number, PlannedChunk>();
    for (const i of order) {
      const { sessionId, events } = batches[i]!;
      const head = this.#heads.get(sessionId);
      if (head)
        planned.set(i, { sessionId, head, chunk: chainTexts(sessionId, head, events, at), ref: null });
    }
    this.#writeBodies([...planned.values()]);
    // One session with a known head (a busy job): one statement, its own transaction.
    if (order.length === 1 && planned.has(order[0]!)) {
      const i = order[0]!;
      if (await this.#appendIfHead(this.#driver, batches[i]!.sessionId, planned.get(i)!)) {
        const chunk = planned.get(i)!.chunk;
        written(i, chunk);
        this.#remember(batches[i]!.sessionId, chunk.lastSeq, chunk.lastHash);
        return results;
      }
      planned.delete(i);
    }
    const heads = new Map<string, ChunkText>();
    await this.#driver.transaction(async (tx) => {
      for (const i of order) {
        const { sessionId, events } = batches[i]!;
        const plan = planned.get(i);
        let chunk = plan && (await this.#appendIfHead(tx, sessionId, plan)) ? plan.chunk : null;
        if (!chunk) {
          const head = (await tx.query<LockedHeadRow>(SQL.lockSessionHead, [sessionId])).rows[0];
          if (!head) {
            results[i] = { ok: false, error: new UnknownSessionError(sessionId) };
            continue;
          }
          if (head.ended_at !== null) {
            results[i] = { ok: false, error: new SessionEndedError(sessionId) };
            continue;
          }
          const locked: PlannedChunk = {
            sessionId,
            head,
            chunk: chainTexts(sessionId, head, events, at),
            ref: null,
          };
          this.#writeBodies([locked]);
          await insertChunk(tx, sessionId, locked);
          chunk = locked.chunk;
        }
        written(i, chunk);
        heads.set(sessionId, chunk);
      }
    });
    // only what committed becomes the new hint
    for (const [sessionId, last] of heads) this.#remember(sessionId, last.lastSeq, last.lastHash);
    return results;
  }

  /** With transcript files: write the chunks' bodies (one write, one fsync) and note where each went. */
  #writeBodies(plans: readonly PlannedChunk[]): void {
    if (!this.#bodies || plans.length === 0) return;
    const refs = this.#bodies.append(
      plans.map(({ sessionId, chunk }) => ({
        sessionId,
        firstSeq: chunk.firstSeq,
        prevHash: chunk.prevHash,
        eventsJson: chunk.eventsJson,
      })),
    );
    plans.forEach((plan, k) => {
      plan.ref = refs[k]!;
    });
  }

  /**
   * Write a chunk chained after the remembered head only if that is still the head of a live session
   * (compare-and-set). False when the compare failed: the caller then locks and reads the head.
   */
  async #appendIfHead(db: SqlRunner, sessionId: string, plan: PlannedChunk): Promise<boolean> {
    const { rowCount } = await db.query(SQL.appendIfHead, [
      sessionId,
      ...chunkParams(plan.chunk, plan.ref),
      plan.chunk.lastHash,
      plan.head.head_seq,
      plan.head.head_hash,
    ]);
    if (rowCount === 1) return true;
    this.#heads.delete(sessionId);
    return false;
  }

  #remember(sessionId: string, seq: number, hash: string): void {
    // a bound, not an LRU: forgetting a hint only costs the next append its lock round trip
    if (this.#heads.size >= MAX_REMEMBERED_HEADS && !this.#heads.has(sessionId)) this.#heads.clear();
    this.#heads.set(sessionId, { head_seq: seq, head_hash: hash });
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
    const { rows } = await this.#db.query<EventChunkRow>(SQL.listEvents, [sessionId, after, limit]);
    const out: TranscriptEvent[] = [];
    for (const chunk of rows) {
      const events = parseChunk(sessionId, chunk, this.#bodies);
      // the first chunk may start at or before after_seq
      const skip = Math.max(0, after + 1 - chunk.first_seq);
      for (let i = skip; i < events.length; i++) {
        if (limit !== null && out.length >= limit) return out;
        out.push(events[i]!);
      }
    }
    return out;
  }

  async recordDenial(denial: DenialRecord): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.insertDenial, denialParams(denial));
  }

  async appendRecordingChunks(sessionId: string, chunks: readonly RecordingChunk[]): Promise<void> {
    this.#checkOpen();
    if (chunks.length === 0) return;
    await this.#db.transaction(async (tx) => {
      for (const c of chunks) {
        if (!Number.isSafeInteger(c.seq) || c.seq < 0)
          throw new RangeError('recording chunk seq must be >= 0');
        await tx.query(SQL.appendRecordingChunk, [sessionId, c.recording, c.seq, c.body]);
      }
    });
  }

  async listRecordingChunks(sessionId: string, recording?: string): Promise<RecordingChunk[]> {
    this.#checkOpen();
    const { rows } = await this.#db.query<RecordingChunk>(SQL.listRecordingChunks, [sessionId]);
    return recording === undefined ? rows : rows.filter((r) => r.recording === recording);
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

  async claimOnce(key: string, expires_at: Date): Promise<boolean> {
    this.#checkOpen();
    const { rowCount } = await this.#db.query(SQL.claimOnce, [key, checkedDate(expires_at, 'expires_at')]);
    return rowCount === 1;
  }

  async readExport(after: ExportPosition, limit: number): Promise<ExportBatch> {
    this.#checkOpen();
    const max = checkedLimit(limit, null, 'readExport limit') ?? 1000;
    const [cx, cs, cq] = after.chunks;
    const [dx, di] = after.denials;
    // two statements, not one transaction: each reads only rows older than its own snapshot's xmin
    const chunks = await this.#db.query<ExportChunkRow>(SQL.exportChunks, [cx, cs, cq, max]);
    const denials = await this.#db.query<ExportDenialRow>(SQL.exportDenials, [dx, di, max]);
    const events: ExportBatch['events'] = [];
    for (const row of chunks.rows) {
      const session = { id: row.session_id, issuer: row.issuer, policy: row.policy, identity: row.identity };
      for (const event of parseChunk(row.session_id, row, this.#bodies)) events.push({ session, event });
    }
    const lastChunk = chunks.rows.at(-1);
    const lastDenial = denials.rows.at(-1);
    return {
      events,
      denials: denials.rows.map((d) => ({ id: d.id, ...denialFromRow(d) })),
      position: {
        chunks: lastChunk ? [lastChunk.xid, lastChunk.session_id, lastChunk.first_seq] : after.chunks,
        denials: lastDenial ? [lastDenial.xid, lastDenial.id] : after.denials,
      },
      drained: chunks.rows.length < max && denials.rows.length < max,
    };
  }

  async claimExportLease(
    sink: string,
    holder: string,
    now: Date,
    until: Date,
    start: ExportPosition,
  ): Promise<ExportPosition | null> {
    this.#checkOpen();
    const { rows } = await this.#db.query<{ position: string }>(SQL.claimExportLease, [
      sink,
      JSON.stringify(start),
      holder,
      checkedDate(until, 'until'),
      checkedDate(now, 'now'),
    ]);
    return rows[0] ? (JSON.parse(rows[0].position) as ExportPosition) : null;
  }

  async saveExportPosition(
    sink: string,
    holder: string,
    position: ExportPosition,
    now: Date,
    until: Date,
  ): Promise<boolean> {
    this.#checkOpen();
    const { rowCount } = await this.#db.query(SQL.saveExportPosition, [
      sink,
      holder,
      JSON.stringify(position),
      checkedDate(until, 'until'),
      checkedDate(now, 'now'),
    ]);
    return rowCount === 1;
  }

  async releaseExportLease(sink: string, holder: string, now: Date): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.releaseExportLease, [sink, holder, checkedDate(now, 'now')]);
  }

  async listExportPositions(): Promise<ExportCursorRow[]> {
    this.#checkOpen();
    const { rows } = await this.#db.query<Omit<ExportCursorRow, 'position'> & { position: string }>(
      SQL.listExportPositions,
      [],
    );
    return rows.map((r) => ({ ...r, position: JSON.parse(r.position) as ExportPosition }));
  }

  async listChainHeads(): Promise<ChainHead[]> {
    this.#checkOpen();
    return (await this.#db.query<ChainHead>(SQL.listChainHeads, [])).rows;
  }

  async listPrunedSince(since: Date): Promise<ChainHead[]> {
    this.#checkOpen();
    return (await this.#db.query<ChainHead>(SQL.listPrunedSince, [checkedDate(since, 'since')])).rows;
  }

  async insertCheckpoint(cp: CheckpointRow): Promise<boolean> {
    this.#checkOpen();
    const { rowCount } = await this.#db.query(SQL.insertCheckpoint, [
      cp.seq,
      checkedDate(cp.at, 'checkpoint at'),
      cp.body,
      cp.signature,
      cp.key_id,
    ]);
    return rowCount === 1;
  }

  async latestCheckpoint(): Promise<CheckpointRow | null> {
    this.#checkOpen();
    return (await this.#db.query<CheckpointRow>(SQL.latestCheckpoint, [])).rows[0] ?? null;
  }

  async listCheckpoints(afterSeq: number, limit: number): Promise<CheckpointRow[]> {
    this.#checkOpen();
    const max = checkedLimit(limit, null, 'listCheckpoints limit') ?? 100;
    return (await this.#db.query<CheckpointRow>(SQL.listCheckpoints, [afterSeq, max])).rows;
  }

  async pruneBefore(
    cutoff: Date,
    now: Date,
    sinks: readonly string[],
    limit: number,
  ): Promise<{ sessions: number; denials: number; checkpoints: number }> {
    this.#checkOpen();
    checkedDate(cutoff, 'cutoff');
    const max = checkedLimit(limit, null, 'pruneBefore limit') ?? 1000;
    const names = [...sinks];
    const sessions = (await this.#db.query(SQL.pruneSessions, [cutoff, checkedDate(now, 'now'), names, max]))
      .rowCount;
    const denials = (await this.#db.query(SQL.pruneDenials, [cutoff, names, max])).rowCount;
    const checkpoints = (await this.#db.query(SQL.pruneCheckpoints, [cutoff])).rowCount;
    return { sessions, denials, checkpoints };
  }

  async heartbeat(replica: string, now: Date): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.heartbeat, [replica, checkedDate(now, 'now')]);
  }

  async removeReplica(replica: string): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.removeReplica, [replica]);
  }

  async addLiveConnection(row: LiveConnectionRow): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.addLiveConnection, [
      row.conn_id,
      row.session_id,
      row.replica,
      row.target,
      checkedDate(row.opened_at, 'opened_at'),
    ]);
  }

  async removeLiveConnection(connId: string): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.removeLiveConnection, [connId]);
  }

  async claimLostConnections(staleBefore: Date, self: string, limit: number): Promise<LiveConnectionRow[]> {
    this.#checkOpen();
    const max = checkedLimit(limit, null, 'claimLostConnections limit') ?? 100;
    return (
      await this.#db.query<LiveConnectionRow>(SQL.claimLostConnections, [
        checkedDate(staleBefore, 'staleBefore'),
        self,
        max,
      ])
    ).rows;
  }

  async pruneReplicas(before: Date): Promise<number> {
    this.#checkOpen();
    return (await this.#db.query(SQL.pruneReplicas, [checkedDate(before, 'before')])).rowCount;
  }

  async listEndedSince(since: Date): Promise<{ id: string; end_reason: string }[]> {
    this.#checkOpen();
    return (
      await this.#db.query<{ id: string; end_reason: string }>(SQL.endedSince, [checkedDate(since, 'since')])
    ).rows;
  }

  async insertApproval(a: PendingApproval): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.insertApproval, [
      a.id,
      a.session_id,
      a.state,
      checkedDate(new Date(a.requested_at), 'requested_at'),
      checkedDate(new Date(a.expires_at), 'expires_at'),
      JSON.stringify(a),
    ]);
  }

  async getApproval(id: string): Promise<{ approval: PendingApproval; version: number } | null> {
    this.#checkOpen();
    const { rows } = await this.#db.query<{ version: number; body: string }>(SQL.getApproval, [id]);
    const row = rows[0];
    return row ? { approval: JSON.parse(row.body) as PendingApproval, version: row.version } : null;
  }

  async listApprovals(
    filter: { state?: ApprovalState; session_id?: string; limit?: number } = {},
  ): Promise<PendingApproval[]> {
    this.#checkOpen();
    const { rows } = await this.#db.query<{ body: string }>(SQL.listApprovals, [
      filter.state ?? null,
      filter.session_id ?? null,
      Math.min(checkedLimit(filter.limit, 100, 'limit') ?? 100, 1000),
    ]);
    return rows.map((r) => JSON.parse(r.body) as PendingApproval);
  }

  async updateApproval(a: PendingApproval, version: number): Promise<boolean> {
    this.#checkOpen();
    const { rows } = await this.#db.query(SQL.updateApproval, [a.id, version, a.state, JSON.stringify(a)]);
    return rows.length === 1;
  }

  async settleSetting(key: string, value: string): Promise<string> {
    this.#checkOpen();
    const { rows } = await this.#db.query<{ value: string }>(SQL.putSettingIfAbsent, [key, value]);
    return rows[0]!.value;
  }

  async countRate(key: string, windowStart: Date): Promise<number> {
    this.#checkOpen();
    const { rows } = await this.#db.query<{ count: number }>(SQL.countRate, [
      key,
      checkedDate(windowStart, 'windowStart'),
    ]);
    return rows[0]!.count;
  }

  async pruneRates(before: Date): Promise<number> {
    this.#checkOpen();
    return (await this.#db.query(SQL.pruneRates, [checkedDate(before, 'before')])).rowCount;
  }

  async listActiveByRun(
    repositoryId: string,
    runId: string,
    runAttempt: string | null,
    now: Date,
  ): Promise<string[]> {
    this.#checkOpen();
    const { rows } = await this.#db.query<{ id: string }>(SQL.listActiveByRun, [
      repositoryId,
      runId,
      runAttempt,
      checkedDate(now, 'now'),
    ]);
    return rows.map((r) => r.id);
  }

  async ping(): Promise<void> {
    this.#checkOpen();
    await this.#db.query(SQL.ping, []);
  }

  /** Refuses new calls, waits for those in flight, then releases the database. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
      try {
        await this.#driver.close();
      } finally {
        this.#bodies?.close();
      }
    })();
    return this.#closing;
  }

  #checkOpen(): void {
    if (this.#closing) throw new StoreClosedError();
  }
}

interface ExportChunkRow extends EventChunkRow {
  xid: string;
  session_id: string;
  last_seq: number;
  issuer: string;
  policy: string;
  identity: Record<string, unknown>;
}

interface ExportDenialRow extends DenialRow {
  xid: string;
  id: string;
}

/** A chunk chained after `head`, and where its body was written (transcript files) or null (in the row). */
interface PlannedChunk {
  sessionId: string;
  head: HeadRow;
  chunk: ChunkText;
  ref: ChunkBodyRef | null;
}

/** Insert a chunk and move the head; inside the caller's transaction, which holds the row lock. */
async function insertChunk(tx: SqlRunner, sessionId: string, chunk: PlannedChunk): Promise<void> {
  await tx.query(SQL.appendEvents, [sessionId, ...chunkParams(chunk.chunk, chunk.ref), chunk.chunk.lastHash]);
}

/** Chain `events` after `head`, insert them and move the head; inside the caller's transaction, which holds the row lock. */
async function appendAfter(
  tx: SqlRunner,
  sessionId: string,
  head: HeadRow,
  events: readonly NewEvent[],
  now: Date | string,
): Promise<TranscriptEvent[]> {
  const chained = chainAfter(sessionId, head, events, typeof now === 'string' ? now : now.toISOString());
  await insertChunk(tx, sessionId, { sessionId, head, chunk: chunkOfEvents(chained), ref: null });
  return chained;
}

function chainAfter(
  sessionId: string,
  head: HeadRow,
  events: readonly NewEvent[],
  at: string,
): TranscriptEvent[] {
  let prev: Pick<TranscriptEvent, 'seq' | 'hash'> = { seq: head.head_seq, hash: head.head_hash };
  return events.map((ev) => {
    const e = chainEvent(prev, sessionId, ev, at);
    prev = e;
    return e;
  });
}

/** Chain event texts (eventText) after `head`: the chunk to store. */
function chainTexts(sessionId: string, head: HeadRow, texts: readonly string[], at: string): ChunkText {
  let prev: Pick<TranscriptEvent, 'seq' | 'hash'> = { seq: head.head_seq, hash: head.head_hash };
  let eventsJson = '[';
  let prevHash = '';
  for (let k = 0; k < texts.length; k++) {
    const e = chainEventText(prev, sessionId, texts[k]!, at);
    if (k === 0) prevHash = e.prev_hash;
    else eventsJson += ',';
    eventsJson += e.body;
    prev = e;
  }
  return {
    firstSeq: head.head_seq + 1,
    lastSeq: prev.seq,
    prevHash,
    lastHash: prev.hash,
    eventsJson: `${eventsJson}]`,
  };
}

/** A stored chunk's events. A chunk that is not valid JSON is damage to report, not to skip. */
function parseChunk(sessionId: string, chunk: EventChunkRow, bodies: ChunkFile | null): TranscriptEvent[] {
  if (chunk.events === null) {
    if (chunk.body_segment === null || chunk.body_offset === null || chunk.body_length === null)
      throw new Error(`transcript of ${sessionId}: the chunk at seq ${chunk.first_seq} has no body`);
    if (!bodies)
      throw new Error(
        `transcript of ${sessionId}: the chunk at seq ${chunk.first_seq} is in a transcript file, and this store has none`,
      );
    const ref = { segment: chunk.body_segment, offset: chunk.body_offset, length: chunk.body_length };
    return restoreChunk(
      sessionId,
      chunk.first_seq,
      chunk.prev_hash,
      bodies.read(ref, sessionId, chunk.first_seq),
    );
  }
  let events: unknown;
  try {
    events = JSON.parse(chunk.events);
  } catch (err) {
    throw new Error(
      `transcript of ${sessionId}: the chunk at seq ${chunk.first_seq} is not valid JSON (${(err as Error).message})`,
      { cause: err },
    );
  }
  return restoreChunk(sessionId, chunk.first_seq, chunk.prev_hash, events);
}

/** A caller-supplied `at` must be a time PostgreSQL reads the same way (ISO-8601). */
function checkEventTimes(events: readonly NewEvent[]): void {
  for (const e of events) {
    if (e.at !== undefined && Number.isNaN(Date.parse(e.at))) {
      throw new TypeError(`event ${e.kind}: at is not an ISO-8601 time`);
    }
  }
}
