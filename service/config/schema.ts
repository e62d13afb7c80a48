// The broker's configuration, as a TypeBox schema: the single source of the Config type.
// Secrets never appear inline: every credential is a SecretRef ({env} or {file}).
import Type, { type Static } from 'typebox';
import { Duration, Port, SecretRef } from './schema-common.js';
import { KubernetesGrantRules, KubernetesTarget } from './targets/kubernetes.js';
import { PostgresTarget } from './targets/postgres.js';
import { SshGrant, SshTarget } from './targets/ssh.js';

export { Duration, Port, SecretRef, TargetName } from './schema-common.js';

const Listener = Type.Object(
  { port: Port, host: Type.Optional(Type.String({ minLength: 1 })) },
  { additionalProperties: false },
);

export const SshListener = Type.Object(
  {
    port: Port,
    host: Type.Optional(Type.String({ minLength: 1 })),
    /** the gateway's host key (OpenSSH or PEM private key) by reference; absent: generated once in data_dir/ssh */
    host_key: Type.Optional(SecretRef),
    /** advertised host for clients (the ssh config's HostName); default: the gateways' host */
    public_host: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

export const PostgresListener = Type.Object(
  {
    port: Port,
    host: Type.Optional(Type.String({ minLength: 1 })),
    /** Accept a cleartext password (inside TLS only). SCRAM-SHA-256 is always offered first. */
    allow_cleartext_password: Type.Optional(Type.Boolean()),
    /** Advertised host for clients (what the action exports as PGHOST); default: the http host. */
    public_host: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

export const Issuer = Type.Object(
  {
    name: Type.String({ minLength: 1, pattern: '^[a-z0-9][a-z0-9_-]*$' }),
    issuer: Type.String({ minLength: 1 }),
    audience: Type.String({ minLength: 1 }),
    /** Explicit JWKS location; default: OpenID discovery at `${issuer}/.well-known/openid-configuration`. */
    jwks_uri: Type.Optional(Type.String({ minLength: 1 })),
    /** Allowed JWS algorithms; default RS256. Only asymmetric algorithms are accepted. */
    algorithms: Type.Optional(
      Type.Array(
        Type.Union([
          Type.Literal('RS256'),
          Type.Literal('RS384'),
          Type.Literal('RS512'),
          Type.Literal('PS256'),
          Type.Literal('ES256'),
          Type.Literal('ES384'),
        ]),
        { minItems: 1 },
      ),
    ),
    /** Extra CA (PEM file) to trust for discovery/JWKS fetches, e.g. a GHES private CA or tests. */
    ca_file: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);
export type Issuer = Static<typeof Issuer>;

// Targets: one schema per kind in targets/<kind>.ts, told apart by `kind`. Adding a kind: its schema
// file, one line here, and its gateway in gateways/registry.ts.
export const Target = Type.Union([PostgresTarget, SshTarget, KubernetesTarget]);
export type Target = Static<typeof Target>;
export type TargetKind = Target['kind'];
/** The target of one kind, e.g. TargetOf<'postgres'>. */
export type TargetOf<K extends TargetKind> = Extract<Target, { kind: K }>;
export { PostgresTarget, TargetTls } from './targets/postgres.js';
export { SshGrant, SshTarget } from './targets/ssh.js';

export const Detector = Type.Union([
  Type.Literal('email'),
  Type.Literal('credit_card'),
  Type.Literal('api_key'),
  Type.Literal('iban'),
]);
export type Detector = Static<typeof Detector>;

export const MaskRule = Type.Union([
  Type.Object(
    {
      /** "table.column" or "schema.table.column" (schema defaults to public) */
      column: Type.String({ minLength: 3 }),
      strict: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
  Type.Object({ detector: Detector, strict: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
]);
export type MaskRule = Static<typeof MaskRule>;

const UpperWords = Type.Array(Type.String({ minLength: 1, pattern: '^[A-Z][A-Z_ ]*$' }), { minItems: 1 });
export const DenyRule = Type.Union([
  /** statement kinds, e.g. DROP, TRUNCATE, ALTER, CREATE, DELETE, UPDATE, INSERT, GRANT, COPY */
  Type.Object({ statement: UpperWords }, { additionalProperties: false }),
  /** tables, "table" or "schema.table" */
  Type.Object(
    { table: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }) },
    { additionalProperties: false },
  ),
  /** functions by name, e.g. pg_sleep */
  Type.Object(
    { function: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }) },
    { additionalProperties: false },
  ),
]);
export type DenyRule = Static<typeof DenyRule>;

/** Who may approve a held operation: GitHub logins, `org/team` slugs, how many must agree (default 1). */
export const Approvers = Type.Object(
  {
    users: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }))),
    teams: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$' })),
    ),
    min: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
  },
  { additionalProperties: false },
);
export type Approvers = Static<typeof Approvers>;

const ApproveFields = {
  /** who may approve (default: the grant's `approvers`) */
  approvers: Type.Optional(Approvers),
  /** how long the statement waits (default: the grant's `approval_timeout`, else 10m); a timeout denies */
  timeout: Type.Optional(Duration),
};
/** Statements held for a human's approval: the same matchers as deny rules, with who approves and how long. */
export const ApproveRule = Type.Union([
  Type.Object({ statement: UpperWords, ...ApproveFields }, { additionalProperties: false }),
  Type.Object(
    { table: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), ...ApproveFields },
    { additionalProperties: false },
  ),
  Type.Object(
    { function: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), ...ApproveFields },
    { additionalProperties: false },
  ),
]);
export type ApproveRule = Static<typeof ApproveRule>;

export const Access = Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('admin')]);
export type Access = Static<typeof Access>;

/** Session-open gates: what GitHub must already show before a grant is given. */
export const GrantRequirements = Type.Object(
  {
    /** the token's `environment` had its required reviewers approve this run (actions/runs/{id}/approvals) */
    environment_approval: Type.Optional(Type.Boolean()),
    /** the pull request of the token's sha has at least `min` approving reviews on that very commit */
    pull_request_reviews: Type.Optional(
      Type.Object(
        {
          min: Type.Integer({ minimum: 1, maximum: 20 }),
          /** `org/team` slugs: only reviews by their active members count (default: any reviewer) */
          teams: Type.Optional(
            Type.Array(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$' }), {
              minItems: 1,
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type GrantRequirements = Static<typeof GrantRequirements>;

/** PR-gated migrations: the repository's migration files, read at the token's sha through the App. */
export const MigrationFiles = Type.Object(
  {
    /** repository paths with `*` / `?` in the file name only, e.g. db/migrations/*.sql */
    paths: Type.Array(Type.String({ minLength: 1, pattern: '^[^/*?][^*?]*(?:/[^/]*)?$' }), { minItems: 1 }),
  },
  { additionalProperties: false },
);
export type MigrationFiles = Static<typeof MigrationFiles>;

export const Grant = Type.Object(
  {
    target: Type.String({ minLength: 1 }),
    access: Access,
    /** postgres targets */
    mask: Type.Optional(Type.Array(MaskRule)),
    deny: Type.Optional(Type.Array(DenyRule)),
    /** postgres targets: statements held until a human approves (after deny rules; README "Approvals") */
    approve: Type.Optional(Type.Array(ApproveRule)),
    /** who approves this grant's holds (postgres approve rules without their own, ssh commands.approve, kubernetes.approve) */
    approvers: Type.Optional(Approvers),
    /** how long a hold waits for a decision (default 10m); a timeout is a denial */
    approval_timeout: Type.Optional(Duration),
    /** ssh targets: commands, sftp paths, git repositories, forwards, shell, pty, env (README "SSH") */
    ssh: Type.Optional(SshGrant),
    /** rules of a kubernetes target's grant (service/config/targets/kubernetes.ts) */
    kubernetes: Type.Optional(KubernetesGrantRules),
    /** evidence that humans approved before the session opens (needs github_app with app_id, private_key) */
    require: Type.Optional(GrantRequirements),
    /** postgres write grants: statements of these reviewed files, at the token's sha, pass an approval hold */
    migrations: Type.Optional(MigrationFiles),
  },
  { additionalProperties: false },
);
export type Grant = Static<typeof Grant>;

/** A condition value: exact string, glob (`*`, `?`), or `/regex/` (anchored); numbers/booleans compare as strings. */
export const ConditionValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
export const Policy = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    /** restrict to one configured issuer by name (default: any) */
    issuer: Type.Optional(Type.String({ minLength: 1 })),
    when: Type.Record(
      Type.String({ minLength: 1 }),
      Type.Union([ConditionValue, Type.Array(ConditionValue, { minItems: 1 })]),
    ),
    ttl: Type.Optional(Duration),
    grants: Type.Array(Grant, { minItems: 1 }),
  },
  { additionalProperties: false },
);
export type Policy = Static<typeof Policy>;

/** "90d", "36h": how long audit records are kept (days or hours). */
export const RetentionDuration = Type.String({ pattern: '^[1-9][0-9]*[dh]$' });

const ExportFormat = Type.Union([Type.Literal('jsonl'), Type.Literal('ocsf')], {
  description: "jsonl: the broker's own records (default); ocsf: OCSF 1.1 events",
});
const SinkName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$' });
export const ExportSink = Type.Union([
  Type.Object(
    { name: SinkName, kind: Type.Literal('stdout'), format: Type.Optional(ExportFormat) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      name: SinkName,
      kind: Type.Literal('file'),
      path: Type.String({ minLength: 1 }),
      format: Type.Optional(ExportFormat),
      /** rotate when the file would grow past this many bytes (default 100 MiB) */
      max_bytes: Type.Optional(Type.Integer({ minimum: 4096 })),
      /** rotated files kept beside it: path.1 (newest) … path.N (default 5) */
      keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      name: SinkName,
      kind: Type.Literal('webhook'),
      /** https (plain http only for loopback) */
      url: Type.String({ minLength: 1 }),
      /** HMAC-SHA256 key the receiver verifies X-Hoop-Signature with */
      secret: SecretRef,
      format: Type.Optional(ExportFormat),
      /** records per POST at most (default 500) */
      batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
      /** extra CA (PEM file) to trust for the receiver's certificate */
      ca_file: Type.Optional(Type.String({ minLength: 1 })),
    },
    { additionalProperties: false },
  ),
]);
export type ExportSink = Static<typeof ExportSink>;

/** A hold's announcement: a Slack-compatible incoming webhook, or a JSON webhook signed with HMAC-SHA256. */
export const ApprovalNotify = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('slack'),
      /** the incoming-webhook URL (it is the credential: by reference) */
      url: SecretRef,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('webhook'),
      /** https (plain http only for loopback) */
      url: Type.String({ minLength: 1 }),
      /** HMAC-SHA256 key: X-Hoop-Signature: t=<unix seconds>,v1=<hex HMAC of "t.body"> */
      secret: SecretRef,
    },
    { additionalProperties: false },
  ),
]);
export type ApprovalNotify = Static<typeof ApprovalNotify>;

export const Config = Type.Object(
  {
    listen: Type.Object(
      {
        http: Listener,
        postgres: Type.Optional(PostgresListener),
        ssh: Type.Optional(SshListener),
        /** the Kubernetes gateway's HTTPS port (its own: the API may be plain HTTP behind an ingress) */
        kubernetes: Type.Optional(
          Type.Object(
            {
              port: Port,
              host: Type.Optional(Type.String({ minLength: 1 })),
              /** host in the kubeconfig server URL; default: public_url's host, else the listen host */
              public_host: Type.Optional(Type.String({ minLength: 1 })),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    /** Public base URL of the broker (used in responses); default http(s)://host:port */
    public_url: Type.Optional(Type.String({ minLength: 1 })),
    tls: Type.Optional(
      Type.Object(
        {
          cert_file: Type.String({ minLength: 1 }),
          key_file: Type.String({ minLength: 1 }),
          /** CA to hand to clients (PEM file); default: none (the cert is publicly trusted) */
          ca_file: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Serve the HTTP API over TLS too (default false: put it behind your ingress). Gateways always use TLS. */
    http_tls: Type.Optional(Type.Boolean()),
    store: Type.Optional(
      Type.Object(
        { url: Type.Union([Type.String({ minLength: 1 }), SecretRef]) },
        { additionalProperties: false },
      ),
    ),
    data_dir: Type.Optional(Type.String({ minLength: 1 })),
    issuers: Type.Array(Issuer, { minItems: 1 }),
    targets: Type.Array(Target),
    policies: Type.Array(Policy),
    sessions: Type.Optional(
      Type.Object(
        { max_ttl: Type.Optional(Duration), default_ttl: Type.Optional(Duration) },
        { additionalProperties: false },
      ),
    ),
    admin: Type.Optional(
      Type.Object(
        {
          tokens: Type.Array(
            Type.Object(
              { name: Type.String({ minLength: 1 }), token: SecretRef },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    limits: Type.Optional(
      Type.Object(
        {
          /** maximum OIDC token size in bytes (default 16384) */
          max_token_bytes: Type.Optional(Type.Integer({ minimum: 512, maximum: 1048576 })),
          /** requests per minute per client address on POST /v1/sessions and /v1/explain (default 120) */
          session_rate_per_minute: Type.Optional(Type.Integer({ minimum: 1 })),
          /** allowed clock skew for exp/nbf/iat, e.g. "30s" (default 30s) */
          clock_skew: Type.Optional(Duration),
          /** live sessions one repository may hold at once (default 50) */
          sessions_per_repository: Type.Optional(Type.Integer({ minimum: 1 })),
          /** live sessions one policy may hold at once (default: no limit) */
          sessions_per_policy: Type.Optional(Type.Integer({ minimum: 1 })),
          /** connections the broker opens to one target at once, across all sessions (default 100) */
          upstream_connections_per_target: Type.Optional(Type.Integer({ minimum: 1 })),
          /** bytes of unfinished client messages the broker holds in total, across connections (default 256 MiB) */
          unfinished_message_bytes: Type.Optional(Type.Integer({ minimum: 1048576 })),
          /** a client message must arrive whole within this of its first byte, e.g. "30s" (default 30s) */
          message_timeout: Type.Optional(Duration),
        },
        { additionalProperties: false },
      ),
    ),
    audit: Type.Optional(
      Type.Object(
        {
          /** where audit records go as they are recorded (at least once; positions kept in the store) */
          export: Type.Optional(Type.Array(ExportSink)),
          /** how often the exporter looks for new records (default 1s) */
          export_interval: Type.Optional(Duration),
          /** signed checkpoints over every session's chain head */
          checkpoint: Type.Optional(
            Type.Object(
              {
                /** how often (default 5m); a checkpoint is written only when a head changed */
                interval: Type.Optional(Duration),
                /** Ed25519 private key (PEM) by reference; default: data_dir/checkpoint/signing-key.pem, generated */
                key: Type.Optional(SecretRef),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    /** the broker as a GitHub App: its webhooks (POST /v1/github/webhook) */
    github_app: Type.Optional(
      Type.Object(
        {
          /** the App's webhook secret: every delivery's X-Hub-Signature-256 is checked against it */
          webhook_secret: SecretRef,
          /** the App's id (its settings page): with private_key, the broker calls the API as the App */
          app_id: Type.Optional(
            Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: '^[1-9][0-9]*$' })]),
          ),
          /** the App's private key (PEM) by reference: signs the JWTs that buy installation tokens */
          private_key: Type.Optional(SecretRef),
          /** the REST API's base URL (default https://api.github.com; GHES: https://HOST/api/v3) */
          api_url: Type.Optional(Type.String({ minLength: 1 })),
          /** the installation to act as; default: looked up per repository (GET /repos/{owner}/{repo}/installation) */
          installation_id: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** approvals of held operations: who decides through the API/CLI, who is notified (README "Approvals") */
    approvals: Type.Optional(
      Type.Object(
        {
          /** bearer tokens of people (or bots) who may decide holds through POST /v1/approvals/:id */
          approver_tokens: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }),
                  token: SecretRef,
                  /** the GitHub login this token decides as (matched against approvers.users; never the job's actor) */
                  github_login: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
                },
                { additionalProperties: false },
              ),
            ),
          ),
          /** where a hold is announced */
          notify: Type.Optional(Type.Array(ApprovalNotify)),
        },
        { additionalProperties: false },
      ),
    ),
    /** on SIGTERM, how long clients get to finish before their connections are closed (default 25s) */
    shutdown_grace: Type.Optional(Duration),
    /** several broker processes on one PostgreSQL store */
    replicas: Type.Optional(
      Type.Object(
        {
          /** how often each replica says it is alive (default 5s); silent for 3 of these = dead */
          heartbeat: Type.Optional(Duration),
          /** how often sessions ended on other replicas are looked for, besides LISTEN (default 2s) */
          revocation_sweep: Type.Optional(Duration),
        },
        { additionalProperties: false },
      ),
    ),
    /** keep sessions, transcripts and denials this long (e.g. 90d); default: forever */
    retention: Type.Optional(RetentionDuration),
    log: Type.Optional(
      Type.Object(
        {
          level: Type.Optional(
            // Spelled out: a mapped array of literals types as TLiteral<string>[] and made the level `never`.
            Type.Union([
              Type.Literal('fatal'),
              Type.Literal('error'),
              Type.Literal('warn'),
              Type.Literal('info'),
              Type.Literal('debug'),
              Type.Literal('trace'),
              Type.Literal('silent'),
            ]),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type Config = Static<typeof Config>;
export { KubernetesTarget, KubernetesGrantRules } from './targets/kubernetes.js';
