// A PostgreSQL target: the real database the broker connects to with its own credentials.
import Type, { type Static } from 'typebox';
import { Port, SecretRef, TargetName } from '../schema-common.js';

export const TargetTls = Type.Object(
  {
    mode: Type.Union([Type.Literal('disable'), Type.Literal('require'), Type.Literal('verify-full')]),
    ca_file: Type.Optional(Type.String({ minLength: 1 })),
    server_name: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

export const PostgresTarget = Type.Object(
  {
    name: TargetName,
    kind: Type.Literal('postgres'),
    host: Type.String({ minLength: 1 }),
    port: Type.Optional(Port),
    database: Type.String({ minLength: 1 }),
    user: Type.String({ minLength: 1 }),
    password: SecretRef,
    tls: Type.Optional(TargetTls),
    /**
     * When an allowed statement's transcript event becomes durable. `background` (default): after the
     * statement completed, with its rows and duration, group-committed within 50 ms (a crash of the
     * broker can lose the newest ones; `pg.connection.lost` marks the gap). `before_forward`: the
     * statement's event is durable before the statement reaches the database, as a denial's is (nothing
     * runs unrecorded; a store that refuses the append closes the connection with the statement unsent),
     * and its outcome follows as `pg.statement.result`. Cost: README "Recording modes".
     */
    recording: Type.Optional(Type.Union([Type.Literal('background'), Type.Literal('before_forward')])),
    /** Upstream connections per session are capped; a job rarely needs more. */
    max_connections_per_session: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    /**
     * A role of its own for each session: the broker (user, with CREATEROLE) creates it at the
     * session's first connection, member of `member_of` and acting as it, VALID UNTIL the session's
     * expiry, and drops it when the session ends (and, after a crash, at the next start).
     */
    session_roles: Type.Optional(
      Type.Object(
        {
          /** the role whose privileges a session gets (its objects are owned by this role) */
          member_of: Type.String({ minLength: 1, maxLength: 63 }),
          /** role names are <prefix><session id> (default "hoop_") */
          prefix: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_]{0,15}$' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type PostgresTarget = Static<typeof PostgresTarget>;
export type TargetTls = Static<typeof TargetTls>;
