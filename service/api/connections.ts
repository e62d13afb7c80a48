// Per-kind connection settings in a session's answer: what the action writes for the job's tools
// (libpq variables, an ssh config, a kubeconfig). Part of the HTTP API contract (schemas.ts).
import Type, { type Static } from 'typebox';

export const PostgresConnection = Type.Object({
  host: Type.String(),
  port: Type.Integer(),
  /** the target name: the broker maps it to the real database */
  database: Type.String(),
  /** the session id */
  user: Type.String(),
  sslmode: Type.Literal('verify-full'),
  /** postgres://user@host:port/database?sslmode=verify-full (no password: that is the session secret) */
  url: Type.String(),
});
export type PostgresConnection = Static<typeof PostgresConnection>;

export const SshConnection = Type.Object({
  /** the broker's ssh endpoint */
  host: Type.String(),
  port: Type.Integer(),
  /** the ssh user name the broker expects (the session id) */
  user: Type.String(),
  /** the endpoint's host key, "type base64" (pinned in known_hosts) */
  host_key: Type.String(),
});
export type SshConnection = Static<typeof SshConnection>;

export const KubernetesConnection = Type.Object({
  /** https URL of the broker's endpoint for this target */
  server: Type.String(),
  /** CA (PEM) that signed the endpoint's certificate; absent: the session's ca_pem, else public roots */
  ca: Type.Optional(Type.String()),
  /** the namespace the kubeconfig context selects */
  namespace: Type.Optional(Type.String()),
});
export type KubernetesConnection = Static<typeof KubernetesConnection>;
