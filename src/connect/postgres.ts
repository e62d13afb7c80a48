// PostgreSQL targets: the libpq environment (PG*) and a DATABASE_URL. Pure: returns what to export.
// One Postgres target gets the bare PG* names every tool reads; with several, bare names would be
// ambiguous (which database would `psql` reach?), so only the per-target HOOP_<TARGET>_* names exist.
import type { SessionTarget } from '../../service/api/schemas.js';

export type PostgresSessionTarget = Extract<SessionTarget, { kind: 'postgres' }>;

export interface PostgresSettings {
  target: string;
  host: string;
  port: number;
  /** the session id */
  user: string;
  /** the target name; the broker maps it to the real database */
  database: string;
  /** the session secret */
  password: string;
  /** path of the broker CA file, or "system" for publicly trusted certificates (libpq >= 16) */
  sslrootcert: string;
}

export interface PostgresExports {
  /** variables for later steps (GITHUB_ENV) */
  env: Record<string, string>;
  /** the database-url output: set for exactly one Postgres target */
  databaseUrl: string | undefined;
}

/** HOOP_<TARGET>_: the target name upper-cased, every character outside A-Z0-9 as `_`. */
export function targetEnvPrefix(target: string): string {
  return `HOOP_${target.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
}

const HOST = /^[A-Za-z0-9._:-]+$/;

/**
 * A Postgres target's connection settings (typed by the API contract), or which value is unusable: the
 * host and port must be safe to put into libpq variables and a URL.
 */
export function postgresSettings(
  target: PostgresSessionTarget,
  password: string,
  sslrootcert: string,
): { ok: true; value: PostgresSettings } | { ok: false; error: string } {
  const c = target.connection;
  if (!c) return { ok: false, error: noConnection(target) };
  const where = `target ${target.name}: connection`;
  if (!matches(HOST, c.host)) return { ok: false, error: `${where}.host is not a host name` };
  if (!isPort(c.port)) return { ok: false, error: `${where}.port is not a port number` };
  if (!matches(/./, c.user)) return { ok: false, error: `${where}.user is missing` };
  const database = matches(/./, c.database) ? c.database : target.name;
  return {
    ok: true,
    value: { target: target.name, host: c.host, port: c.port, user: c.user, database, password, sslrootcert },
  };
}

// The answer crossed the network from a broker of any version: its values are checked for what they
// become here (variables, URLs, config lines), whatever the contract's types say.

/** A TCP port. */
export const isPort = (port: unknown): port is number =>
  typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;

/** A string that `pattern` accepts (absent values are not strings). */
export const matches = (pattern: RegExp, value: unknown): value is string =>
  typeof value === 'string' && pattern.test(value);

/** The broker lists a target of a kind it runs no gateway for without connection settings. */
export const noConnection = (target: { name: string; kind: string }): string =>
  `target ${target.name}: the broker sent no connection settings (it runs no ${target.kind} gateway)`;

/** postgres://USER:SECRET@HOST:PORT/DB?sslmode=verify-full&sslrootcert=PATH, every part URL-encoded. */
export function databaseUrl(s: PostgresSettings): string {
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  const query = `sslmode=verify-full&sslrootcert=${encodeURIComponent(s.sslrootcert)}`;
  return `postgres://${encodeURIComponent(s.user)}:${encodeURIComponent(s.password)}@${host}:${s.port}/${encodeURIComponent(s.database)}?${query}`;
}

function libpqEnv(s: PostgresSettings): Record<string, string> {
  return {
    PGHOST: s.host,
    PGPORT: String(s.port),
    PGUSER: s.user,
    PGPASSWORD: s.password,
    PGDATABASE: s.database,
    PGSSLMODE: 'verify-full',
    PGSSLROOTCERT: s.sslrootcert,
    DATABASE_URL: databaseUrl(s),
  };
}

/**
 * Every Postgres target exports HOOP_<TARGET>_PGHOST … HOOP_<TARGET>_DATABASE_URL; a single Postgres
 * target also exports the bare PGHOST … DATABASE_URL. Two targets whose names map to the same prefix
 * are refused rather than letting one silently overwrite the other.
 */
export function postgresExports(
  settings: readonly PostgresSettings[],
): { ok: true; value: PostgresExports } | { ok: false; error: string } {
  const env: Record<string, string> = {};
  const prefixes = new Map<string, string>();
  for (const s of settings) {
    const prefix = targetEnvPrefix(s.target);
    const clash = prefixes.get(prefix);
    if (clash !== undefined)
      return {
        ok: false,
        error: `targets ${clash} and ${s.target} would both export ${prefix}* variables; rename one of them`,
      };
    prefixes.set(prefix, s.target);
    for (const [name, value] of Object.entries(libpqEnv(s))) env[`${prefix}${name}`] = value;
  }
  const only = settings.length === 1 ? settings[0] : undefined;
  if (only) Object.assign(env, libpqEnv(only));
  return { ok: true, value: { env, databaseUrl: only ? databaseUrl(only) : undefined } };
}
