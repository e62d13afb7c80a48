// The HTTP API contract. The action imports the *types* from here (type-only), the broker the schemas.
// Shapes the domain itself produces live below it and are re-exported here: reasons (../reasons.ts),
// the verified identity (identity/claims-schema.ts), the explain report (policy/explanation.ts).
import Type, { type Static, type TSchema } from 'typebox';
import { TranscriptEvent } from '../audit/event.js';
import { Access, DenyRule, MaskRule } from '../config/schema.js';
import { Identity } from '../identity/claims-schema.js';
import { ExplainResult, PolicyExplanation } from '../policy/explanation.js';
import { ErrorBody, Reason } from '../reasons.js';
import { KubernetesConnection, PostgresConnection, SshConnection } from './connections.js';

export const CreateSessionBody = Type.Object(
  {
    oidc_token: Type.String({ minLength: 1, maxLength: 1_048_576 }),
    targets: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 })),
    ttl: Type.Optional(
      Type.String({ pattern: '^([0-9]+h)?([0-9]+m)?([0-9]+s)?$', minLength: 2, maxLength: 20 }),
    ),
    ssh_public_key: Type.Optional(
      Type.String({
        maxLength: 16_384,
        // one OpenSSH public key line: type, base64 blob, optional comment
        pattern:
          '^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com) [A-Za-z0-9+/]+={0,3}( [^\\r\\n]*)?$',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateSessionBody = Static<typeof CreateSessionBody>;

export const ExplainBody = Type.Object(
  { oidc_token: Type.String({ minLength: 1, maxLength: 1_048_576 }) },
  { additionalProperties: false },
);

export { KubernetesConnection, PostgresConnection, SshConnection } from './connections.js';

const targetView = <K extends string, C extends TSchema>(kind: K, connection: C) =>
  Type.Object({
    name: Type.String(),
    kind: Type.Literal(kind),
    access: Access,
    mask: Type.Optional(Type.Array(MaskRule)),
    deny: Type.Optional(Type.Array(DenyRule)),
    /** how the job's tools reach this target through the broker; absent when the broker runs no gateway of its kind */
    connection: Type.Optional(connection),
  });

/**
 * A granted target as the action sees it, told apart by `kind`. Adding a kind: its connection schema in
 * connections.ts and one line here.
 */
export const SessionTarget = Type.Union([
  targetView('postgres', PostgresConnection),
  targetView('ssh', SshConnection),
  targetView('kubernetes', KubernetesConnection),
]);
export type SessionTarget = Static<typeof SessionTarget>;
export type SessionTargetKind = SessionTarget['kind'];
/** The connection settings of one kind of target, e.g. ConnectionOf<'postgres'>. */
export type ConnectionOf<K extends SessionTargetKind> = NonNullable<
  Extract<SessionTarget, { kind: K }>['connection']
>;

export const SessionView = Type.Object({
  id: Type.String(),
  state: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked')]),
  created_at: Type.String(),
  expires_at: Type.String(),
  ended_at: Type.Union([Type.String(), Type.Null()]),
  end_reason: Type.Union([Type.String(), Type.Null()]),
  issuer: Type.String(),
  identity: Identity,
  policy: Type.String(),
  targets: Type.Array(SessionTarget),
});
export type SessionView = Static<typeof SessionView>;

export const SessionCreated = Type.Object({
  id: Type.String(),
  /** shown once: the broker keeps only its hash */
  secret: Type.String(),
  expires_at: Type.String(),
  identity: Identity,
  policy: Type.String(),
  targets: Type.Array(SessionTarget),
  /** the CA that signed the broker's gateway certificate (PEM), when it is not publicly trusted */
  ca_pem: Type.Optional(Type.String()),
});
export type SessionCreated = Static<typeof SessionCreated>;

export const Transcript = Type.Object({
  session_id: Type.String(),
  state: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked')]),
  events: Type.Array(TranscriptEvent),
  /** hash of the last event: evidence anyone can compare with the broker's copy */
  head_hash: Type.String(),
  /** the broker re-verified the whole chain before answering */
  chain_verified: Type.Boolean(),
});
export type Transcript = Static<typeof Transcript>;

export { ErrorBody, ExplainResult, Identity, PolicyExplanation, Reason };
