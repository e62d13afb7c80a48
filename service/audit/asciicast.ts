// Terminal recordings in asciicast v2 (what `asciinema play` reads): a JSON header line, then one
// `[seconds, "o" | "i" | "r", text]` line per event. Written in chunks beside the transcript
// (Store.appendRecordingChunks); the channel's transcript event carries the SHA-256 of the whole text,
// so the hash chain covers the recording.
//
// Input (when the grant records it) is kept only when the terminal echoes it: what is typed at a
// password prompt (echo off) never comes back as output, so it is dropped (counted, not stored).
// Control keys (Enter, Backspace, arrows, Ctrl-C) are kept as they are.
//
// Memory: events wait in a small buffer until a chunk is due (CHUNK_BYTES or CHUNK_MS); the recording
// stops (saying so, in the recording) at `maxBytes` of event text.
import { createHash, type Hash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { RecordingChunk } from '../store/store.js';

export const CHUNK_BYTES = 64 * 1024;
export const CHUNK_MS = 1000;
/** How long typed text waits for its echo before it counts as typed with echo off. */
export const ECHO_WAIT_MS = 1500;
export const DEFAULT_MAX_RECORDING_BYTES = 16 * 1024 * 1024;

export interface RecordingHeader {
  width: number;
  height: number;
  /** unix seconds */
  timestamp: number;
  title?: string;
  /** TERM, SHELL, … */
  env?: Record<string, string>;
  /** the command, for an exec */
  command?: string;
}

export interface RecordingSummary {
  id: string;
  /** asciicast text bytes stored, header included */
  bytes: number;
  events: number;
  /** SHA-256 (hex) of the stored text */
  sha256: string;
  /** the recording stopped at its size limit */
  truncated: boolean;
  /** typed characters not recorded because the terminal did not echo them (password prompts) */
  hidden_input_chars?: number;
}

export interface TerminalRecordingOptions {
  id: string;
  header: RecordingHeader;
  recordInput: boolean;
  maxBytes?: number;
  /** durable append; called in order, one call at a time */
  write(chunks: RecordingChunk[]): Promise<void>;
  /** a chunk could not be written (the recording goes on in memory-bounded form, then stops) */
  onError?(err: unknown): void;
  /** monotonic milliseconds (performance.now) */
  now?(): number;
}

type Queued =
  { state: 'ready'; line: string } | { state: 'pending'; t: number; text: string; deadline: number };

// Printable runs (no C0 controls, no DEL): what the terminal would echo back as the same characters.
const PRINTABLE_RUN = /[^\x00-\x1f\x7f]+|[\x00-\x1f\x7f](?:\[[0-9;?]*[ -/]*[@-~]|O.)?/g;

export class TerminalRecording {
  readonly #o: TerminalRecordingOptions;
  readonly #now: () => number;
  readonly #start: number;
  readonly #hash: Hash = createHash('sha256');
  readonly #out = new StringDecoder('utf8');
  readonly #in = new StringDecoder('utf8');
  readonly #max: number;
  #queue: Queued[] = [];
  /** output seen while typed text waits for its echo (bounded) */
  #recentOutput = '';
  #lines: string[] = [];
  #lineBytes = 0;
  #seq = 0;
  #bytes = 0;
  #events = 0;
  #truncated = false;
  #hidden = 0;
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> = Promise.resolve();
  #finished = false;

  constructor(options: TerminalRecordingOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.#max = options.maxBytes ?? DEFAULT_MAX_RECORDING_BYTES;
    const h = options.header;
    const header: Record<string, unknown> = {
      version: 2,
      width: h.width,
      height: h.height,
      timestamp: h.timestamp,
      ...(h.title !== undefined ? { title: h.title } : {}),
      ...(h.env ? { env: h.env } : {}),
      ...(h.command !== undefined ? { command: h.command } : {}),
    };
    this.#emit(`${JSON.stringify(header)}\n`);
    this.#flush(); // the header right away: a recording exists from the start
  }

  get id(): string {
    return this.#o.id;
  }

  #seconds(t = this.#now()): number {
    return Math.round((t - this.#start) * 1000) / 1_000_000;
  }

  output(data: Buffer): void {
    if (this.#finished) return;
    const text = this.#out.write(data);
    if (text === '') return;
    const t = this.#now();
    if (this.#queue.some((q) => q.state === 'pending')) {
      this.#recentOutput = (this.#recentOutput + text).slice(-8192);
      this.#settleEchoes(t);
    }
    this.#push({ state: 'ready', line: eventLine(this.#seconds(t), 'o', text) });
  }

  input(data: Buffer): void {
    if (this.#finished || !this.#o.recordInput) return;
    const text = this.#in.write(data);
    if (text === '') return;
    const t = this.#now();
    for (const m of text.matchAll(PRINTABLE_RUN)) {
      const part = m[0];
      if (/^[\x00-\x1f\x7f]/.test(part)) {
        this.#push({ state: 'ready', line: eventLine(this.#seconds(t), 'i', part) });
      } else {
        if (!this.#queue.some((q) => q.state === 'pending')) this.#recentOutput = '';
        this.#push({ state: 'pending', t, text: part, deadline: t + ECHO_WAIT_MS });
      }
    }
    this.#arm();
  }

  resize(width: number, height: number): void {
    if (this.#finished) return;
    this.#push({ state: 'ready', line: eventLine(this.#seconds(), 'r', `${width}x${height}`) });
  }

  /** Typed text is kept once its echo shows; text whose echo never came by its deadline is dropped. */
  #settleEchoes(now: number): void {
    for (const q of this.#queue) {
      if (q.state !== 'pending') continue;
      const at = this.#recentOutput.indexOf(q.text);
      if (at >= 0) {
        this.#recentOutput = this.#recentOutput.slice(at + q.text.length);
        const line = eventLine(this.#seconds(q.t), 'i', q.text);
        Object.assign(q, { state: 'ready', line });
      } else if (now >= q.deadline) {
        this.#hidden += Array.from(q.text).length;
        Object.assign(q, { state: 'ready', line: '' });
      } else break;
    }
    this.#drainQueue();
  }

  #push(q: Queued): void {
    this.#queue.push(q);
    this.#drainQueue();
  }

  /** Move ready events to the chunk buffer in order; an event waiting for its echo holds the rest. */
  #drainQueue(): void {
    let i = 0;
    for (; i < this.#queue.length; i++) {
      const q = this.#queue[i]!;
      if (q.state !== 'ready') break;
      if (q.line !== '') this.#emit(q.line);
    }
    if (i > 0) this.#queue = this.#queue.slice(i);
    if (this.#lineBytes >= CHUNK_BYTES) this.#flush();
    else this.#arm();
  }

  #emit(line: string): void {
    if (this.#truncated) return;
    if (this.#bytes + line.length > this.#max && this.#events > 0) {
      this.#truncated = true;
      line = eventLine(
        this.#seconds(),
        'o',
        `\r\n[hoop: the recording stops here, at its size limit of ${this.#max} bytes]\r\n`,
      );
    }
    const isHeader = this.#bytes === 0;
    this.#bytes += Buffer.byteLength(line);
    if (!isHeader) this.#events++;
    this.#hash.update(line);
    this.#lines.push(line);
    this.#lineBytes += line.length;
  }

  #arm(): void {
    if (this.#timer || this.#finished) return;
    if (this.#lines.length === 0 && this.#queue.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#settleEchoes(this.#now());
      this.#flush();
      this.#arm();
    }, CHUNK_MS);
    this.#timer.unref();
  }

  #flush(): void {
    if (this.#lines.length === 0) return;
    const chunk: RecordingChunk = { recording: this.#o.id, seq: this.#seq++, body: this.#lines.join('') };
    this.#lines = [];
    this.#lineBytes = 0;
    this.#writing = this.#writing
      .then(() => this.#o.write([chunk]))
      .catch((err: unknown) => this.#o.onError?.(err));
  }

  /** End the recording: what waits for an echo is dropped, the rest written; resolves when durable. */
  async finish(): Promise<RecordingSummary> {
    if (!this.#finished) {
      const tailOut = this.#out.end();
      if (tailOut) this.output(Buffer.from(tailOut));
      this.#settleEchoes(Number.POSITIVE_INFINITY);
      this.#finished = true;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      this.#flush();
    }
    await this.#writing;
    return {
      id: this.#o.id,
      bytes: this.#bytes,
      events: this.#events,
      sha256: this.#hash.copy().digest('hex'),
      truncated: this.#truncated,
      ...(this.#hidden > 0 ? { hidden_input_chars: this.#hidden } : {}),
    };
  }
}

function eventLine(seconds: number, type: 'o' | 'i' | 'r', text: string): string {
  return `${JSON.stringify([seconds, type, text])}\n`;
}

/** A whole recording's text from its chunks (in seq order), for `audit replay`. */
export function recordingText(chunks: readonly RecordingChunk[]): string {
  return [...chunks]
    .sort((a, b) => a.seq - b.seq)
    .map((c) => c.body)
    .join('');
}

/** One recording to replay, with what its transcript event says about it. */
export interface ReplayPart {
  cast: string;
  /** e.g. `ssh build-host: make deploy` */
  label: string;
}

/**
 * Several recordings as one asciicast v2 file, one after another (a second apart, whatever the real
 * gap), each introduced by a line naming it: what `hoop-broker audit replay` writes. Pure.
 */
export function mergeRecordings(parts: readonly ReplayPart[], title: string): string {
  let width = 80;
  let height = 24;
  let timestamp: number | undefined;
  const parsed = parts.map((p) => {
    const lines = p.cast.split('\n').filter((l) => l !== '');
    const header = JSON.parse(lines[0] ?? '{}') as { width?: number; height?: number; timestamp?: number };
    width = Math.max(width, header.width ?? 0);
    height = Math.max(height, header.height ?? 0);
    timestamp ??= header.timestamp;
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    return { label: p.label, events, size: `${header.width ?? 80}x${header.height ?? 24}` };
  });
  const out: string[] = [
    JSON.stringify({ version: 2, width, height, ...(timestamp !== undefined ? { timestamp } : {}), title }),
  ];
  let offset = 0;
  for (const part of parsed) {
    out.push(JSON.stringify([round(offset), 'r', part.size]));
    out.push(JSON.stringify([round(offset), 'o', `\r\n\x1b[7m[hoop] ${part.label}\x1b[0m\r\n`]));
    let last = 0;
    for (const [t, type, data] of part.events) {
      last = Math.max(last, t);
      out.push(JSON.stringify([round(offset + t), type, data]));
    }
    offset += last + 1;
  }
  return `${out.join('\n')}\n`;
}

const round = (t: number) => Math.round(t * 1_000_000) / 1_000_000;
