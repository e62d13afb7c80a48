// Retention (config `retention: 90d`): sessions that ended longer ago than that are deleted with their
// transcripts, and denials recorded before it, but only once every configured export sink has
// delivered them (a SIEM outage delays pruning, it never loses records). Each prune is counted and
// logged. Checkpoints name the pruned sessions, so `audit verify` tells retention from deletion.
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Store } from '../store/store.js';

export interface RetentionOptions {
  store: Store;
  /** keep this long, in ms */
  retentionMs: number;
  /** the configured export sinks: what they have not exported yet stays */
  sinks: readonly string[];
  logger: Logger;
  registry?: Registry;
  /** how often to prune (default 1 h; the first run a minute after start) */
  intervalMs?: number;
  now?: () => Date;
}

const BATCH = 1000;

export function parseRetention(text: string): number | null {
  const m = /^([1-9][0-9]*)([dh])$/.exec(text);
  return m ? Number(m[1]) * (m[2] === 'd' ? 86_400_000 : 3_600_000) : null;
}

export class RetentionPruner {
  readonly #o: RetentionOptions;
  readonly #pruned: Counter<'kind'> | null;
  #timer: NodeJS.Timeout | null = null;
  #first: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;

  constructor(opts: RetentionOptions) {
    this.#o = opts;
    this.#pruned = opts.registry
      ? new Counter({
          name: 'hoop_retention_pruned_total',
          help: 'Records removed by retention, by kind (sessions, denials, checkpoints)',
          labelNames: ['kind'],
          registers: [opts.registry],
        })
      : null;
  }

  start(): void {
    const run = () => {
      if (this.#running) return;
      this.#running = this.prune()
        .catch((err: unknown) => this.#o.logger.error({ err }, 'retention prune failed'))
        .finally(() => (this.#running = null));
    };
    this.#first = setTimeout(run, 60_000);
    this.#first.unref();
    this.#timer = setInterval(run, this.#o.intervalMs ?? 3_600_000);
    this.#timer.unref();
  }

  /** Prune everything past retention now; returns what was removed. */
  async prune(): Promise<{ sessions: number; denials: number; checkpoints: number }> {
    const now = this.#o.now?.() ?? new Date();
    const cutoff = new Date(now.getTime() - this.#o.retentionMs);
    const total = { sessions: 0, denials: 0, checkpoints: 0 };
    for (;;) {
      const r = await this.#o.store.pruneBefore(cutoff, now, this.#o.sinks, BATCH);
      total.sessions += r.sessions;
      total.denials += r.denials;
      total.checkpoints += r.checkpoints;
      if (r.sessions < BATCH && r.denials < BATCH) break;
    }
    for (const kind of ['sessions', 'denials', 'checkpoints'] as const)
      if (total[kind] > 0) this.#pruned?.inc({ kind }, total[kind]);
    this.#o.logger.info(
      { ...total, before: cutoff.toISOString(), waiting_for_export: this.#o.sinks },
      'retention prune',
    );
    return total;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#first) clearTimeout(this.#first);
    await this.#running;
  }
}
