// From a matched policy to the session's grants and lifetime. Pure.
import type { Reason } from '../reasons.js';
import { parseDuration } from '../config/duration.js';
import type { Grant, Policy } from '../config/schema.js';

export type GrantResolution = { ok: true; grants: Grant[] } | { ok: false; reasons: Reason[] };

/** Session lifetime when neither the request nor the config says (config sessions.default_ttl; same as config/semantic.ts). */
export const DEFAULT_SESSION_TTL_MS = 30 * 60_000;
/** Upper bound when the config sets none (config sessions.max_ttl). */
export const DEFAULT_MAX_SESSION_TTL_MS = 60 * 60_000;

const MAX_SHOWN_NAME = 100;
const showName = (name: string): string =>
  JSON.stringify(
    (name.length > MAX_SHOWN_NAME ? `${name.slice(0, MAX_SHOWN_NAME)}…` : name).replace(/\p{Cc}/gu, '?'),
  );

/**
 * The grants a session gets. No request (undefined or an empty list): every grant of the policy whose
 * target is configured. A request: exactly those targets, each of which must be granted; duplicates
 * are ignored. A target outside the grants is refused with a reason naming it and saying whether such
 * a target exists at all — names only, never hosts or credentials. When a policy lists the same target
 * twice, the first grant counts.
 */
export function resolveGrants(
  policy: Pick<Policy, 'name' | 'grants'>,
  requested: readonly string[] | undefined,
  targets: readonly { name: string }[],
): GrantResolution {
  const configured = new Set(targets.map((t) => t.name));
  const byTarget = new Map<string, Grant>();
  for (const grant of policy.grants) {
    if (configured.has(grant.target) && !byTarget.has(grant.target)) byTarget.set(grant.target, grant);
  }
  const grantedNames = [...byTarget.keys()];
  const grantedList =
    grantedNames.length > 0 ? grantedNames.map((n) => JSON.stringify(n)).join(', ') : '(none)';

  if (!requested || requested.length === 0) {
    if (byTarget.size === 0) {
      return {
        ok: false,
        reasons: [{ policy: policy.name, message: `policy "${policy.name}" grants no configured target` }],
      };
    }
    return { ok: true, grants: [...byTarget.values()] };
  }

  const reasons: Reason[] = [];
  const grants: Grant[] = [];
  const seen = new Set<string>();
  for (const name of requested) {
    if (seen.has(name)) continue;
    seen.add(name);
    const grant = byTarget.get(name);
    if (grant) {
      grants.push(grant);
      continue;
    }
    const exists = configured.has(name);
    reasons.push({
      policy: policy.name,
      target: name.length > MAX_SHOWN_NAME ? `${name.slice(0, MAX_SHOWN_NAME)}…` : name,
      message: exists
        ? `target ${showName(name)} is not granted by policy "${policy.name}" (it grants: ${grantedList})`
        : `target ${showName(name)} does not exist (no target of that name is configured); policy "${policy.name}" grants: ${grantedList}`,
    });
  }
  return reasons.length > 0 ? { ok: false, reasons } : { ok: true, grants };
}

export interface SessionTtlInput {
  /** from the request, e.g. "30m"; absent: the default */
  requested?: string | undefined;
  /** the policy's `ttl` */
  policyTtl?: string | number | undefined;
  /** config sessions.max_ttl (ms or duration text); absent: DEFAULT_MAX_SESSION_TTL_MS */
  maxTtl?: string | number | undefined;
  /** config sessions.default_ttl (ms or duration text); absent: DEFAULT_SESSION_TTL_MS */
  defaultTtl?: string | number | undefined;
}

/**
 * The session lifetime in ms: the smallest of the requested TTL (or the default), the policy's ttl and
 * the maximum. null when the requested TTL is not a positive duration like "30m" (a client error).
 * Configured values were validated at start-up; an invalid one here is a programmer error and throws.
 */
export function sessionTtlMs(input: SessionTtlInput): number | null {
  let requested: number;
  if (input.requested === undefined) {
    requested = configuredMs(input.defaultTtl, 'sessions.default_ttl') ?? DEFAULT_SESSION_TTL_MS;
  } else {
    const parsed = parseDuration(input.requested);
    if (parsed === null) return null;
    requested = parsed;
  }
  const policyTtl = configuredMs(input.policyTtl, 'policy ttl') ?? Number.POSITIVE_INFINITY;
  const maxTtl = configuredMs(input.maxTtl, 'sessions.max_ttl') ?? DEFAULT_MAX_SESSION_TTL_MS;
  return Math.min(requested, policyTtl, maxTtl);
}

function configuredMs(value: string | number | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === null || !Number.isFinite(ms) || ms <= 0)
    throw new Error(`${what} is not a positive duration: ${String(value)}`);
  return ms;
}
