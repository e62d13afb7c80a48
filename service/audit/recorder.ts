// Group commit for transcript events. Events queue per session in arrival order; one flush loop writes
// everything queued, for every session, in ONE store transaction (one commit, one fsync), while newer
// events queue for the next one. A caller's promise resolves only once its event is durable.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { NewEvent } from './event.js';

/** Where a recorded event landed in its session's transcript. */
export interface RecordedEvent {
  session_id: string;
  seq: number;
}

interface Pending {
  event: NewEvent;
  resolve: (e: RecordedEvent) => void;
  reject: (err: unknown) => void;
}

/** Events per transaction at most: bounds the time one commit holds the (embedded) store. */
const MAX_BATCH_EVENTS = 2000;
/**
 * How long the first queued event waits for company before its transaction starts; also the pause after
 * each commit before the next (unless MAX_BATCH_EVENTS are waiting). A commit has a fixed cost (about
 * 1.3 ms of CPU on the embedded store, a few round trips on PostgreSQL): committing whatever arrived
 * during the previous commit right away made a busy gateway pay it every 15-30 statements; the pause
 * caps commits at about 1/(delay + commit time) per second. Statement events are not awaited by the
 * gateways; denials are (audit before answer), and wait at most this long more.
 */
export const DEFAULT_FLUSH_DELAY_MS = 10;

export class TranscriptRecorder {
  readonly #store: Store;
  readonly #log: Logger;
  #queues = new Map<string, Pending[]>();
  #queued = 0;
  #flushing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #delayMs: number;

  constructor(store: Store, log: Logger, opts: { flushDelayMs?: number } = {}) {
    this.#store = store;
    this.#log = log;
    this.#delayMs = opts.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS;
  }

  /** Append one event to a session's transcript; resolves when it is durable. */
  record(sessionId: string, event: NewEvent): Promise<RecordedEvent> {
    if (this.#closed) return Promise.reject(new Error('recorder is closed'));
    return new Promise((resolve, reject) => {
      let q = this.#queues.get(sessionId);
      if (!q) {
        q = [];
        this.#queues.set(sessionId, q);
      }
      q.push({ event, resolve, reject });
      this.#queued++;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#flushing) return; // the running flush loop picks it up
    if (this.#queued >= MAX_BATCH_EVENTS || this.#delayMs <= 0) {
      this.#startFlush();
      return;
    }
    this.#timer ??= setTimeout(() => this.#startFlush(), this.#delayMs);
  }

  #startFlush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#flushing ??= this.#flush();
  }

  /** One transaction: everything queued, for every session, up to MAX_BATCH_EVENTS. */
  async #flush(): Promise<void> {
    try {
      // take whole session queues (order within a session is preserved) up to the batch bound
      const taken: { sessionId: string; pending: Pending[] }[] = [];
      let count = 0;
      for (const [sessionId, q] of this.#queues) {
        if (count >= MAX_BATCH_EVENTS) break;
        const pending = q.splice(0, MAX_BATCH_EVENTS - count);
        if (q.length === 0) this.#queues.delete(sessionId);
        taken.push({ sessionId, pending });
        count += pending.length;
      }
      this.#queued -= count;
      try {
        const results = await this.#store.appendEventBatches(
          taken.map((t) => ({ sessionId: t.sessionId, events: t.pending.map((p) => p.event) })),
        );
        taken.forEach((t, i) => {
          const r = results[i]!;
          if (r.ok) {
            for (let j = 0; j < t.pending.length; j++)
              t.pending[j]!.resolve({ session_id: t.sessionId, seq: r.first_seq + j });
          } else {
            this.#log.warn(
              { session_id: t.sessionId, events: t.pending.length, err: r.error },
              'transcript append refused',
            );
            for (const p of t.pending) p.reject(r.error);
          }
        });
      } catch (err) {
        this.#log.error({ err, events: count }, 'transcript append failed');
        for (const t of taken) for (const p of t.pending) p.reject(err);
      }
    } finally {
      this.#flushing = null;
      // what arrived during the commit waits for the window (or goes now, if a full batch is waiting)
      if (this.#queued > 0) this.#schedule();
    }
  }

  /** Wait for every queued event to be written (graceful shutdown), then refuse new ones. */
  async close(): Promise<void> {
    while (this.#queued > 0 || this.#flushing) {
      if (!this.#flushing) this.#startFlush();
      await this.#flushing;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#closed = true;
  }
}
