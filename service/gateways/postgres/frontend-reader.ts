// Frontend (client → server) framing. Bytes arrive in arbitrary pieces: one 'data' event may hold
// half a message or twenty. The reader keeps the pieces, hands out whole messages (a view into the
// original chunk when a message lies within one, a single copy otherwise), and refuses anything
// malformed or over the size limits as a value, never by throwing.

/** Startup-phase request codes (in place of a protocol version). */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

export const FrontendType = {
  query: 0x51, // Q
  parse: 0x50, // P
  bind: 0x42, // B
  describe: 0x44, // D
  execute: 0x45, // E
  sync: 0x53, // S
  flush: 0x48, // H
  close: 0x43, // C
  functionCall: 0x46, // F
  copyData: 0x64, // d
  copyDone: 0x63, // c
  copyFail: 0x66, // f
  terminate: 0x58, // X
  password: 0x70, // p (PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse)
} as const;

const KNOWN_TYPES = new Set<number>(Object.values(FrontendType));

export type StartupPacket =
  | { kind: 'ssl-request' }
  | { kind: 'gssenc-request' }
  | { kind: 'cancel-request'; processId: number; secretKey: Buffer }
  | {
      kind: 'startup';
      major: number;
      minor: number;
      parameters: Map<string, string>;
      /** `_pq_.*` protocol options the client asked for (we support none) */
      protocolOptions: string[];
    };

export type ReadOutcome<T> =
  { kind: 'ok'; value: T } | { kind: 'incomplete' } | { kind: 'invalid'; message: string };

export interface FrontendMessage {
  type: number;
  /** the message body (after the 5-byte header) */
  body: Buffer;
  /** header + body, for forwarding unchanged */
  raw: Buffer;
}

export interface FrontendLimits {
  /** per-type maximum total length (header included); types not listed use `otherMax` */
  largeTypes: ReadonlySet<number>;
  largeMax: number;
  otherMax: number;
}

/** Types that legitimately carry large payloads (statement text, parameters, COPY data). */
export const LARGE_FRONTEND_TYPES: ReadonlySet<number> = new Set([
  FrontendType.query,
  FrontendType.parse,
  FrontendType.bind,
  FrontendType.functionCall,
  FrontendType.copyData,
]);

export class FrontendReader {
  private chunks: Buffer[] = [];
  /** read offset into chunks[0] */
  private offset = 0;
  private total = 0;

  /** bytes received and not yet handed out (a partial message when > 0 after reading) */
  get buffered(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Remove and return everything buffered (used when the stream changes owner, e.g. after TLS). */
  drain(): Buffer {
    const out = this.take(this.total);
    return out;
  }

  readStartup(maxLength: number): ReadOutcome<StartupPacket> {
    if (this.total < 4) return { kind: 'incomplete' };
    const length = this.int32At(0);
    if (length < 8 || length > maxLength)
      return { kind: 'invalid', message: `invalid length of startup packet (${length})` };
    if (this.total < length) return { kind: 'incomplete' };
    const packet = this.take(length);
    const code = packet.readInt32BE(4);
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      if (length !== 8) return { kind: 'invalid', message: 'invalid length of SSL/GSSENC request' };
      return { kind: 'ok', value: { kind: code === SSL_REQUEST_CODE ? 'ssl-request' : 'gssenc-request' } };
    }
    if (code === CANCEL_REQUEST_CODE) {
      // Protocol 3.0 keys are 4 bytes; 3.2 allows up to 256. Anything else is not a cancel request.
      if (length < 16 || length > 12 + 256)
        return { kind: 'invalid', message: 'invalid length of cancel request' };
      return {
        kind: 'ok',
        value: {
          kind: 'cancel-request',
          processId: packet.readInt32BE(8),
          secretKey: Buffer.from(packet.subarray(12)),
        },
      };
    }
    const major = code >>> 16;
    const minor = code & 0xffff;
    if (major !== 3)
      return {
        kind: 'invalid',
        message: `unsupported frontend protocol ${major}.${minor}: server supports 3.0`,
      };
    const parameters = new Map<string, string>();
    const protocolOptions: string[] = [];
    let pos = 8;
    for (;;) {
      if (pos >= length) return { kind: 'invalid', message: 'startup packet is missing its terminator' };
      if (packet[pos] === 0) {
        if (pos !== length - 1)
          return { kind: 'invalid', message: 'startup packet has data after its terminator' };
        break;
      }
      const keyEnd = packet.indexOf(0, pos);
      if (keyEnd < 0 || keyEnd >= length - 1)
        return { kind: 'invalid', message: 'startup packet has a parameter without a value' };
      const valueEnd = packet.indexOf(0, keyEnd + 1);
      if (valueEnd < 0) return { kind: 'invalid', message: 'startup packet has an unterminated value' };
      const rawKey = packet.toString('utf8', pos, keyEnd);
      const value = packet.toString('utf8', keyEnd + 1, valueEnd);
      // PostgreSQL's setting names are case-insensitive (Client_Encoding is client_encoding): keys
      // are kept lower-cased, so every check downstream sees the name the server will apply, and a
      // name given twice in any letter case is refused (which one would the server take?).
      const key = rawKey.toLowerCase();
      if (rawKey.startsWith('_pq_.')) protocolOptions.push(rawKey);
      else if (parameters.has(key))
        return {
          kind: 'invalid',
          message: `startup parameter "${key}" given more than once (setting names are case-insensitive)`,
        };
      else parameters.set(key, value);
      pos = valueEnd + 1;
    }
    return { kind: 'ok', value: { kind: 'startup', major, minor, parameters, protocolOptions } };
  }

  readMessage(limits: FrontendLimits): ReadOutcome<FrontendMessage> {
    if (this.total < 5) return { kind: 'incomplete' };
    const type = this.byteAt(0);
    if (!KNOWN_TYPES.has(type))
      return { kind: 'invalid', message: `invalid frontend message type ${describeType(type)}` };
    const length = this.int32At(1);
    const max = limits.largeTypes.has(type) ? limits.largeMax : limits.otherMax;
    if (length < 4)
      return {
        kind: 'invalid',
        message: `invalid message length ${length} for message type ${describeType(type)}`,
      };
    if (length + 1 > max) {
      return {
        kind: 'invalid',
        message: `message type ${describeType(type)} of ${length + 1} bytes exceeds the broker's limit of ${max} bytes`,
      };
    }
    if (this.total < length + 1) return { kind: 'incomplete' };
    const raw = this.take(length + 1);
    return { kind: 'ok', value: { type, body: raw.subarray(5), raw } };
  }

  private byteAt(i: number): number {
    let idx = this.offset + i;
    for (const c of this.chunks) {
      if (idx < c.length) return c[idx]!;
      idx -= c.length;
    }
    throw new RangeError('read past the buffered bytes'); // callers check `total` first
  }

  private int32At(i: number): number {
    const first = this.chunks[0]!;
    if (this.offset + i + 4 <= first.length) return first.readInt32BE(this.offset + i);
    return (
      (this.byteAt(i) << 24) | (this.byteAt(i + 1) << 16) | (this.byteAt(i + 2) << 8) | this.byteAt(i + 3) | 0
    );
  }

  /** Remove n bytes from the front; a view when they lie in one chunk, one copy otherwise. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (this.offset + n <= first.length) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      this.total -= n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const avail = c.length - this.offset;
      const want = Math.min(avail, n - filled);
      c.copy(out, filled, this.offset, this.offset + want);
      filled += want;
      this.offset += want;
      if (this.offset === c.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    this.total -= n;
    return out;
  }
}

export function describeType(type: number): string {
  return type >= 0x20 && type < 0x7f
    ? `"${String.fromCharCode(type)}"`
    : `0x${type.toString(16).padStart(2, '0')}`;
}
