import type { GatewayLimits } from './deps.js';

const MiB = 1024 * 1024;

/**
 * PostgreSQL itself accepts messages up to 1 GiB. The broker decodes every Query/Parse in memory to
 * classify it (as UTF-8 text, then a parse tree several times larger), so it caps them lower: 64 MiB is
 * far above any real migration file, bulk INSERT or bytea parameter, and keeps what a handful of
 * concurrent clients can pin in broker memory bounded. Control messages (Describe, Execute, Close,
 * Sync…) are tiny; 1 MiB is generous. Before authentication only small messages make sense
 * (PostgreSQL limits the startup packet to 10,000 bytes and auth tokens to 64 KiB).
 */
export const DEFAULT_LIMITS: GatewayLimits = {
  startupTimeoutMs: 10_000,
  midMessageTimeoutMs: 30_000,
  maxQueryMessageBytes: 64 * MiB,
  maxOtherMessageBytes: 1 * MiB,
  maxStartupMessageBytes: 10_000,
  upstreamConnectTimeoutMs: 10_000,
};

export function resolveLimits(partial: Partial<GatewayLimits> | undefined): GatewayLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}
