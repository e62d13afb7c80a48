// The audit exporter: for each configured sink, read what the store has recorded after the sink's saved
// position, deliver it, then save the new position — at least once: a crash between delivery and save
// re-sends that batch, never skips it, and a restart resumes where the store says (no flood from the
// start). With several replicas on one store, a lease in the store lets one replica export each sink.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type ExportRecord, formatRecord } from './export-format.js';
import type { AuditSink } from './sinks.js';
import { EXPORT_START, type ExportPosition, type Store } from '../store/store.js';

export interface ExporterOptions {
  store: Store;
  sinks: readonly AuditSink[];
  logger: Logger;
  registry?: Registry;
  /** this replica, in the lease (default host-pid-random) */
  holder?: string;
  /** pause between looks when nothing is waiting (default 1 s) */
  intervalMs?: number;
  /** chunks (and denials) per read (default 200) */
  readLimit?: number;
  /** how long a lease holds without renewal (default 30 s: how long a dead replica's sinks wait) */
  leaseMs?: number;
}

export function replicaName(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface ExportRound {
  /** records delivered */
  records: number;
  /** nothing more waiting */
  drained: boolean;
  /** another replica holds this sink */
  held: boolean;
}

/** The records of one store batch, in the order a reader expects: events by chunk order, then denials. */
export function batchRecords(batch: Awaited<ReturnType<Store['readExport']>>): ExportRecord[] {
  return [
    ...batch.events.map((e): ExportRecord => ({
      type: 'transcript.event',
      session: e.session,
      event: e.event,
    })),
    ...batch.denials.map((d): ExportRecord => ({ type: 'session.denied', denial: d })),
  ];
}

export class AuditExporter {
  readonly holder: string;
  readonly #o: ExporterOptions;
  readonly #interval: number;
  readonly #limit: number;
  readonly #leaseMs: number;
  readonly #exported: Counter<'sink'> | null;
  readonly #failures: Counter<'sink'> | null;
  readonly #lastExport: Gauge<'sink'> | null;
  #closed = false;
  readonly #loops: Promise<void>[] = [];
  readonly #wakers = new Set<() => void>();

  constructor(opts: ExporterOptions) {
    this.#o = opts;
    this.holder = opts.holder ?? replicaName();
    this.#interval = opts.intervalMs ?? 1000;
    this.#limit = opts.readLimit ?? 200;
    this.#leaseMs = opts.leaseMs ?? 30_000;
    const registers = opts.registry ? [opts.registry] : [];
    this.#exported = opts.registry
      ? new Counter({
          name: 'hoop_audit_exported_total',
          help: 'Audit records delivered, by sink',
          labelNames: ['sink'],
          registers,
        })
      : null;
    this.#failures = opts.registry
      ? new Counter({
          name: 'hoop_audit_export_failures_total',
          help: 'Audit export rounds that failed (delivery or store), by sink',
          labelNames: ['sink'],
          registers,
        })
      : null;
    this.#lastExport = opts.registry
      ? new Gauge({
          name: 'hoop_audit_export_last_success_timestamp_seconds',
          help: 'When each sink last delivered or found nothing to deliver',
          labelNames: ['sink'],
          registers,
        })
      : null;
  }

  start(): void {
    for (const sink of this.#o.sinks) this.#loops.push(this.#loop(sink));
  }

  /** One round for one sink: claim, read, deliver, save. */
  async exportOnce(sink: AuditSink): Promise<ExportRound> {
    const { store } = this.#o;
    const now = new Date();
    const position = await store.claimExportLease(
      sink.name,
      this.holder,
      now,
      new Date(now.getTime() + this.#leaseMs),
      EXPORT_START,
    );
    if (!position) return { records: 0, drained: true, held: true };
    const batch = await store.readExport(position, this.#limit);
    const records = batchRecords(batch);
    if (records.length > 0) {
      // a long delivery (a receiver down) keeps renewing the lease, so no other replica doubles it
      const renew = setInterval(() => {
        const t = new Date();
        store
          .claimExportLease(sink.name, this.holder, t, new Date(t.getTime() + this.#leaseMs), EXPORT_START)
          .catch(() => undefined);
      }, this.#leaseMs / 3);
      try {
        await sink.deliver(records.map((r) => formatRecord(r, sink.format)));
      } finally {
        clearInterval(renew);
      }
    }
    if (!samePosition(batch.position, position)) {
      const t = new Date();
      const saved = await store.saveExportPosition(
        sink.name,
        this.holder,
        batch.position,
        t,
        new Date(t.getTime() + this.#leaseMs),
      );
      if (!saved)
        this.#o.logger.warn(
          { sink: sink.name },
          'audit export lease lost during delivery: the batch may arrive twice',
        );
    }
    this.#exported?.inc({ sink: sink.name }, records.length);
    this.#lastExport?.set({ sink: sink.name }, Date.now() / 1000);
    return { records: records.length, drained: batch.drained, held: false };
  }

  async #loop(sink: AuditSink): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      let pause = this.#interval;
      try {
        const round = await this.exportOnce(sink);
        failures = 0;
        if (!round.drained) pause = 0;
      } catch (err) {
        if (this.#closed) break;
        failures++;
        this.#failures?.inc({ sink: sink.name });
        pause = Math.min(30_000, this.#interval * 2 ** Math.min(failures, 5));
        this.#o.logger.error({ err, sink: sink.name, retry_in_ms: pause }, 'audit export failed');
      }
      if (pause > 0 && !this.#closed) await this.#sleep(pause);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.#wakers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }

  /** Look now instead of at the next interval (tests; a flush before shutdown). */
  poke(): void {
    for (const w of [...this.#wakers]) w();
  }

  /** Stop: a delivery in progress is abandoned (its batch is re-sent after the next start), sinks closed. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#o.sinks.map((s) => s.close()));
    this.poke();
    await Promise.allSettled(this.#loops);
    // the next replica (or this one restarted) takes over at once instead of after the lease runs out
    await Promise.allSettled(
      this.#o.sinks.map((s) => this.#o.store.releaseExportLease(s.name, this.holder, new Date())),
    );
  }
}

function samePosition(a: ExportPosition, b: ExportPosition): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
