// Group commit for transcript events. Events queue per session in arrival order; one flush loop writes
// everything queued, for every session, in ONE store transaction (one commit, one fsync), while newer
// events queue for the next one. A caller's promise resolves only once its event is durable.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { NewEvent } from './event.js';
import { eventText } from './event-text.js';

/** Where a recorded event landed in its session's transcript. */
export interface RecordedEvent {
  session_id: string;
  seq: number;
}

interface Pending {
  /**
   * the event, or its text (eventText) when the store takes texts (Store.appendEventTexts): serialized
   * when queued, a string is all that stays alive until the commit, not the event's objects, which
   * would outlive a young-generation GC or two and be copied into the old one (work for the GC threads);
   * and the store chains the text without parsing it
   */
  event: NewEvent | string;
  /** someone waits for it (not `background`) */
  urgent: boolean;
  /** it holds a statement back (`immediate`): its commit starts without waiting for company */
  immediate: boolean;
  /** called once: (null, seq) when the event is durable, (error, 0) when it will not be */
  settle: Settle;
}

/** How the recorder reports an event's fate: err null and its seq once durable, or why not. */
export type Settle = (err: unknown, seq: number) => void;

/** Events per transaction at most: bounds the time one commit holds the (embedded) store. */
const MAX_BATCH_EVENTS = 2000;
/**
 * How long an event a caller waits for (a denial: audit before answer; a connection's opening) waits
 * for company before its transaction starts; also the pause after a commit while such an event is
 * queued. A commit has a fixed cost (about half a millisecond of CPU on the embedded store, a few round
 * trips on PostgreSQL): committing whatever arrived during the previous commit right away made a busy
 * gateway pay it every 15-30 statements.
 */
export const DEFAULT_FLUSH_DELAY_MS = 10;
/**
 * The same for events nobody waits for (`background`: the statement events the gateways record after
 * answering). They ride the next commit an awaited event causes, or go after this window. It bounds
 * how much of a transcript a crash can lose (the statements completed in the last window) and sets the
 * commit rate of a steady stream: at 10 ms, one client's statements cost the embedded store 2.1 times
 * the CPU per event they cost at 50 ms (bench:pg, one client).
 */
export const DEFAULT_BACKGROUND_DELAY_MS = 50;

export interface RecordOptions {
  /** nobody waits for this event: it may wait for the background window (DEFAULT_BACKGROUND_DELAY_MS) */
  background?: boolean;
  /**
   * a statement waits for this event before it is forwarded (a PostgreSQL target's `recording:
   * before_forward`): its commit starts at once, or right after the one running, without the flush
   * delay; what arrives meanwhile shares the next commit (group commit without a timer)
   */
  immediate?: boolean;
}

export class TranscriptRecorder {
  readonly #store: Store;
  readonly #log: Logger;
  #queues = new Map<string, Pending[]>();
  #queued = 0;
  /** queued events someone waits for */
  #urgent = 0;
  /** queued events whose commit must start at once (RecordOptions.immediate) */
  #immediate = 0;
  #flushing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** when #timer fires (performance.now()) */
  #due = 0;
  #closed = false;
  readonly #delayMs: number;
  readonly #backgroundDelayMs: number;
  /** the store takes event texts: queue each event as its text, stamped with the time it was queued */
  readonly #texts: boolean;
  /** the last stamp, and the millisecond it is for (one toISOString per millisecond, not per event) */
  #stampMs = -1;
  #stamp = '';

  constructor(store: Store, log: Logger, opts: { flushDelayMs?: number; backgroundDelayMs?: number } = {}) {
    this.#store = store;
    this.#log = log;
    this.#texts = typeof store.appendEventTexts === 'function';
    this.#delayMs = opts.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS;
    this.#backgroundDelayMs = Math.max(this.#delayMs, opts.backgroundDelayMs ?? DEFAULT_BACKGROUND_DELAY_MS);
  }

  /** Append one event to a session's transcript; resolves when it is durable. */
  record(sessionId: string, event: NewEvent, opts: RecordOptions = {}): Promise<RecordedEvent> {
    return new Promise((resolve, reject) => {
      this.#enqueue(sessionId, event, opts.background !== true, opts.immediate === true, (err, seq) => {
        if (err === null) resolve({ session_id: sessionId, seq });
        else reject(err);
      });
    });
  }

  /**
   * record() with `background` and a callback instead of a promise, for the gateways' statement events
   * (one per statement, so what each costs the event loop counts): `done(null, seq)` once the event is
   * durable, `done(error, 0)` when it will not be. Never calls `done` before returning.
   */
  recordBackground(sessionId: string, event: NewEvent, done: Settle): void {
    this.#enqueue(sessionId, event, false, false, done);
  }

  #enqueue(sessionId: string, event: NewEvent, urgent: boolean, immediate: boolean, settle: Settle): void {
    if (this.#closed) {
      queueMicrotask(() => settle(new Error('recorder is closed'), 0));
      return;
    }
    let queued: NewEvent | string = event;
    if (this.#texts) {
      try {
        queued = eventText(event, this.#now());
      } catch (err) {
        queueMicrotask(() => settle(err, 0)); // a cycle or a BigInt: never an event the gateways make
        return;
      }
    }
    let q = this.#queues.get(sessionId);
    if (!q) {
      q = [];
      this.#queues.set(sessionId, q);
    }
    q.push({ event: queued, urgent, immediate, settle });
    this.#queued++;
    if (urgent) this.#urgent++;
    if (immediate) this.#immediate++;
    this.#schedule();
  }

  /** The time as ISO-8601, for the events queued now. */
  #now(): string {
    const ms = Date.now();
    if (ms !== this.#stampMs) {
      this.#stampMs = ms;
      this.#stamp = new Date(ms).toISOString();
    }
    return this.#stamp;
  }

  #schedule(): void {
    if (this.#flushing) return; // the running flush loop picks it up
    const delay = this.#immediate > 0 ? 0 : this.#urgent > 0 ? this.#delayMs : this.#backgroundDelayMs;
    if (this.#queued >= MAX_BATCH_EVENTS || delay <= 0) {
      this.#startFlush();
      return;
    }
    const due = performance.now() + delay;
    if (this.#timer) {
      if (this.#due <= due) return; // already due sooner
      clearTimeout(this.#timer);
    }
    this.#due = due;
    this.#timer = setTimeout(() => this.#startFlush(), delay);
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
        for (const p of pending) {
          if (p.urgent) this.#urgent--;
          if (p.immediate) this.#immediate--;
        }
      }
      this.#queued -= count;
      try {
        const results = this.#texts
          ? await this.#store.appendEventTexts!(
              taken.map((t) => ({ sessionId: t.sessionId, events: t.pending.map((p) => p.event as string) })),
            )
          : await this.#store.appendEventBatches(
              taken.map((t) => ({
                sessionId: t.sessionId,
                events: t.pending.map((p) => p.event as NewEvent),
              })),
            );
        taken.forEach((t, i) => {
          const r = results[i]!;
          if (r.ok) {
            for (let j = 0; j < t.pending.length; j++) this.#settle(t.pending[j]!, null, r.first_seq + j);
          } else {
            this.#log.warn(
              { session_id: t.sessionId, events: t.pending.length, err: r.error },
              'transcript append refused',
            );
            for (const p of t.pending) this.#settle(p, r.error, 0);
          }
        });
      } catch (err) {
        this.#log.error({ err, events: count }, 'transcript append failed');
        for (const t of taken) for (const p of t.pending) this.#settle(p, err, 0);
      }
    } finally {
      this.#flushing = null;
      // what arrived during the commit waits for its window (or goes now, if a full batch is waiting)
      if (this.#queued > 0) this.#schedule();
    }
  }

  /** A caller's callback must not stop the others from hearing of theirs. */
  #settle(p: Pending, err: unknown, seq: number): void {
    try {
      p.settle(err, seq);
    } catch (e) {
      this.#log.error({ err: e }, 'transcript recorder: a completion callback threw');
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
