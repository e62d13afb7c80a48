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
  maxUpstreamConnectionsPerTarget: 100,
  maxUnfinishedBytesTotal: 256 * MiB,
};

/**
 * Bytes of unfinished client messages held across every connection of the gateway: a connection whose
 * next chunk would take the total over the limit is refused (its buffer is what it pins).
 */
const SMALL_HOLDING = 64 * 1024;

export class BufferBudget {
  private used = 0;
  private readonly held = new Map<object, number>();

  constructor(readonly max: number) {}

  /**
   * `owner` now holds `bytes`; false (and nothing changed) when growing it would pass the limit. A
   * connection holding less than SMALL is never refused: a full budget must not stop everyone's
   * ordinary statements, only the large unfinished messages that filled it.
   */
  hold(owner: object, bytes: number): boolean {
    const before = this.held.get(owner) ?? 0;
    if (bytes === before) return true;
    const next = this.used - before + bytes;
    if (bytes > before && bytes > SMALL_HOLDING && next > this.max) return false;
    this.used = next;
    if (bytes === 0) this.held.delete(owner);
    else this.held.set(owner, bytes);
    return true;
  }

  release(owner: object): void {
    this.hold(owner, 0);
  }

  get total(): number {
    return this.used;
  }
}

export function resolveLimits(partial: Partial<GatewayLimits> | undefined): GatewayLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}
