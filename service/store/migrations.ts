// The schema, as ordered migrations shared by the embedded (PGlite) and the PostgreSQL store, and the
// runner both use. Migrations are append-only: never edit one that has shipped, add the next version.
import type { SqlDriver, Statement } from './sql.js';

export interface Migration {
  /** strictly increasing, starting at 1 */
  version: number;
  name: string;
  /** one or more statements, run in the runner's transaction */
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sessions, events, token_uses, denials',
    sql: `
      -- Documents are json (verbatim text), not jsonb: jsonb refuses NUL (U+0000) and lone surrogates, which
      -- claims, recorded statements and denial details may contain; nothing queries inside them.
      CREATE TABLE sessions (
        id              text PRIMARY KEY,
        secret_hash     text NOT NULL,
        scram_verifier  text NOT NULL,
        issuer          text NOT NULL,
        identity        json NOT NULL,
        claims          json NOT NULL,
        policy          text NOT NULL,
        grants          json NOT NULL,
        ssh_public_key  text,
        created_at      timestamptz NOT NULL,
        expires_at      timestamptz NOT NULL,
        ended_at        timestamptz,
        end_reason      text,
        head_seq        integer NOT NULL CHECK (head_seq >= 0),
        head_hash       text NOT NULL,
        CHECK ((ended_at IS NULL) = (end_reason IS NULL))
      );
      -- newest-first listing
      CREATE INDEX sessions_created_at_idx ON sessions (created_at);
      -- active sessions: expires_at > now holds only for recent sessions
      CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
      -- the expiry sweeper: not ended yet, ordered by expiry
      CREATE INDEX sessions_unended_expiry_idx ON sessions (expires_at) WHERE ended_at IS NULL;

      CREATE TABLE events (
        session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq         integer NOT NULL CHECK (seq >= 1),
        at          timestamptz NOT NULL,
        kind        text NOT NULL,
        target      text,
        body        json NOT NULL,
        hash        text NOT NULL,
        prev_hash   text NOT NULL,
        PRIMARY KEY (session_id, seq)
      );

      CREATE TABLE token_uses (
        key         text PRIMARY KEY,
        expires_at  timestamptz NOT NULL
      );
      CREATE INDEX token_uses_expires_at_idx ON token_uses (expires_at);

      CREATE TABLE denials (
        id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at       timestamptz NOT NULL,
        kind     text NOT NULL,
        reasons  json NOT NULL,
        detail   json NOT NULL
      );
      CREATE INDEX denials_at_idx ON denials (at);
    `,
  },
  {
    version: 2,
    name: 'events stored in chunks',
    sql: `
      -- A transcript is stored as chunks: one row per append (a group commit writes one per session), its
      -- events a JSON array in seq order, each event as chained. A row per event cost 4-5x more per event
      -- to insert (PostgreSQL array parsing, one index entry each); nothing looks events up by anything
      -- but (session, seq). The array is text the broker wrote with JSON.stringify and parses itself:
      -- PostgreSQL's json input check cost a fifth of an append; events::json reads it in SQL.
      CREATE TABLE event_chunks (
        session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        first_seq   integer NOT NULL CHECK (first_seq >= 1),
        last_seq    integer NOT NULL CHECK (last_seq >= first_seq),
        events      text NOT NULL,
        PRIMARY KEY (session_id, first_seq)
      );
      INSERT INTO event_chunks (session_id, first_seq, last_seq, events)
        SELECT session_id, seq, seq, '[' || body::text || ']' FROM events;
      DROP TABLE events;
    `,
  },
  {
    version: 3,
    name: 'compact event chunks',
    sql: `
      -- From here on a chunk stores each event without session_id, seq and prev_hash, which the row
      -- gives (the session_id column; first_seq + the event's index; this column for the first event,
      -- the previous event's hash after that): a quarter fewer bytes per statement event, and an append
      -- costs the embedded store in proportion to its bytes. Chunks written before keep NULL here and
      -- their whole events; both read back the same (restoreChunk in sql.ts).
      ALTER TABLE event_chunks ADD COLUMN prev_hash text;
    `,
  },
  {
    version: 4,
    name: 'event chunk bodies in transcript files',
    sql: `
      -- The embedded store writes the bodies of the recorder's chunks to append-only files beside the
      -- database (chunk-file.ts says why) and keeps here where each one is. A chunk has its body in
      -- exactly one place: the events column, or a file (segment, byte offset, byte length).
      ALTER TABLE event_chunks ALTER COLUMN events DROP NOT NULL;
      ALTER TABLE event_chunks
        ADD COLUMN body_segment integer CHECK (body_segment >= 1),
        ADD COLUMN body_offset  integer CHECK (body_offset >= 0),
        ADD COLUMN body_length  integer CHECK (body_length >= 2),
        ADD CONSTRAINT event_chunks_one_body CHECK (
          (events IS NOT NULL AND body_segment IS NULL AND body_offset IS NULL AND body_length IS NULL) OR
          (events IS NULL AND body_segment IS NOT NULL AND body_offset IS NOT NULL AND body_length IS NOT NULL)
        );
    `,
  },
  {
    version: 5,
    name: 'audit export positions',
    sql: `
      -- The audit exporter reads chunks and denials in the order their transactions are known to be over:
      -- each row keeps the id of the transaction that wrote it, and a reader takes only rows whose
      -- transaction is older than its snapshot's xmin (every transaction before it has committed or rolled
      -- back, so no row can later appear behind the reader's position). xid8 does not wrap around.
      ALTER TABLE event_chunks ADD COLUMN export_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
      CREATE INDEX event_chunks_export_idx ON event_chunks (export_xid, session_id, first_seq);
      ALTER TABLE denials ADD COLUMN export_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
      CREATE INDEX denials_export_idx ON denials (export_xid, id);
      -- One row per configured sink: where it has delivered up to, and which replica holds its lease.
      CREATE TABLE export_cursors (
        sink         text PRIMARY KEY,
        position     json NOT NULL,
        holder       text NOT NULL,
        lease_until  timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL
      );
    `,
  },
  {
    version: 6,
    name: 'signed checkpoints, pruned sessions',
    sql: `
      -- A checkpoint is a signed list of every session's chain head (audit/checkpoint.ts). seq is the
      -- primary key and each body names its predecessor, so two writers cannot fork the sequence.
      CREATE TABLE checkpoints (
        seq        integer PRIMARY KEY CHECK (seq >= 1),
        at         timestamptz NOT NULL,
        body       text NOT NULL,
        signature  text NOT NULL,
        key_id     text NOT NULL
      );
      -- Sessions retention removed, with the head they had: the next checkpoint names them as pruned
      -- rather than missing, so a verifier can tell retention from deletion.
      CREATE TABLE pruned_sessions (
        id         text PRIMARY KEY,
        pruned_at  timestamptz NOT NULL,
        head_seq   integer NOT NULL,
        head_hash  text NOT NULL
      );
      CREATE INDEX pruned_sessions_at_idx ON pruned_sessions (pruned_at);
    `,
  },
  {
    version: 7,
    name: 'replicas, live connections, broker settings, rate windows',
    sql: `
      -- Each broker process sharing the store, with a heartbeat (replicas.ts). A replica whose heartbeat
      -- stopped died: its connections are marked lost in their transcripts.
      CREATE TABLE replicas (
        id            text PRIMARY KEY,
        started_at    timestamptz NOT NULL,
        heartbeat_at  timestamptz NOT NULL
      );
      -- Gateway connections open right now, and the replica that holds each.
      CREATE TABLE live_connections (
        conn_id     text PRIMARY KEY,
        session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        replica     text NOT NULL,
        target      text,
        opened_at   timestamptz NOT NULL
      );
      CREATE INDEX live_connections_replica_idx ON live_connections (replica);
      -- What replicas must agree on (e.g. the CA fingerprint the sessions hand out).
      CREATE TABLE broker_settings (
        key    text PRIMARY KEY,
        value  text NOT NULL
      );
      -- Fixed one-minute windows of requests per client key, counted across replicas.
      CREATE TABLE rate_windows (
        key           text NOT NULL,
        window_start  timestamptz NOT NULL,
        count         integer NOT NULL,
        PRIMARY KEY (key, window_start)
      );
      -- the revocation backstop reads sessions ended since its last look
      CREATE INDEX sessions_ended_at_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;
    `,
  },
  {
    version: 8,
    name: 'session recordings',
    sql: `
      -- Terminal recordings (asciicast v2 text of ssh shells and commands), beside the transcript: one
      -- row per chunk, in seq order per recording. The transcript event of the channel names the
      -- recording and carries the SHA-256 of its whole text, so the hash chain covers it.
      CREATE TABLE recording_chunks (
        session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        recording   text NOT NULL,
        seq         integer NOT NULL CHECK (seq >= 0),
        body        text NOT NULL,
        PRIMARY KEY (session_id, recording, seq)
      );
    `,
  },
  {
    version: 9,
    name: 'approvals',
    sql: `
      -- Operations held for a human's approval (service/approvals/): the PendingApproval document, with
      -- the columns it is found by. version increases on every change: a decision is written only over
      -- the version it was taken on (compare and set), so two replicas deciding at once cannot both win.
      CREATE TABLE approvals (
        id            text PRIMARY KEY,
        session_id    text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        state         text NOT NULL,
        requested_at  timestamptz NOT NULL,
        expires_at    timestamptz NOT NULL,
        version       integer NOT NULL CHECK (version >= 1),
        body          json NOT NULL
      );
      CREATE INDEX approvals_session_idx ON approvals (session_id);
      CREATE INDEX approvals_pending_idx ON approvals (requested_at) WHERE state = 'pending';
    `,
  },
];

/** Key of the transaction-scoped advisory lock that makes replicas starting together migrate once. */
export const MIGRATION_LOCK_KEY = 0x686f6f70; // "hoop"

const LOCK: Statement = { name: 'hoop_migrate_lock', text: 'SELECT pg_advisory_xact_lock($1::bigint)' };
const APPLIED: Statement = {
  name: 'hoop_migrate_applied',
  text: 'SELECT version, name FROM schema_migrations ORDER BY version',
};
const RECORD: Statement = {
  name: 'hoop_migrate_record',
  text: 'INSERT INTO schema_migrations (version, name) VALUES ($1, $2)',
};
const CREATE_SCHEMA_MIGRATIONS = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
  )`;

export interface MigrationResult {
  /** versions applied by this call (empty when the schema was already current) */
  applied: number[];
  /** the schema version after the call */
  version: number;
}

/**
 * Bring the schema up to date, in one transaction. The advisory lock is taken first, so a second
 * replica waits, then finds every version recorded and applies nothing. A database migrated by a newer
 * broker (unknown versions), or whose recorded names differ from these, is refused: running old code
 * on a changed schema is how data gets lost.
 */
export async function runMigrations(
  db: SqlDriver,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationResult> {
  checkMigrationList(migrations);
  return db.transaction(async (tx) => {
    await tx.query(LOCK, [MIGRATION_LOCK_KEY]);
    await tx.exec(CREATE_SCHEMA_MIGRATIONS);
    const done = new Map(
      (await tx.query<{ version: number; name: string }>(APPLIED, [])).rows.map((r) => [r.version, r.name]),
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const [version, name] of done) {
      const m = known.get(version);
      if (!m) {
        throw new Error(
          `store schema has migration ${version} (${name}), unknown to this broker: it was migrated by a newer version`,
        );
      }
      if (m.name !== name) {
        throw new Error(
          `store schema migration ${version} is recorded as "${name}", this broker expects "${m.name}"`,
        );
      }
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query(RECORD, [m.version, m.name]);
      applied.push(m.version);
    }
    return { applied, version: migrations.at(-1)?.version ?? 0 };
  });
}

/** The list itself must be well-formed; a mistake here is a programmer error. */
export function checkMigrationList(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration #${i} has version ${m.version}, expected ${i + 1}`);
    if (!m.name.trim() || !m.sql.trim()) throw new Error(`migration ${m.version} needs a name and SQL`);
  });
}
