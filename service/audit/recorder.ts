// Group commit for transcript events: events for one session are appended in order; while one batch
// is being written, newer events queue and go out together in the next transaction. A caller's
// promise resolves only once its event is durable in the store.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { NewEvent, TranscriptEvent } from './event.js';

interface Pending {
  event: NewEvent;
  resolve: (e: TranscriptEvent) => void;
  reject: (err: unknown) => void;
}

export class TranscriptRecorder {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #queues = new Map<string, Pending[]>();
  readonly #flushing = new Set<string>();
  readonly #idle = new Set<() => void>();
  #closed = false;

  constructor(store: Store, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /** Append one event to a session's transcript; resolves when it is durable. */
  record(sessionId: string, event: NewEvent): Promise<TranscriptEvent> {
    if (this.#closed) return Promise.reject(new Error('recorder is closed'));
    return new Promise((resolve, reject) => {
      let q = this.#queues.get(sessionId);
      if (!q) {
        q = [];
        this.#queues.set(sessionId, q);
      }
      q.push({ event, resolve, reject });
      if (!this.#flushing.has(sessionId)) void this.#flush(sessionId);
    });
  }

  async #flush(sessionId: string): Promise<void> {
    this.#flushing.add(sessionId);
    try {
      for (;;) {
        const q = this.#queues.get(sessionId);
        if (!q || q.length === 0) break;
        const batch = q.splice(0, 500);
        try {
          const written = await this.#store.appendEvents(
            sessionId,
            batch.map((p) => p.event),
          );
          batch.forEach((p, i) => {
            p.resolve(written[i]!);
          });
        } catch (err) {
          this.#log.error({ err, session_id: sessionId, events: batch.length }, 'transcript append failed');
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.#queues.delete(sessionId);
      this.#flushing.delete(sessionId);
      if (this.#flushing.size === 0) for (const fn of this.#idle) fn();
    }
  }

  /** Wait for every queued event to be written (graceful shutdown), then refuse new ones. */
  async close(): Promise<void> {
    if (this.#flushing.size > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#idle.delete(done);
          resolve();
        };
        this.#idle.add(done);
      });
    }
    this.#closed = true;
  }
}
