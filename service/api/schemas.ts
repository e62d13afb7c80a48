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

/** A session's terminal recordings (asciicast v2 text), each named by the transcript event of its channel. */
export const Recordings = Type.Object({
  session_id: Type.String(),
  recordings: Type.Array(
    Type.Object({
      id: Type.String(),
      /** asciicast v2: a header line, then one event line each */
      cast: Type.String(),
    }),
  ),
});
export type Recordings = Static<typeof Recordings>;

export { ErrorBody, ExplainResult, Identity, PolicyExplanation, Reason };

// ── Approvals (service/approvals/types.ts PendingApproval is the shape; checked against it below)

const ApprovalVoteView = Type.Object({
  by: Type.String(),
  decision: Type.Union([Type.Literal('approve'), Type.Literal('deny')]),
  channel: Type.Union([
    Type.Literal('github_check'),
    Type.Literal('github_comment'),
    Type.Literal('api'),
    Type.Literal('cli'),
  ]),
  reason: Type.Optional(Type.String()),
  at: Type.String(),
});

export const ApprovalView = Type.Object({
  id: Type.String(),
  session_id: Type.String(),
  target: Type.String(),
  conn_id: Type.String(),
  operation_kind: Type.String(),
  summary: Type.String({ description: 'what is held, redacted as the transcript records it' }),
  operation_sha256: Type.String({
    description: 'SHA-256 of the exact operation; an approval releases only it',
  }),
  rule: Type.String(),
  reasons: Type.Array(Type.String()),
  policy: Type.String(),
  approvers: Type.Object({
    users: Type.Array(Type.String()),
    teams: Type.Array(Type.String()),
    min: Type.Integer(),
  }),
  job: Type.Object(
    {
      repository: Type.String(),
      repository_id: Type.Optional(Type.String()),
      repository_owner: Type.Optional(Type.String()),
      sha: Type.Optional(Type.String()),
      ref: Type.Optional(Type.String()),
      actor: Type.Optional(Type.String()),
      workflow: Type.Optional(Type.String()),
      run_id: Type.Optional(Type.String()),
      run_attempt: Type.Optional(Type.String()),
      event_name: Type.Optional(Type.String()),
      environment: Type.Optional(Type.String()),
      pull_request: Type.Optional(Type.Integer()),
      pull_request_author: Type.Optional(Type.String()),
    },
    { additionalProperties: true },
  ),
  state: Type.Union([
    Type.Literal('pending'),
    Type.Literal('approved'),
    Type.Literal('denied'),
    Type.Literal('expired'),
    Type.Literal('abandoned'),
  ]),
  votes: Type.Array(ApprovalVoteView),
  requested_at: Type.String(),
  expires_at: Type.String(),
  decided_at: Type.Optional(Type.String()),
  github_check_run_id: Type.Optional(Type.Integer()),
});
export type ApprovalView = Static<typeof ApprovalView>;

export const DecideApprovalBody = Type.Object(
  {
    decision: Type.Union([Type.Literal('approve'), Type.Literal('deny')]),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
    /** the operation you reviewed: refused (409) when the hold is of another */
    operation_sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
  },
  { additionalProperties: false },
);
export type DecideApprovalBody = Static<typeof DecideApprovalBody>;
