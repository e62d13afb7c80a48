// Reads a SPDY/3.1 exec or port-forward connection as it passes through the broker, without
// changing a byte: which stream is stdin/stdout/stderr/error/resize (the `streamtype` header of each
// SYN_STREAM), the bytes on each, the exit status, and for port-forward the `port` of each stream
// (checked against the grant before the frame is passed on).
import { CHANNEL, type ExecRecording } from './exec-record.js';
import { FRAME, FrameReader, first, HeaderInflater, streamIdOf } from './spdy.js';

const STREAM_CHANNEL: Record<string, number> = {
  stdin: CHANNEL.stdin,
  stdout: CHANNEL.stdout,
  stderr: CHANNEL.stderr,
  error: CHANNEL.error,
  resize: CHANNEL.resize,
};

export interface SpdyObserverOptions {
  recording: ExecRecording | null;
  /** port-forward: the decision for a stream's port; null: no port check */
  portPolicy: ((port: number) => { effect: string; reasons: string[] }) | null;
}

/** A client frame refused: the port its stream asked for, and why. */
export interface PortRefusal {
  port: number;
  reasons: string[];
}

export class SpdyObserver {
  readonly #o: SpdyObserverOptions;
  readonly #client = new FrameReader();
  readonly #server = new FrameReader();
  readonly #clientHeaders = new HeaderInflater();
  readonly #serverHeaders = new HeaderInflater();
  readonly #channels = new Map<number, number>();
  readonly ports = new Set<number>();
  #broken = false;

  constructor(o: SpdyObserverOptions) {
    this.#o = o;
  }

  /** Client bytes, in order; a refusal: do not pass them on (a port the grant does not allow). */
  async fromClient(chunk: Buffer): Promise<true | PortRefusal> {
    if (this.#broken) return true;
    try {
      for (const f of this.#client.push(chunk)) {
        if (f.control) {
          if (f.type !== FRAME.SYN_STREAM && f.type !== FRAME.HEADERS) continue;
          const id = streamIdOf(f.data);
          const h = await this.#clientHeaders.decode(f.data.subarray(f.type === FRAME.SYN_STREAM ? 10 : 4));
          const type = first(h, 'streamtype');
          if (type && STREAM_CHANNEL[type] !== undefined) this.#channels.set(id, STREAM_CHANNEL[type]!);
          const port = first(h, 'port');
          if (port !== undefined && this.#o.portPolicy) {
            const n = Number.parseInt(port, 10);
            const d = this.#o.portPolicy(n);
            if (d.effect !== 'allow') return { port: n, reasons: d.reasons };
            this.ports.add(n);
          }
        } else {
          const ch = this.#channels.get(f.streamId);
          if (ch !== undefined) this.#o.recording?.fromClient(ch, f.data);
        }
      }
    } catch {
      // a stream the broker cannot read is still the client's; stop reading it, keep passing it
      // — except when ports are checked: then an unreadable stream is refused
      this.#broken = true;
      if (this.#o.portPolicy) return { port: 0, reasons: ['the port-forward stream could not be read'] };
    }
    return true;
  }

  #serverChain: Promise<void> = Promise.resolve();

  /** Server bytes, passed on already: read in order, in the background. */
  fromServer(chunk: Buffer): void {
    this.#serverChain = this.#serverChain.then(() => this.#readServer(chunk));
  }

  async #readServer(chunk: Buffer): Promise<void> {
    if (this.#broken) return;
    try {
      for (const f of this.#server.push(chunk)) {
        if (f.control) {
          // keep the server's header context in step (SYN_REPLY, HEADERS)
          if (f.type === FRAME.SYN_REPLY || f.type === FRAME.HEADERS)
            this.#serverHeaders.decode(f.data.subarray(4));
          continue;
        }
        const ch = this.#channels.get(f.streamId);
        if (ch !== undefined) this.#o.recording?.fromServer(ch, f.data);
      }
    } catch {
      this.#broken = true;
    }
  }

  close(): void {
    this.#clientHeaders.close();
    this.#serverHeaders.close();
  }
}
