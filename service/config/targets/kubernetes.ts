// A Kubernetes target: the real API server the broker proxies kubectl to, with the broker's own
// credentials (by reference); and the Kubernetes part of a grant (rules on request attributes).
import Type, { type Static } from 'typebox';
import { SecretRef, TargetName } from '../schema-common.js';

export const KubernetesCredentials = Type.Union(
  [
    /** a bearer token (a service account token, an OIDC id token) */
    Type.Object({ token: SecretRef }, { additionalProperties: false }),
    /** a client certificate and its key (PEM files) */
    Type.Object(
      { client_cert_file: Type.String({ minLength: 1 }), client_key_file: Type.String({ minLength: 1 }) },
      { additionalProperties: false },
    ),
  ],
  {
    description:
      'how the broker authenticates to the API server: {token: {env|file}} or client_cert_file + client_key_file',
  },
);
export type KubernetesCredentials = Static<typeof KubernetesCredentials>;

/**
 * Impersonation built from the session's token claims: `{claim}` placeholders, e.g.
 * `user: "github:{repository}"`, `groups: ["gh-env:{environment}"]`. A group whose claim is missing
 * is left out; a missing user claim refuses the request (the cluster would see the broker instead).
 */
export const KubernetesImpersonation = Type.Object(
  {
    user: Type.String({ minLength: 1 }),
    groups: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  },
  { additionalProperties: false },
);
export type KubernetesImpersonation = Static<typeof KubernetesImpersonation>;

export const KubernetesTarget = Type.Object(
  {
    name: TargetName,
    kind: Type.Literal('kubernetes'),
    /** https URL of the API server */
    server: Type.String({ minLength: 1 }),
    /** CA (PEM file) of the API server; default: the system roots */
    ca_file: Type.Optional(Type.String({ minLength: 1 })),
    /** TLS server name to verify, when it differs from the URL's host */
    tls_server_name: Type.Optional(Type.String({ minLength: 1 })),
    credentials: KubernetesCredentials,
    impersonate: Type.Optional(KubernetesImpersonation),
    /** the namespace of the kubeconfig context the action writes */
    namespace: Type.Optional(Type.String({ minLength: 1, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' })),
    /** live streams (watches, log follows, exec, port-forwards) per session; default 32 */
    max_streams_per_session: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);
export type KubernetesTarget = Static<typeof KubernetesTarget>;

const Words = Type.Array(Type.String({ minLength: 1 }), { minItems: 1 });

/**
 * One rule on request attributes. Every field present must match (absent: any). `verbs`: get, list,
 * watch, create, update, patch, delete, deletecollection, and exec, attach, portforward, proxy, log
 * (the subresources pods/exec, …, pods/log). `resources`: `pods`, `pods/log`, `deployments.apps`,
 * globs (`*`, `pods/*`, `*.apps`); a name without a group matches it in any group. `namespaces` and
 * `names`: exact or glob; a rule with `namespaces` never matches a cluster-scoped request.
 */
export const KubernetesRule = Type.Object(
  {
    verbs: Type.Optional(Words),
    resources: Type.Optional(Words),
    namespaces: Type.Optional(Words),
    names: Type.Optional(Words),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type KubernetesRule = Static<typeof KubernetesRule>;

export const KubernetesPreset = Type.Union([
  Type.Literal('read'),
  Type.Literal('write'),
  Type.Literal('debug'),
  Type.Literal('admin'),
]);
export type KubernetesPreset = Static<typeof KubernetesPreset>;

/** The Kubernetes part of a grant (`grants[].kubernetes`). */
export const KubernetesGrantRules = Type.Object(
  {
    /** presets added to the one `access` names (read → read, write → write, admin → admin) */
    presets: Type.Optional(Type.Array(KubernetesPreset, { minItems: 1 })),
    allow: Type.Optional(Type.Array(KubernetesRule)),
    deny: Type.Optional(Type.Array(KubernetesRule)),
    /** matching requests wait for a human's approval (until approvals exist: denied with that reason) */
    approve: Type.Optional(Type.Array(KubernetesRule)),
    /** container ports port-forward may reach; absent: none */
    ports: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { minItems: 1 })),
    /** record exec/attach output (asciicast v2) in the transcript */
    record_output: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type KubernetesGrantRules = Static<typeof KubernetesGrantRules>;
