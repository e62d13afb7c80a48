// Streaming rewrites of response bodies, one line at a time, never buffering more than a line:
// watch event streams (one JSON event per line) and pod logs (text lines).
import { Transform, type TransformCallback } from 'node:stream';

/** Longest line kept waiting for its end (a watch event can be a large object). */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class LineTransform extends Transform {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  readonly #fn: (line: Buffer) => Buffer | string;
  /** text logs: flush a partial line after this long so `logs -f` shows a prompt without newline */
  readonly #flushPartialMs: number | null;
  #timer: NodeJS.Timeout | null = null;

  constructor(fn: (line: Buffer) => Buffer | string, opts: { flushPartialMs?: number } = {}) {
    super();
    this.#fn = fn;
    this.#flushPartialMs = opts.flushPartialMs ?? null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        const part = chunk.subarray(start, nl + 1);
        start = nl + 1;
        const line = this.#pendingBytes ? Buffer.concat([...this.#pending, part]) : part;
        this.#pending = [];
        this.#pendingBytes = 0;
        this.push(this.#fn(line));
      }
      if (start < chunk.length) {
        this.#pending.push(chunk.subarray(start));
        this.#pendingBytes += chunk.length - start;
        if (this.#pendingBytes > MAX_LINE_BYTES)
          throw new Error(`a line longer than ${MAX_LINE_BYTES} bytes`);
        this.#armPartialFlush();
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  #armPartialFlush(): void {
    if (this.#flushPartialMs === null || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#pendingBytes) return;
      const line = Buffer.concat(this.#pending);
      this.#pending = [];
      this.#pendingBytes = 0;
      this.push(this.#fn(line));
    }, this.#flushPartialMs);
    this.#timer.unref();
  }

  override _flush(cb: TransformCallback): void {
    if (this.#timer) clearTimeout(this.#timer);
    try {
      if (this.#pendingBytes) this.push(this.#fn(Buffer.concat(this.#pending)));
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    if (this.#timer) clearTimeout(this.#timer);
    cb(err);
  }
}
