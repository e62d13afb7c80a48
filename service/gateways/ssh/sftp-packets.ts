// SFTP version 3 (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it) at the byte level: framing,
// reading the fields the policy needs from requests, and the few packets the broker writes itself
// (a STATUS for a refused request, the VERSION reply with the extensions it passes on).
//
// The gateway proxies SFTP packet by packet: it reads each request's type and paths, asks the policy,
// and forwards the packet's bytes unchanged (or answers it itself). Responses flow back unchanged too,
// read only for their type and request id. Nothing here re-encodes or gathers file data: WRITE and
// DATA packets are judged by their head and their data passes as views of the chunks it came in
// (SftpStreamFramer); measured in bench/ssh.ts.

export const SFTP_MAX_PACKET = 256 * 1024 + 1024;

export const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

export const FX = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  OP_UNSUPPORTED: 8,
} as const;

/** SSH_FXF_* open flags */
export const FXF = { READ: 0x01, WRITE: 0x02, APPEND: 0x04, CREAT: 0x08, TRUNC: 0x10, EXCL: 0x20 } as const;

/**
 * Extensions the broker passes on from the server's VERSION (each one's requests are judged like
 * their plain counterparts); others are dropped, so clients fall back to the plain requests.
 */
export const PASSED_EXTENSIONS = new Set([
  'posix-rename@openssh.com',
  'statvfs@openssh.com',
  'fstatvfs@openssh.com',
  'hardlink@openssh.com',
  'fsync@openssh.com',
  'lsetstat@openssh.com',
  'limits@openssh.com',
  'expand-path@openssh.com',
]);

/**
 * What a stream's reader does with each packet, once the framer holds its head (the whole packet,
 * unless its type's body streams: then only the fields before the data).
 */
export interface FrameSink {
  /** Judge a packet from its head; true: its bytes go on unchanged; false: it is dropped (answered). */
  head(head: Buffer, total: number): boolean;
  /** Bytes going on: views of the input, adjacent ones merged, so a chunk that passes whole is one write. */
  out(bytes: Buffer): void;
}

/**
 * How many leading bytes of a packet its reader needs (given at least min(13, total) of them): for
 * the types in `streamed` (WRITE from the client: id, handle, offset, length; DATA from the server:
 * id, length) only those fields, and the data streams past as it arrives; the whole packet otherwise.
 */
export function headLength(view: Buffer, total: number, streamed: 'client' | 'server'): number {
  const type = view[4];
  if (streamed === 'client' && type === FXP.WRITE && view.length >= 13)
    return Math.min(total, 13 + view.readUInt32BE(9) + 12);
  if (streamed === 'server' && type === FXP.DATA) return Math.min(total, 13);
  return total;
}

/**
 * Splits an SFTP byte stream into packets and passes them on without copying file data: a packet's
 * head is judged once it is in (FrameSink.head), then its bytes go on as views of the chunks they came
 * in; only a head cut across chunks is copied (a few bytes for WRITE/DATA, a small request otherwise).
 * So a DATA or WRITE packet larger than an ssh channel packet is not gathered before it goes on, and
 * a chunk that passes whole goes on as the one buffer it came as.
 *
 * Packets the broker writes itself into this stream's output (inject: a refusal's STATUS, the
 * filtered VERSION) wait while a passing packet is half out, so they never land inside one.
 */
export class SftpStreamFramer {
  readonly #streamed: 'client' | 'server';
  readonly #sink: FrameSink;
  /** the bytes of a head cut across chunks, so far (copied) */
  #pending: Buffer | null = null;
  /** bytes of the current packet still to pass on, after its head went on */
  #passing = 0;
  /** bytes of the current (dropped) packet still to skip */
  #skipping = 0;
  #queued: Buffer[] = [];
  /** while push runs: writes out its run of passing bytes */
  #flush: (() => void) | null = null;
  #broken = false;

  constructor(streamed: 'client' | 'server', sink: FrameSink) {
    this.#streamed = streamed;
    this.#sink = sink;
  }

  /** Write a packet of the broker's own into the output, at the next packet boundary. */
  inject(packet: Buffer): void {
    if (this.#passing > 0) {
      this.#queued.push(packet);
      return;
    }
    this.#flush?.();
    this.#sink.out(packet);
  }

  #drainQueue(): void {
    if (this.#queued.length === 0) return;
    this.#flush?.();
    const queued = this.#queued;
    this.#queued = [];
    for (const q of queued) this.#sink.out(q);
  }

  /** How many head bytes a packet needs, from what of it is in; an Error for a bad length. */
  #want(view: Buffer): { want: number; total: number } | Error {
    if (view.length < 4) return { want: 4, total: 0 };
    const length = view.readUInt32BE(0);
    if (length > SFTP_MAX_PACKET || length === 0) return new Error(`SFTP packet of ${length} bytes`);
    const total = length + 4;
    const first = Math.min(13, total);
    if (view.length < first) return { want: first, total };
    return { want: headLength(view, total, this.#streamed), total };
  }

  /** Feed bytes; an Error when the stream is malformed (the framer stops). */
  push(chunk: Buffer): Error | undefined {
    if (this.#broken) return new Error('the SFTP stream is already broken');
    let runStart = -1;
    let runEnd = -1;
    const flush = () => {
      if (runStart >= 0 && runEnd > runStart) this.#sink.out(chunk.subarray(runStart, runEnd));
      runStart = -1;
    };
    const emit = (a: number, b: number) => {
      if (runStart >= 0 && runEnd === a) runEnd = b;
      else {
        flush();
        runStart = a;
        runEnd = b;
      }
    };
    this.#flush = flush;
    try {
      let off = 0;
      while (off < chunk.length) {
        if (this.#passing > 0) {
          const n = Math.min(this.#passing, chunk.length - off);
          emit(off, off + n);
          off += n;
          this.#passing -= n;
          if (this.#passing === 0) this.#drainQueue();
          continue;
        }
        if (this.#skipping > 0) {
          const n = Math.min(this.#skipping, chunk.length - off);
          off += n;
          this.#skipping -= n;
          continue;
        }
        // a new packet's head: from this chunk alone, or joined to the part an earlier chunk left
        const had = this.#pending?.length ?? 0;
        const view = this.#pending
          ? Buffer.concat([this.#pending, chunk.subarray(off, off + SFTP_MAX_PACKET)])
          : chunk.subarray(off);
        let need = this.#want(view);
        if (need instanceof Error) return this.#break(need);
        // the first bytes may say more is needed (the length, then the type's fields)
        while (need.want <= view.length) {
          const next = this.#want(view.subarray(0, need.want));
          if (next instanceof Error) return this.#break(next);
          if (next.want === need.want) break;
          need = next;
        }
        if (need.want > view.length) {
          // copied: the caller may reuse the chunk's memory once we return
          this.#pending = had > 0 ? view : Buffer.from(view);
          off = chunk.length;
          continue;
        }
        const head = view.subarray(0, need.want);
        const start = off;
        off += need.want - had;
        this.#pending = null;
        const rest = need.total - need.want;
        if (this.#sink.head(head, need.total)) {
          if (had === 0) emit(start, off);
          else {
            flush();
            this.#sink.out(head);
          }
          this.#passing = rest;
          if (rest === 0) this.#drainQueue();
        } else this.#skipping = rest;
      }
      flush();
      return undefined;
    } finally {
      this.#flush = null;
    }
  }

  #break(err: Error): Error {
    this.#broken = true;
    return err;
  }
}

/** Reads fields from one packet; a short or malformed packet throws PacketError. */
export class PacketReader {
  #offset: number;
  constructor(
    readonly packet: Buffer,
    offset = 5,
  ) {
    this.#offset = offset;
  }
  get offset(): number {
    return this.#offset;
  }
  u32(): number {
    if (this.#offset + 4 > this.packet.length) throw new PacketError('packet too short');
    const v = this.packet.readUInt32BE(this.#offset);
    this.#offset += 4;
    return v;
  }
  u64(): bigint {
    if (this.#offset + 8 > this.packet.length) throw new PacketError('packet too short');
    const v = this.packet.readBigUInt64BE(this.#offset);
    this.#offset += 8;
    return v;
  }
  bytes(): Buffer {
    const length = this.u32();
    if (this.#offset + length > this.packet.length) throw new PacketError('string past the packet end');
    const v = this.packet.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return v;
  }
  /** A path or name: UTF-8, or PacketError (the rules judge text; other bytes are refused). */
  text(): string {
    try {
      return UTF8.decode(this.bytes());
    } catch (err) {
      if (err instanceof PacketError) throw err;
      throw new PacketError('a path that is not UTF-8');
    }
  }
}

export class PacketError extends Error {}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

export const packetType = (packet: Buffer): number => packet[4] ?? 0;
/** The request id of every packet but INIT and VERSION. */
export const packetId = (packet: Buffer): number => (packet.length >= 9 ? packet.readUInt32BE(5) : -1);

function frame(type: number, parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head[4] = type;
  return Buffer.concat([head, body]);
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const str = (s: string | Buffer): Buffer => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u32(b.length), b]);
};

/** SSH_FXP_STATUS for request `id`. */
export function statusPacket(id: number, code: number, message: string): Buffer {
  return frame(FXP.STATUS, [u32(id), u32(code), str(message), str('en')]);
}

/** The server's VERSION with only the extensions the broker judges (PASSED_EXTENSIONS). */
export function filterVersion(packet: Buffer): Buffer {
  const r = new PacketReader(packet, 5);
  const version = r.u32();
  const parts = [u32(version)];
  while (r.offset < packet.length) {
    const name = r.bytes();
    const data = r.bytes();
    if (PASSED_EXTENSIONS.has(name.toString('latin1'))) parts.push(str(name), str(data));
  }
  return frame(FXP.VERSION, parts);
}

/** A STATUS reply's code. */
export function statusCode(packet: Buffer): number {
  return packet.length >= 13 ? packet.readUInt32BE(9) : FX.FAILURE;
}

/** A HANDLE reply's handle, as a map key. */
export function handleOf(packet: Buffer): string | null {
  try {
    const r = new PacketReader(packet, 9);
    return r.bytes().toString('hex');
  } catch {
    return null;
  }
}

/** A DATA reply's data length. */
export function dataLength(packet: Buffer): number {
  return packet.length >= 13 ? packet.readUInt32BE(9) : 0;
}
