// Transcript chunk bodies of the embedded store in append-only files (segments), beside the database.
//
// Why. An append to the embedded store costs in proportion to its bytes: PGlite (PostgreSQL in
// WebAssembly) takes a transcript chunk's text through its protocol buffers, TOAST and WAL at about
// 20 ns a byte, which made it most of the store's CPU per recorded statement. A file append of the same
// bytes costs a write and the fsync the commit needs anyway. The database stays the authority: a chunk
// exists when its event_chunks row (with the body's segment, offset and length) commits, and that row
// is inserted only after the body is on disk. Bytes written but never referenced (a crash between the
// file's fsync and the commit, a compare-and-set that lost) are dead space, never read.
//
// Format. Each body is one line of JSON (a segment is JSON Lines):
//   {"session_id":"ses_…","first_seq":12,"prev_hash":"…","events":[…]}\n
// so a segment can be read (and a transcript rebuilt) without the database. The row's offset and
// length cover the line without its newline.
import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** Where a chunk's body lies. */
export interface BodyRef {
  segment: number;
  offset: number;
  length: number;
}

/** A chunk body to write: its session, first seq, the first event's prev_hash, and its events' JSON array. */
export interface BodyToWrite {
  sessionId: string;
  firstSeq: number;
  prevHash: string;
  /** the chunk's events as a JSON array (chunkParams' text) */
  eventsJson: string;
}

/** A new segment is started once the current one is this large. */
const SEGMENT_BYTES = 256 * 1024 * 1024;
const SEGMENT_NAME = /^(\d{6,})\.jsonl$/;

const segmentName = (n: number): string => `${String(n).padStart(6, '0')}.jsonl`;

export class ChunkFile {
  readonly #dir: string;
  #segment = 0;
  #fd = -1;
  #size = 0;
  /** read-only descriptors of earlier segments, opened on first read */
  readonly #readers = new Map<number, number>();
  #closed = false;
  /** the segment is known to end with a newline (or be empty): false after opening and after a failure */
  #clean = false;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Open (creating) the segment directory and the last segment, for appending after whatever it holds. */
  static open(dir: string): ChunkFile {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const f = new ChunkFile(dir);
    const last = Math.max(0, ...readdirSync(dir).map((name) => Number(SEGMENT_NAME.exec(name)?.[1] ?? 0)));
    f.#openSegment(last || 1, last === 0);
    return f;
  }

  #openSegment(n: number, created: boolean): void {
    const fd = openSync(join(this.#dir, segmentName(n)), 'a+', 0o600);
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = fd;
    this.#segment = n;
    this.#size = fstatSync(fd).size;
    if (created || this.#size === 0) {
      // the new file's directory entry must be durable too
      const dirFd = openSync(this.#dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    }
  }

  /**
   * Write bodies in one write and make them durable (fdatasync) before returning where each lies. Throws
   * if the file system refuses; then nothing may refer to what was written.
   */
  append(bodies: readonly BodyToWrite[]): BodyRef[] {
    if (this.#closed) throw new Error('transcript file is closed');
    if (bodies.length === 0) return [];
    if (this.#size >= SEGMENT_BYTES) this.#openSegment(this.#segment + 1, true);
    if (!this.#clean) {
      // after a crash or a failed write the file may end mid-line: start on a line of our own
      this.#size = fstatSync(this.#fd).size;
      if (this.#size > 0) {
        const last = Buffer.alloc(1);
        readSync(this.#fd, last, 0, 1, this.#size - 1);
        if (last[0] !== 0x0a) {
          writeSync(this.#fd, '\n');
          this.#size++;
        }
      }
    }
    this.#clean = false;
    const lines = bodies.map(
      (b) =>
        `{"session_id":${JSON.stringify(b.sessionId)},"first_seq":${b.firstSeq},` +
        `"prev_hash":${JSON.stringify(b.prevHash)},"events":${b.eventsJson}}`,
    );
    const buf = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    // Where each line lies, from the encoded bytes: JSON has no raw LF inside a line, so the lines end
    // at the LFs. (Buffer.byteLength of each line would flatten and encode every line a second time.)
    const refs: BodyRef[] = [];
    let start = 0;
    for (let k = 0; k < lines.length; k++) {
      const end = buf.indexOf(0x0a, start);
      refs.push({ segment: this.#segment, offset: this.#size + start, length: end - start });
      start = end + 1;
    }
    let written = 0;
    while (written < buf.length) written += writeSync(this.#fd, buf, written, buf.length - written);
    fdatasyncSync(this.#fd);
    this.#size += buf.length;
    this.#clean = true;
    return refs;
  }

  /** The chunk's events (its JSON array, parsed) from the body at `ref`, checked against the row. */
  read(ref: BodyRef, sessionId: string, firstSeq: number): unknown {
    const where = `transcript of ${sessionId}: the chunk at seq ${firstSeq} (${segmentName(ref.segment)} at byte ${ref.offset})`;
    const fd = this.#readerFor(ref.segment, where);
    const buf = Buffer.allocUnsafe(ref.length);
    let got = 0;
    while (got < ref.length) {
      const n = readSync(fd, buf, got, ref.length - got, ref.offset + got);
      if (n === 0) throw new Error(`${where} is cut short: the file ends before its ${ref.length} bytes`);
      got += n;
    }
    let body: unknown;
    try {
      body = JSON.parse(buf.toString('utf8'));
    } catch (err) {
      throw new Error(`${where} is not valid JSON (${(err as Error).message})`, { cause: err });
    }
    const b = body as { session_id?: unknown; first_seq?: unknown; events?: unknown } | null;
    if (b === null || typeof b !== 'object' || b.session_id !== sessionId || b.first_seq !== firstSeq)
      throw new Error(`${where} holds another chunk than its row says`);
    return b.events;
  }

  #readerFor(segment: number, where: string): number {
    if (segment === this.#segment) return this.#fd;
    let fd = this.#readers.get(segment);
    if (fd === undefined) {
      try {
        fd = openSync(join(this.#dir, segmentName(segment)), 'r');
      } catch (err) {
        throw new Error(`${where} cannot be read: ${(err as Error).message}`, { cause: err });
      }
      this.#readers.set(segment, fd);
    }
    return fd;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#readers.values()) closeSync(fd);
    this.#readers.clear();
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}
