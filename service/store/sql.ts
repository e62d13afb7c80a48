// The SQL both stores run, written once, and the mapping between rows and the Store's types.
// PGlite and PostgreSQL speak the same dialect and both take `$n` parameters, so the embedded and the
// PostgreSQL store differ only in their driver (how a statement reaches the database).
import type { TranscriptEvent } from '../audit/event.js';
import type { SessionRecord } from '../sessions/types.js';
import type { DenialRecord } from './store.js';

/** A parameterised statement; `name` lets drivers that support it prepare the statement once per connection. */
export interface Statement {
  readonly name: string;
  readonly text: string;
  /**
   * The statement returns no rows and its parameters are strings, numbers or null: a driver may run it
   * on a leaner path that reports only the row count (the embedded store's transcript appends do).
   */
  readonly rowless?: true;
}

export interface SqlResult<Row> {
  rows: Row[];
  /** rows inserted, updated, deleted or returned */
  rowCount: number;
}

/** What a transaction (or the whole database) can run. */
export interface SqlRunner {
  query<Row>(statement: Statement, params: readonly unknown[]): Promise<SqlResult<Row>>;
  /** A script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

/** The only part that differs between the embedded and the PostgreSQL store. */
export interface SqlDriver extends SqlRunner {
  readonly kind: 'embedded' | 'postgres';
  /** Run `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function statement(name: string, text: string, opts: { rowless?: true } = {}): Statement {
  return { name: `hoop_${name}`, text, ...opts };
}

const SESSION_COLUMNS = `id, secret_hash, scram_verifier, issuer, identity, claims, policy, grants, ssh_public_key,
  created_at, expires_at, ended_at, end_reason`;

export const SQL = {
  ping: statement('ping', 'SELECT 1 AS ok'),

  // One statement, so atomic without BEGIN/COMMIT and one round trip: claim the token; only when the claim
  // inserted a row (the key was unused) insert the session; only when the session was inserted, its first
  // event. A replay inserts nothing and reports 0 rows. Racing claims of one key wait on the primary key,
  // and all but the first then find it taken.
  openSession: statement(
    'open_session',
    `WITH claim AS (
       INSERT INTO token_uses (key, expires_at) VALUES ($1, $2)
       ON CONFLICT (key) DO NOTHING
       RETURNING key
     ), session AS (
       INSERT INTO sessions (${SESSION_COLUMNS}, head_seq, head_hash)
       SELECT $3::text, $4::text, $5::text, $6::text, $7::json, $8::json, $9::text, $10::json, $11::text,
              $12::timestamptz, $13::timestamptz, $14::timestamptz, $15::text, $16::integer, $17::text
       FROM claim
       RETURNING id
     )
     INSERT INTO event_chunks (session_id, first_seq, last_seq, events, prev_hash, body_segment, body_offset,
                               body_length)
     SELECT session.id, $18::integer, $19::integer, $20::text, $21::text, $22::integer, $23::integer,
            $24::integer
     FROM session`,
  ),
  // Serialises session openings that count against the same limits (repository, policy), across every
  // connection and replica: transaction-level advisory locks, taken in one order (by key hash) so two
  // openings never wait on each other crosswise. Released at COMMIT/ROLLBACK.
  lockLimitKeys: statement(
    'lock_limit_keys',
    `SELECT count(pg_advisory_xact_lock(k))::int AS locked
     FROM (SELECT DISTINCT hashtextextended(key, 0) AS k FROM unnest($1::text[]) AS key ORDER BY 1) AS keys`,
  ),
  // Live sessions (not ended, not expired at $1) of repository $2 and of policy $3. Not bounded by
  // created_at, so a session opened by a replica whose clock runs ahead still counts.
  countLiveSessions: statement(
    'count_live_sessions',
    `SELECT count(*) FILTER (WHERE $2::text IS NOT NULL AND identity->>'repository' = $2::text)::int AS repository,
            count(*) FILTER (WHERE policy = $3::text)::int AS policy
     FROM sessions WHERE ended_at IS NULL AND expires_at > $1`,
  ),
  pruneTokenUses: statement('prune_token_uses', 'DELETE FROM token_uses WHERE expires_at < $1'),
  claimOnce: statement(
    'claim_once',
    'INSERT INTO token_uses (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
  ),

  getSession: statement('get_session', `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1`),
  listSessions: statement(
    'list_sessions',
    `SELECT ${SESSION_COLUMNS} FROM sessions ORDER BY created_at DESC, id DESC LIMIT $1`,
  ),
  // Every active session has expires_at > $1, and only recent sessions do: the expires_at index finds them.
  listActiveSessions: statement(
    'list_active_sessions',
    `SELECT ${SESSION_COLUMNS} FROM sessions
     WHERE expires_at > $1 AND created_at <= $1 AND (ended_at IS NULL OR ended_at > $1)
     ORDER BY created_at DESC, id DESC LIMIT $2`,
  ),
  listExpiredUnended: statement(
    'list_expired_unended',
    `SELECT ${SESSION_COLUMNS} FROM sessions
     WHERE ended_at IS NULL AND expires_at <= $1
     ORDER BY expires_at, id LIMIT $2`,
  ),
  // The row lock serialises appends to one session, also across broker replicas sharing PostgreSQL.
  lockSessionHead: statement(
    'lock_session_head',
    'SELECT head_seq, head_hash, ended_at FROM sessions WHERE id = $1 FOR UPDATE',
  ),
  endSession: statement(
    'end_session',
    `UPDATE sessions SET ended_at = $2, end_reason = $3
     WHERE id = $1 AND ended_at IS NULL
     RETURNING head_seq, head_hash`,
  ),

  // A chunk of events and the new head in one statement; the caller holds the session row lock
  // (lockSessionHead or endSession).
  appendEvents: statement(
    'append_events',
    `WITH appended AS (
       INSERT INTO event_chunks (session_id, first_seq, last_seq, events, prev_hash, body_segment, body_offset,
                                 body_length)
       VALUES ($1, $2::integer, $3::integer, $4::text, $5::text, $6::integer, $7::integer, $8::integer)
     )
     UPDATE sessions SET head_seq = $3, head_hash = $9 WHERE id = $1`,
    { rowless: true },
  ),
  // The same, as one compare-and-set statement: written only if ($10, $11) is still the head of a session
  // that has not ended; otherwise nothing is written and the row count is 0. The UPDATE takes the row
  // lock, so a concurrent append (another replica) is waited for and then fails the compare.
  appendIfHead: statement(
    'append_if_head',
    `WITH moved AS (
       UPDATE sessions SET head_seq = $3::integer, head_hash = $9
       WHERE id = $1 AND head_seq = $10 AND head_hash = $11 AND ended_at IS NULL
       RETURNING id
     )
     INSERT INTO event_chunks (session_id, first_seq, last_seq, events, prev_hash, body_segment, body_offset,
                               body_length)
     SELECT id, $2::integer, $3::integer, $4::text, $5::text, $6::integer, $7::integer, $8::integer
     FROM moved`,
    { rowless: true },
  ),
  // Every chunk holds at least one event, so `limit` chunks past after_seq hold at least `limit` events.
  listEvents: statement(
    'list_events',
    `SELECT first_seq, events, prev_hash, body_segment, body_offset, body_length
     FROM event_chunks WHERE session_id = $1 AND last_seq > $2
     ORDER BY first_seq LIMIT $3`,
  ),

  insertDenial: statement(
    'insert_denial',
    'INSERT INTO denials (at, kind, reasons, detail) VALUES ($1, $2, $3::json, $4::json)',
  ),
  listDenials: statement(
    'list_denials',
    'SELECT at, kind, reasons, detail FROM denials ORDER BY at DESC, id DESC LIMIT $1',
  ),

  // A chunk of a recording; appending to an ended session is refused like transcript appends.
  appendRecordingChunk: statement(
    'append_recording_chunk',
    `INSERT INTO recording_chunks (session_id, recording, seq, body)
     SELECT id, $2, $3::integer, $4 FROM sessions WHERE id = $1`,
    { rowless: true },
  ),
  listRecordingChunks: statement(
    'list_recording_chunks',
    `SELECT recording, seq, body FROM recording_chunks WHERE session_id = $1
     ORDER BY recording, seq`,
  ),
  // Audit export (migration 5): chunks and denials after a position, only those whose transaction is
  // older than every transaction still running. Row comparison keeps the order total.
  exportChunks: statement(
    'export_chunks',
    `SELECT c.export_xid::text AS xid, c.session_id, c.first_seq, c.last_seq, c.events, c.prev_hash,
            c.body_segment, c.body_offset, c.body_length, s.issuer, s.policy, s.identity
     FROM event_chunks c JOIN sessions s ON s.id = c.session_id
     WHERE c.export_xid < pg_snapshot_xmin(pg_current_snapshot())
       AND (c.export_xid, c.session_id, c.first_seq) > ($1::xid8, $2::text, $3::integer)
     ORDER BY c.export_xid, c.session_id, c.first_seq
     LIMIT $4`,
  ),
  exportDenials: statement(
    'export_denials',
    `SELECT export_xid::text AS xid, id::text AS id, at, kind, reasons, detail
     FROM denials
     WHERE export_xid < pg_snapshot_xmin(pg_current_snapshot())
       AND (export_xid, id) > ($1::xid8, $2::bigint)
     ORDER BY export_xid, id
     LIMIT $3`,
  ),
  // Take (or keep) a sink's lease: a new sink starts at $2; a held lease moves only to its holder or
  // once it has run out. No row returned: another replica holds it.
  claimExportLease: statement(
    'claim_export_lease',
    `INSERT INTO export_cursors (sink, position, holder, lease_until, updated_at)
     VALUES ($1, $2::json, $3, $4, $5)
     ON CONFLICT (sink) DO UPDATE SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until
       WHERE export_cursors.holder = EXCLUDED.holder OR export_cursors.lease_until < EXCLUDED.updated_at
     RETURNING position::text AS position`,
  ),
  saveExportPosition: statement(
    'save_export_position',
    `UPDATE export_cursors SET position = $3::json, lease_until = $4, updated_at = $5
     WHERE sink = $1 AND holder = $2`,
  ),
  releaseExportLease: statement(
    'release_export_lease',
    'UPDATE export_cursors SET lease_until = $3 WHERE sink = $1 AND holder = $2',
  ),
  listExportPositions: statement(
    'list_export_positions',
    'SELECT sink, position::text AS position, holder, lease_until, updated_at FROM export_cursors ORDER BY sink',
  ),

  // Signed checkpoints (migration 6)
  listChainHeads: statement('list_chain_heads', 'SELECT id, head_seq, head_hash FROM sessions ORDER BY id'),
  listPrunedSince: statement(
    'list_pruned_since',
    'SELECT id, head_seq, head_hash FROM pruned_sessions WHERE pruned_at > $1 ORDER BY id',
  ),
  insertCheckpoint: statement(
    'insert_checkpoint',
    `INSERT INTO checkpoints (seq, at, body, signature, key_id) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (seq) DO NOTHING`,
  ),
  latestCheckpoint: statement(
    'latest_checkpoint',
    'SELECT seq, at, body, signature, key_id FROM checkpoints ORDER BY seq DESC LIMIT 1',
  ),
  listCheckpoints: statement(
    'list_checkpoints',
    'SELECT seq, at, body, signature, key_id FROM checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2',
  ),

  // Retention: sessions ended (or expired) before $1 whose every chunk each of the named sinks ($3) has
  // exported, recorded as pruned (for the next checkpoint) and deleted with their chunks (cascade).
  // Nothing is pruned while one of the sinks has no position yet.
  pruneSessions: statement(
    'prune_sessions',
    `WITH cursors AS (
       SELECT (position->'chunks'->>0)::xid8 AS x, position->'chunks'->>1 AS s, (position->'chunks'->>2)::integer AS q
       FROM export_cursors WHERE sink = ANY($3::text[])
     ), doomed AS (
       SELECT id, head_seq, head_hash FROM sessions ss
       WHERE COALESCE(ended_at, expires_at) < $1
         AND (SELECT count(*) FROM cursors) = cardinality($3::text[])
         AND NOT EXISTS (
           SELECT 1 FROM event_chunks c, cursors k
           WHERE c.session_id = ss.id AND (c.export_xid, c.session_id, c.first_seq) > (k.x, k.s, k.q))
       ORDER BY id LIMIT $4
     ), recorded AS (
       INSERT INTO pruned_sessions (id, pruned_at, head_seq, head_hash)
       SELECT id, $2, head_seq, head_hash FROM doomed
       ON CONFLICT (id) DO NOTHING
     )
     DELETE FROM sessions WHERE id IN (SELECT id FROM doomed)`,
  ),
  pruneDenials: statement(
    'prune_denials',
    `WITH cursors AS (
       SELECT (position->'denials'->>0)::xid8 AS x, (position->'denials'->>1)::bigint AS i
       FROM export_cursors WHERE sink = ANY($2::text[])
     )
     DELETE FROM denials d
     WHERE d.id IN (
       SELECT id FROM denials dd
       WHERE dd.at < $1
         AND (SELECT count(*) FROM cursors) = cardinality($2::text[])
         AND NOT EXISTS (SELECT 1 FROM cursors k WHERE (dd.export_xid, dd.id) > (k.x, k.i))
       ORDER BY id LIMIT $3)`,
  ),
  // checkpoints older than $1, always keeping the latest (the next one links to it)
  pruneCheckpoints: statement(
    'prune_checkpoints',
    `DELETE FROM checkpoints WHERE at < $1 AND seq < (SELECT max(seq) FROM checkpoints)`,
  ),

  // Replicas (migration 7)
  heartbeat: statement(
    'heartbeat',
    `INSERT INTO replicas (id, started_at, heartbeat_at) VALUES ($1, $2, $2)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at`,
  ),
  removeReplica: statement('remove_replica', 'DELETE FROM replicas WHERE id = $1'),
  addLiveConnection: statement(
    'add_live_connection',
    `INSERT INTO live_connections (conn_id, session_id, replica, target, opened_at)
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $2)
     ON CONFLICT (conn_id) DO NOTHING`,
  ),
  removeLiveConnection: statement(
    'remove_live_connection',
    'DELETE FROM live_connections WHERE conn_id = $1',
  ),
  // Claim the connections of replicas whose heartbeat is older than $1 (or that are gone): each is
  // handed to exactly one claimer, which marks it lost.
  claimLostConnections: statement(
    'claim_lost_connections',
    `DELETE FROM live_connections WHERE conn_id IN (
       SELECT lc.conn_id FROM live_connections lc LEFT JOIN replicas r ON r.id = lc.replica
       WHERE (r.id IS NULL OR r.heartbeat_at < $1) AND lc.replica <> $2
       ORDER BY lc.conn_id LIMIT $3 FOR UPDATE OF lc SKIP LOCKED)
     RETURNING conn_id, session_id, replica, target, opened_at`,
  ),
  pruneReplicas: statement('prune_replicas', 'DELETE FROM replicas WHERE heartbeat_at < $1'),
  endedSince: statement(
    'ended_since',
    `SELECT id, end_reason FROM sessions WHERE ended_at IS NOT NULL AND ended_at > $1 ORDER BY ended_at LIMIT 1000`,
  ),
  insertApproval: statement(
    'insert_approval',
    `INSERT INTO approvals (id, session_id, state, requested_at, expires_at, version, body)
     VALUES ($1, $2, $3, $4, $5, 1, $6)`,
  ),
  getApproval: statement('get_approval', `SELECT version, body::text AS body FROM approvals WHERE id = $1`),
  listApprovals: statement(
    'list_approvals',
    `SELECT version, body::text AS body FROM approvals
      WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR session_id = $2)
      ORDER BY requested_at DESC LIMIT $3`,
  ),
  // written only over the version the change was made on; the replicas hear of it (LISTEN)
  updateApproval: statement(
    'update_approval',
    `WITH u AS (
       UPDATE approvals SET state = $3, version = version + 1, body = $4
        WHERE id = $1 AND version = $2 RETURNING id
     )
     SELECT pg_notify('hoop_approval_changed', id) AS notified FROM u`,
  ),
  notifySessionEnded: statement('notify_session_ended', "SELECT pg_notify('hoop_session_ended', $1)"),
  getSetting: statement('get_setting', 'SELECT value FROM broker_settings WHERE key = $1'),
  // first writer wins; everyone reads back the value that is stored
  putSettingIfAbsent: statement(
    'put_setting_if_absent',
    `WITH ins AS (INSERT INTO broker_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value)
     SELECT value FROM ins UNION ALL SELECT value FROM broker_settings WHERE key = $1 LIMIT 1`,
  ),
  countRate: statement(
    'count_rate',
    `INSERT INTO rate_windows (key, window_start, count) VALUES ($1, $2, 1)
     ON CONFLICT (key, window_start) DO UPDATE SET count = rate_windows.count + 1
     RETURNING count`,
  ),
  pruneRates: statement('prune_rates', 'DELETE FROM rate_windows WHERE window_start < $1'),
  // the sessions of one workflow run (a GitHub App webhook revokes them)
  listActiveByRun: statement(
    'list_active_by_run',
    `SELECT id FROM sessions
     WHERE ended_at IS NULL AND expires_at > $4
       AND identity->>'repository_id' = $1 AND identity->>'run_id' = $2
       AND ($3::text IS NULL OR identity->>'run_attempt' = $3)
     ORDER BY id LIMIT 1000`,
  ),
} as const;

/** A sessions row is the SessionRecord itself (json columns parse back to the same shapes). */
export type SessionRow = SessionRecord;

export interface HeadRow {
  head_seq: number;
  head_hash: string;
}

export interface LockedHeadRow extends HeadRow {
  ended_at: Date | null;
}

export interface EventChunkRow {
  first_seq: number;
  /** a JSON array of the chunk's events (see chunkParams); null when the body is in a transcript file */
  events: string | null;
  /** the first event's prev_hash; null for a chunk written before migration 3 (whole events) */
  prev_hash: string | null;
  /** where the body is in the embedded store's transcript files (chunk-file.ts), when events is null */
  body_segment: number | null;
  body_offset: number | null;
  body_length: number | null;
}

export interface DenialRow {
  at: Date;
  kind: string;
  reasons: string[];
  detail: Record<string, unknown>;
}

/** Parameters $3..$17 of SQL.openSession, in order. */
export function sessionParams(s: SessionRecord, head: HeadRow): unknown[] {
  return [
    s.id,
    s.secret_hash,
    s.scram_verifier,
    s.issuer,
    JSON.stringify(s.identity),
    JSON.stringify(s.claims),
    s.policy,
    JSON.stringify(s.grants),
    s.ssh_public_key,
    checkedDate(s.created_at, 'session.created_at'),
    checkedDate(s.expires_at, 'session.expires_at'),
    s.ended_at === null ? null : checkedDate(s.ended_at, 'session.ended_at'),
    s.end_reason,
    head.head_seq,
    head.head_hash,
  ];
}

export function sessionFromRow(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    secret_hash: row.secret_hash,
    scram_verifier: row.scram_verifier,
    issuer: row.issuer,
    identity: row.identity,
    claims: row.claims,
    policy: row.policy,
    grants: row.grants,
    ssh_public_key: row.ssh_public_key,
    created_at: row.created_at,
    expires_at: row.expires_at,
    ended_at: row.ended_at,
    end_reason: row.end_reason,
  };
}

/**
 * A chunk's events as stored: one JSON array (text) of each event without what the chunk's row already
 * says: session_id (a column), seq (first_seq + its index) and prev_hash (the row's prev_hash for the
 * first, the previous event's hash after that); restoreChunk puts them back. That is a quarter of a
 * statement event's bytes, and bytes are what an append costs. JSON.stringify's text parses back to an
 * identical object, so the hash re-verifies; and unlike jsonb it keeps `\u0000` and lone surrogates,
 * which a recorded statement or path may contain.
 */
export function chunkEventsJson(events: readonly TranscriptEvent[]): string {
  return JSON.stringify(events.map(({ session_id: _s, seq: _q, prev_hash: _p, ...body }) => body));
}

/** Where a chunk's body is, when it is not in the row (the embedded store's transcript files). */
export interface ChunkBodyRef {
  segment: number;
  offset: number;
  length: number;
}

/** A chained chunk ready to store: where it sits in its session's chain and its body (chunkEventsJson's form). */
export interface ChunkText {
  firstSeq: number;
  lastSeq: number;
  /** the first event's prev_hash */
  prevHash: string;
  /** the last event's hash: the session's new head */
  lastHash: string;
  eventsJson: string;
}

/** The ChunkText of chained events. */
export function chunkOfEvents(events: readonly TranscriptEvent[]): ChunkText {
  return {
    firstSeq: events[0]!.seq,
    lastSeq: events.at(-1)!.seq,
    prevHash: events[0]!.prev_hash,
    lastHash: events.at(-1)!.hash,
    eventsJson: chunkEventsJson(events),
  };
}

/**
 * Parameters of a chunk: first seq, last seq, the events' JSON or null when `ref` says where the body
 * was written instead, the first event's prev_hash, and the ref's segment, offset, length.
 */
export function chunkParams(
  chunk: ChunkText,
  ref: ChunkBodyRef | null = null,
): [number, number, string | null, string, number | null, number | null, number | null] {
  return [
    chunk.firstSeq,
    chunk.lastSeq,
    ref ? null : chunk.eventsJson,
    chunk.prevHash,
    ref?.segment ?? null,
    ref?.offset ?? null,
    ref?.length ?? null,
  ];
}

/** Keys in the order chainEvent writes them (sorted; hash last). */
const EVENT_KEY_ORDER = (a: string, b: string): number =>
  a === 'hash' ? 1 : b === 'hash' ? -1 : a < b ? -1 : a > b ? 1 : 0;

/**
 * A stored chunk's events as TranscriptEvents. `events` is what JSON.parse made of the chunk's text;
 * `prevHash` null means a chunk of whole events (written before migration 3), returned as stored.
 * A damaged chunk throws with the session and seq; a changed event is left for verifyChain to name.
 */
export function restoreChunk(
  sessionId: string,
  firstSeq: number,
  prevHash: string | null,
  events: unknown,
): TranscriptEvent[] {
  if (!Array.isArray(events) || events.length === 0)
    throw new Error(`transcript of ${sessionId}: the chunk at seq ${firstSeq} is not a non-empty array`);
  if (prevHash === null) return events as TranscriptEvent[];
  let prev = prevHash;
  return events.map((body: unknown, i) => {
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new Error(`transcript of ${sessionId}: event ${firstSeq + i} is not an object`);
    const whole: Record<string, unknown> = {
      ...(body as Record<string, unknown>),
      seq: firstSeq + i,
      session_id: sessionId,
      prev_hash: prev,
    };
    const ordered: Record<string, unknown> = {};
    for (const k of Object.keys(whole).sort(EVENT_KEY_ORDER)) ordered[k] = whole[k];
    prev = typeof ordered.hash === 'string' ? ordered.hash : '';
    return ordered as TranscriptEvent;
  });
}

export function denialParams(d: DenialRecord): unknown[] {
  return [checkedDate(d.at, 'denial.at'), d.kind, JSON.stringify(d.reasons), JSON.stringify(d.detail)];
}

export function denialFromRow(row: DenialRow): DenialRecord {
  return { at: row.at, kind: row.kind, reasons: row.reasons, detail: row.detail };
}

/** An Invalid Date would be stored as NULL or fail deep in a driver; say which field it was. */
export function checkedDate(d: Date, field: string): Date {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new TypeError(`${field} is not a valid Date`);
  return d;
}

/** A LIMIT value: a positive integer, or null for no limit. */
export function checkedLimit(
  limit: number | undefined,
  fallback: number | null,
  field: string,
): number | null {
  if (limit === undefined) return fallback;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`${field} must be a positive integer`);
  return limit;
}
