// Defaults, applied once after validation so the rest of the broker never guesses.
import { parseDuration } from './duration.js';
import type { Config, Issuer, Policy, PostgresTarget, Target } from './schema.js';
import { DEFAULT_MAX_TTL, DEFAULT_SESSION_TTL } from './semantic.js';

/** Every default in one place (documented: README "Configuration"). */
export const CONFIG_DEFAULTS = {
  /** embedded store, generated TLS material, … live here (relative to the working directory) */
  data_dir: '.hoop',
  /** listeners bind to loopback unless told otherwise; postgres/ssh follow listen.http.host */
  listen_host: '127.0.0.1',
  /** gateways always speak TLS; the HTTP API is plain HTTP behind an ingress unless enabled */
  http_tls: false,
  /** the longest session any policy or request can get */
  max_ttl: DEFAULT_MAX_TTL,
  /** the TTL of a session whose request names none (capped by the policy ttl and max_ttl) */
  default_ttl: DEFAULT_SESSION_TTL,
  max_token_bytes: 16384,
  session_rate_per_minute: 120,
  clock_skew: '30s',
  sessions_per_repository: 50,
  upstream_connections_per_target: 100,
  unfinished_message_bytes: 256 * 1024 * 1024,
  message_timeout: '30s',
  algorithms: ['RS256'] as const,
  postgres_port: 5432,
  /** verify-full, except for loopback hosts where the traffic never leaves the machine: disable */
  postgres_tls_mode: 'verify-full' as const,
  max_connections_per_session: 10,
  allow_cleartext_password: false,
  log_level: 'info' as const,
};

type Algorithm = NonNullable<Issuer['algorithms']>[number];
type TargetTls = NonNullable<PostgresTarget['tls']>;
type LogLevel = NonNullable<NonNullable<Config['log']>['level']>;

export interface ResolvedListener {
  port: number;
  host: string;
}

export interface ResolvedPostgresListener extends ResolvedListener {
  allow_cleartext_password: boolean;
  public_host?: string;
}

export type ResolvedIssuer = Omit<Issuer, 'algorithms'> & { algorithms: Algorithm[] };

export type ResolvedPostgresTarget = Omit<PostgresTarget, 'port' | 'tls' | 'max_connections_per_session'> & {
  port: number;
  tls: TargetTls;
  max_connections_per_session: number;
};
/** A target with its kind's defaults filled in (one member per target kind). */
export type ResolvedTarget = ResolvedPostgresTarget;

export type ResolvedPolicy = Policy & {
  /** the longest session this policy grants: its ttl, else sessions.max_ttl */
  ttl_ms: number;
};

/** Config with every default filled in and every duration also given in milliseconds. */
export interface ResolvedConfig extends Omit<
  Config,
  | 'listen'
  | 'http_tls'
  | 'data_dir'
  | 'issuers'
  | 'targets'
  | 'policies'
  | 'sessions'
  | 'admin'
  | 'limits'
  | 'log'
> {
  listen: { http: ResolvedListener; postgres?: ResolvedPostgresListener; ssh?: ResolvedListener };
  http_tls: boolean;
  data_dir: string;
  issuers: ResolvedIssuer[];
  targets: ResolvedTarget[];
  policies: ResolvedPolicy[];
  sessions: { max_ttl: string; max_ttl_ms: number; default_ttl: string; default_ttl_ms: number };
  admin: { tokens: NonNullable<Config['admin']>['tokens'] };
  limits: {
    max_token_bytes: number;
    session_rate_per_minute: number;
    clock_skew: string;
    clock_skew_ms: number;
    sessions_per_repository: number;
    /** null: no limit */
    sessions_per_policy: number | null;
    upstream_connections_per_target: number;
    unfinished_message_bytes: number;
    message_timeout_ms: number;
  };
  log: { level: LogLevel };
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function resolveTarget(target: Target): ResolvedTarget {
  const d = CONFIG_DEFAULTS;
  switch (target.kind) {
    case 'postgres':
      return {
        ...target,
        port: target.port ?? d.postgres_port,
        tls: target.tls ?? { mode: LOOPBACK.has(target.host) ? 'disable' : d.postgres_tls_mode },
        max_connections_per_session: target.max_connections_per_session ?? d.max_connections_per_session,
      };
  }
}

/** Fills defaults into a config that passed validation (loadConfigText). Throws only on programmer error. */
export function withDefaults(config: Config): ResolvedConfig {
  const d = CONFIG_DEFAULTS;
  const httpHost = config.listen.http.host ?? d.listen_host;
  const max_ttl = config.sessions?.max_ttl ?? d.max_ttl;
  const max_ttl_ms = durationMs(max_ttl);
  const default_ttl = config.sessions?.default_ttl ?? d.default_ttl;
  const clock_skew = config.limits?.clock_skew ?? d.clock_skew;
  const { postgres, ssh } = config.listen;
  return {
    ...config,
    listen: {
      http: { port: config.listen.http.port, host: httpHost },
      ...(postgres && {
        postgres: {
          ...postgres,
          host: postgres.host ?? httpHost,
          allow_cleartext_password: postgres.allow_cleartext_password ?? d.allow_cleartext_password,
        },
      }),
      ...(ssh && { ssh: { port: ssh.port, host: ssh.host ?? httpHost } }),
    },
    http_tls: config.http_tls ?? d.http_tls,
    data_dir: config.data_dir ?? d.data_dir,
    issuers: config.issuers.map((issuer) => ({
      ...issuer,
      algorithms: issuer.algorithms ?? [...d.algorithms],
    })),
    targets: config.targets.map(resolveTarget),
    policies: config.policies.map((policy) => ({
      ...policy,
      ttl_ms: Math.min(policy.ttl === undefined ? max_ttl_ms : durationMs(policy.ttl), max_ttl_ms),
    })),
    sessions: {
      max_ttl,
      max_ttl_ms,
      default_ttl,
      default_ttl_ms: Math.min(durationMs(default_ttl), max_ttl_ms),
    },
    admin: { tokens: config.admin?.tokens ?? [] },
    limits: {
      max_token_bytes: config.limits?.max_token_bytes ?? d.max_token_bytes,
      session_rate_per_minute: config.limits?.session_rate_per_minute ?? d.session_rate_per_minute,
      clock_skew,
      clock_skew_ms: durationMs(clock_skew),
      sessions_per_repository: config.limits?.sessions_per_repository ?? d.sessions_per_repository,
      sessions_per_policy: config.limits?.sessions_per_policy ?? null,
      upstream_connections_per_target:
        config.limits?.upstream_connections_per_target ?? d.upstream_connections_per_target,
      unfinished_message_bytes: config.limits?.unfinished_message_bytes ?? d.unfinished_message_bytes,
      message_timeout_ms: durationMs(config.limits?.message_timeout ?? d.message_timeout),
    },
    log: { level: config.log?.level ?? d.log_level },
  };
}

function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new Error(`withDefaults: invalid duration "${text}" (was the config validated?)`);
  return ms;
}
