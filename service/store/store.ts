// One Store interface; two implementations (embedded PGlite, PostgreSQL via pg) share the SQL migrations.
import type { NewEvent, TranscriptEvent } from '../audit/event.js';
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

export type OpenSessionResult = { ok: true; opened: TranscriptEvent } | { ok: false; reason: 'replay' };

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

export interface Store {
  readonly kind: 'embedded' | 'postgres';
  /** Apply the shared migrations (idempotent). */
  migrate(): Promise<void>;
  /**
   * In one transaction: claim the token (single use), insert the session, append its first event.
   * Durable when the promise resolves. A token key already claimed gives {ok:false, reason:'replay'}
   * and writes nothing else.
   */
  openSession(session: SessionRecord, opened: NewEvent, token: TokenUse): Promise<OpenSessionResult>;
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
  /** Cheap round trip, for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
