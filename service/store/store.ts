// One Store interface; two implementations (embedded PGlite, PostgreSQL via pg) share the SQL migrations.
import type { NewEvent, TranscriptEvent } from '../audit/event.js';
import type { ApprovalState, PendingApproval } from '../approvals/types.js';
import type { SessionRecord } from '../sessions/types.js';

export interface TokenUse {
  /** the OIDC token's `iss` + `jti`, or a SHA-256 of the whole token when it has no jti */
  key: string;
  /** when the token itself expires; the row may be pruned after that */
  expires_at: Date;
}

export interface DenialRecord {
  at: Date;
  /** e.g. 'token.replayed', 'token.invalid', 'policy.no_match' */
  kind: string;
  reasons: string[];
  /** non-secret context: issuer, repository, run_id, client address */
  detail: Record<string, unknown>;
}

/**
 * limits.sessions_per_repository / sessions_per_policy, checked by openSession in the same transaction as
 * the insert, under advisory locks on the repository's and the policy's keys: requests racing at the
 * limit, on any replica sharing the store, are serialised, so the count of live sessions never exceeds it.
 */
export interface SessionLimits {
  /** the session's repository claim; null: no per-repository limit applies */
  repository: string | null;
  per_repository: number;
  policy: string;
  /** null: no per-policy limit */
  per_policy: number | null;
}

export type OpenSessionResult =
  | { ok: true; opened: TranscriptEvent }
  | { ok: false; reason: 'replay' }
  | { ok: false; reason: 'limit'; limit: 'sessions_per_repository' | 'sessions_per_policy'; live: number };

/** A session's events as eventText made them (audit/event-text.ts), in order. */
export interface EventTextBatch {
  sessionId: string;
  events: readonly string[];
}

export interface EventBatch {
  sessionId: string;
  events: NewEvent[];
}

/** A written batch reports where it landed (seqs first_seq..head.seq), not the events themselves. */
export type EventBatchResult =
  { ok: true; first_seq: number; head: { seq: number; hash: string } | null } | { ok: false; error: Error };

/** One chunk of a session recording (audit/asciicast.ts writes them). */
export interface RecordingChunk {
  /** the recording's id within the session (named by its transcript event) */
  recording: string;
  /** 0, 1, 2, … per recording */
  seq: number;
  /** asciicast v2 text: the header line (seq 0) and event lines, each ending in a newline */
  body: string;
}

/**
 * Where an audit export has delivered up to: the last chunk (its transaction id, session, first seq) and
 * the last denial (transaction id, row id) it took. Opaque to everyone but the store; JSON-safe.
 */
export interface ExportPosition {
  chunks: [xid: string, sessionId: string, firstSeq: number];
  denials: [xid: string, id: string];
}

/** The start of everything: a new sink's position. */
export const EXPORT_START: ExportPosition = { chunks: ['0', '', 0], denials: ['0', '0'] };

/** The session an exported event belongs to, as a SIEM needs it without a join. */
export interface ExportSession {
  id: string;
  issuer: string;
  policy: string;
  /** the token's reader-facing claims (repository, workflow, run_id, actor, sha, …) */
  identity: Record<string, unknown>;
}

export interface ExportBatch {
  events: { session: ExportSession; event: TranscriptEvent }[];
  denials: (DenialRecord & { id: string })[];
  /** the position after this batch (unchanged when it is empty) */
  position: ExportPosition;
  /** fewer rows than the limit: nothing more is ready to export right now */
  drained: boolean;
}

export interface ExportCursorRow {
  sink: string;
  position: ExportPosition;
  holder: string;
  lease_until: Date;
  updated_at: Date;
}

/** A session's transcript head, as a checkpoint lists it. */
export interface ChainHead {
  id: string;
  head_seq: number;
  head_hash: string;
}

/** A signed checkpoint as stored (audit/checkpoint.ts makes and checks them). */
export interface CheckpointRow {
  seq: number;
  at: Date;
  /** the signed text (canonical JSON) */
  body: string;
  /** base64 Ed25519 signature over body */
  signature: string;
  key_id: string;
}

/** A gateway connection held by a replica (replicas.ts). */
export interface LiveConnectionRow {
  conn_id: string;
  session_id: string;
  replica: string;
  target: string | null;
  opened_at: Date;
}

export interface Store {
  readonly kind: 'embedded' | 'postgres';
  /** Apply the shared migrations (idempotent). */
  migrate(): Promise<void>;
  /**
   * In one transaction: claim the token (single use), insert the session, append its first event.
   * Durable when the promise resolves. A token key already claimed gives {ok:false, reason:'replay'}
   * and writes nothing else.
   */
  /**
   * Claim the token, insert the session and its first event, atomically. With `limits`, first count the
   * live (not ended, not expired) sessions of its repository and policy under advisory locks, and refuse
   * (reason 'limit') at the limit.
   */
  openSession(
    session: SessionRecord,
    opened: NewEvent,
    token: TokenUse,
    limits?: SessionLimits,
  ): Promise<OpenSessionResult>;
  getSession(id: string): Promise<SessionRecord | null>;
  /** Newest first. `active_at`: only sessions neither ended nor expired at that time. */
  listSessions(filter?: { active_at?: Date; limit?: number }): Promise<SessionRecord[]>;
  /**
   * End a session once: set ended_at/end_reason if still null and append `final` as its last event,
   * in one transaction. Returns the appended event, or null when the session was already ended or is unknown.
   */
  endSession(id: string, at: Date, reason: string, final: NewEvent): Promise<TranscriptEvent | null>;
  /** Sessions past expires_at that have not been ended yet (for the expiry sweeper). */
  listExpiredUnended(now: Date, limit?: number): Promise<SessionRecord[]>;
  /**
   * Append events in order, each chained after the session's current head, in one transaction
   * (serialised per session, also across broker replicas). Durable when the promise resolves.
   * Rejects with UnknownSessionError / SessionEndedError (./errors.js) for an unknown or ended session:
   * a transcript ends with endSession's final event.
   */
  appendEvents(sessionId: string, events: NewEvent[]): Promise<TranscriptEvent[]>;
  /**
   * appendEvents for several sessions in ONE transaction (one commit, one fsync): the recorder's group
   * commit across sessions. Sessions are locked in id order; an unknown or ended session fails only
   * its own batch (its result carries the error), the others are written.
   */
  appendEventBatches(batches: readonly EventBatch[]): Promise<EventBatchResult[]>;
  /**
   * appendEventBatches with each event already in the text form the store chains without parsing
   * (audit/event-text.ts eventText): the recorder's path. Optional; the recorder falls back to
   * appendEventBatches.
   */
  appendEventTexts?(batches: readonly EventTextBatch[]): Promise<EventBatchResult[]>;
  /** Ascending by seq. */
  listEvents(sessionId: string, opts?: { after_seq?: number; limit?: number }): Promise<TranscriptEvent[]>;
  recordDenial(denial: DenialRecord): Promise<void>;
  /**
   * Append recording chunks of a session, in one transaction; durable when the promise resolves.
   * Chunks of an unknown session are dropped (written nowhere).
   */
  appendRecordingChunks(sessionId: string, chunks: readonly RecordingChunk[]): Promise<void>;
  /** A session's recording chunks (of one recording, or all), by recording and seq. */
  listRecordingChunks(sessionId: string, recording?: string): Promise<RecordingChunk[]>;
  listDenials(limit?: number): Promise<DenialRecord[]>;
  /** Delete token-use rows whose tokens expired before `now`. */
  pruneTokenUses(now: Date): Promise<number>;
  /**
   * Claim a one-time key (a GitHub webhook's delivery id, `github-delivery:<id>`) in the token_uses table,
   * shared by every replica: true the first time, false for a key already claimed. Pruned after expiry.
   */
  claimOnce(key: string, expires_at: Date): Promise<boolean>;
  /**
   * Audit export: up to `limit` chunks (their events, each with its session) and up to `limit` denials
   * after `after`, in the order their transactions are known to be over, so a reader that saves the
   * returned position never skips a row that commits later.
   */
  readExport(after: ExportPosition, limit: number): Promise<ExportBatch>;
  /**
   * Take or renew a sink's lease until `until` (one replica exports each sink); a sink seen for the first
   * time starts at `start`. Returns the sink's saved position, or null while another holder's lease runs.
   */
  claimExportLease(
    sink: string,
    holder: string,
    now: Date,
    until: Date,
    start: ExportPosition,
  ): Promise<ExportPosition | null>;
  /** Save a sink's position (and renew its lease) if `holder` still holds it; false when it does not. */
  saveExportPosition(
    sink: string,
    holder: string,
    position: ExportPosition,
    now: Date,
    until: Date,
  ): Promise<boolean>;
  /** Give a held lease up (a replica shutting down), so another replica need not wait for it to run out. */
  releaseExportLease(sink: string, holder: string, now: Date): Promise<void>;
  listExportPositions(): Promise<ExportCursorRow[]>;
  /** Every session's transcript head, by id. */
  listChainHeads(): Promise<ChainHead[]>;
  /** Sessions retention removed after `since` (with their last head). */
  listPrunedSince(since: Date): Promise<ChainHead[]>;
  /** Store a checkpoint; false when one with its seq exists already (another writer was first). */
  insertCheckpoint(cp: CheckpointRow): Promise<boolean>;
  latestCheckpoint(): Promise<CheckpointRow | null>;
  /** Ascending by seq. */
  listCheckpoints(afterSeq: number, limit: number): Promise<CheckpointRow[]>;
  /**
   * Retention: delete up to `limit` sessions (with their transcripts) that ended before `cutoff` and up
   * to `limit` denials recorded before it, in each case only what every sink named in `sinks` has already
   * exported; and checkpoints older than `cutoff` but the latest. Pruned sessions are noted (with their
   * last head) for the next checkpoint.
   */
  pruneBefore(
    cutoff: Date,
    now: Date,
    sinks: readonly string[],
    limit: number,
  ): Promise<{ sessions: number; denials: number; checkpoints: number }>;
  /** A replica is alive (insert or refresh its heartbeat). */
  heartbeat(replica: string, now: Date): Promise<void>;
  /** A replica leaves cleanly. */
  removeReplica(replica: string): Promise<void>;
  addLiveConnection(row: LiveConnectionRow): Promise<void>;
  removeLiveConnection(connId: string): Promise<void>;
  /**
   * Take (and remove) up to `limit` connections held by replicas other than `self` whose heartbeat is
   * older than `staleBefore` or that are gone; each connection goes to one caller only.
   */
  claimLostConnections(staleBefore: Date, self: string, limit: number): Promise<LiveConnectionRow[]>;
  /** Forget replicas silent since before `before`. */
  pruneReplicas(before: Date): Promise<number>;
  /** Sessions ended after `since` (the cross-replica revocation backstop). */
  listEndedSince(since: Date): Promise<{ id: string; end_reason: string }[]>;
  /** Store `value` under `key` unless a value is there; returns the value stored (the first writer's). */
  settleSetting(key: string, value: string): Promise<string>;
  /** Count one request of `key` in the window starting at `windowStart`; returns the count so far. */
  countRate(key: string, windowStart: Date): Promise<number>;
  pruneRates(before: Date): Promise<number>;
  /** Ids of the live sessions of one workflow run (attempt null: any attempt), by their token's claims. */
  listActiveByRun(
    repositoryId: string,
    runId: string,
    runAttempt: string | null,
    now: Date,
  ): Promise<string[]>;
  /** A held operation (service/approvals/), at version 1. */
  insertApproval(approval: PendingApproval): Promise<void>;
  /** An approval and the version it is at (null: unknown). */
  getApproval(id: string): Promise<{ approval: PendingApproval; version: number } | null>;
  /** Newest first. */
  listApprovals(filter?: {
    state?: ApprovalState;
    session_id?: string;
    limit?: number;
  }): Promise<PendingApproval[]>;
  /**
   * Write `approval` if the stored one is still at `version` (compare and set); false when another
   * writer was first. A change is announced to every replica (NOTIFY hoop_approval_changed, payload: id).
   */
  updateApproval(approval: PendingApproval, version: number): Promise<boolean>;
  /** Cheap round trip, for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
