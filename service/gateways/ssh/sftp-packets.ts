// SFTP version 3 (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it) at the byte level: framing,
// reading the fields the policy needs from requests, and the few packets the broker writes itself
// (a STATUS for a refused request, the VERSION reply with the extensions it passes on).
//
// The gateway proxies SFTP packet by packet: it reads each request's type and paths, asks the policy,
// and forwards the packet's bytes unchanged (or answers it itself). Responses flow back unchanged too,
// read only for their type and request id. Nothing here re-encodes file data.

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

/** Splits a byte stream into whole SFTP packets (length prefix included), whatever the chunking. */
export class SftpFramer {
  /** the start of an incomplete packet, in pieces (joined once it is whole) */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** the incomplete packet's whole size (prefix included), once its prefix is in */
  #need = 0;

  /** Feed bytes; returns the packets completed (views into the input where possible), or why not. */
  push(chunk: Buffer): Buffer[] | Error {
    const packets: Buffer[] = [];
    let data = chunk;
    if (this.#pendingBytes > 0) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#need === 0) {
        if (this.#pendingBytes < 4) return packets;
        const head = Buffer.concat(this.#pending);
        this.#pending = [head];
        const length = head.readUInt32BE(0);
        if (length > SFTP_MAX_PACKET || length === 0) return new Error(`SFTP packet of ${length} bytes`);
        this.#need = length + 4;
      }
      if (this.#pendingBytes < this.#need) return packets;
      data = Buffer.concat(this.#pending);
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#need = 0;
    }
    let offset = 0;
    while (data.length - offset >= 4) {
      const length = data.readUInt32BE(offset);
      if (length > SFTP_MAX_PACKET || length === 0) return new Error(`SFTP packet of ${length} bytes`);
      if (data.length - offset < length + 4) {
        this.#need = length + 4;
        break;
      }
      packets.push(data.subarray(offset, offset + 4 + length));
      offset += 4 + length;
    }
    if (offset < data.length) {
      // copied: the caller may reuse the chunk's memory once we return
      this.#pending = [Buffer.from(data.subarray(offset))];
      this.#pendingBytes = data.length - offset;
    }
    return packets;
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
