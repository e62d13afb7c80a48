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
    /** Upstream connections per session are capped; a job rarely needs more. */
    max_connections_per_session: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);
export type PostgresTarget = Static<typeof PostgresTarget>;
export type TargetTls = Static<typeof TargetTls>;
