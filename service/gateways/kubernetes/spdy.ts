// SPDY/3.1 framing, as kubectl speaks it for exec, attach and port-forward (draft-mbelshe-httpbis-
// spdy-00 with the 3.1 flow-control amendments). Frames:
//   control: [1 | version:15 = 3][type:16][flags:8][length:24][data]
//   data:    [0 | stream id:31][flags:8][length:24][data]
// Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are [count:32]([len:32][name][len:32][value])*,
// compressed with zlib over one stream per direction, seeded with the SPDY/3 dictionary, each block
// ended with a sync flush. A reader handles frames split or coalesced across reads.
import zlib from 'node:zlib';

export const FRAME = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;
export const FLAG_FIN = 0x01;
/** Frames larger than this are refused (spdystream's limit is 16 MiB - 1 too: the length is 24 bits). */
export const MAX_FRAME_BYTES = 0xffffff;

/** The SPDY/3 header compression dictionary (section 2.6.10.1): header names and common values. */
export const SPDY3_DICTIONARY: Buffer = (() => {
  const words = [
    ...'options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age allow authorization cache-control connection content-base content-encoding content-language content-length content-location content-md5 content-range content-type date etag expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate method get status'.split(
      ' ',
    ),
    '200 OK',
    'version',
    'HTTP/1.1',
    'url',
    'public',
    'set-cookie',
    'keep-alive',
    'origin',
  ];
  const tail =
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
    '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
    '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
    'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
    'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,' +
    'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
  const parts: Buffer[] = [];
  for (const w of words) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(w.length);
    parts.push(len, Buffer.from(w, 'latin1'));
  }
  parts.push(Buffer.from(tail, 'latin1'));
  return Buffer.concat(parts);
})();

export type SpdyFrame =
  | { control: true; type: number; flags: number; data: Buffer }
  | { control: false; streamId: number; flags: number; data: Buffer };

/** Incremental frame reader: push bytes, get whole frames. */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): SpdyFrame[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const frames: SpdyFrame[] = [];
    while (this.#buf.length >= 8) {
      const length = this.#buf.readUIntBE(5, 3);
      if (this.#buf.length < 8 + length) break;
      const first = this.#buf.readUInt32BE(0);
      const flags = this.#buf[4]!;
      const data = this.#buf.subarray(8, 8 + length);
      if (first & 0x80000000) {
        const version = (first >>> 16) & 0x7fff;
        if (version !== 3) throw new Error(`SPDY version ${version} is not supported`);
        frames.push({ control: true, type: first & 0xffff, flags, data });
      } else frames.push({ control: false, streamId: first & 0x7fffffff, flags, data });
      this.#buf = this.#buf.subarray(8 + length);
    }
    return frames;
  }
}

/**
 * One direction's zlib context. Node's zlib streams are asynchronous; each block is written and
 * sync-flushed, and callers await one block before the next (the context is shared, order matters).
 */
class ZContext {
  readonly #z: zlib.Inflate | zlib.Deflate;
  #out: Buffer[] = [];
  #error: Error | null = null;

  constructor(z: zlib.Inflate | zlib.Deflate) {
    this.#z = z;
    z.on('data', (c: Buffer) => this.#out.push(c));
    z.on('error', (err: Error) => (this.#error = err));
  }

  run(input: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      this.#z.write(input);
      this.#z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.#error) return reject(this.#error);
        const out = Buffer.concat(this.#out);
        this.#out = [];
        resolve(out);
      });
    });
  }

  close(): void {
    this.#z.close();
  }
}

/** One direction's header decompression context. */
export class HeaderInflater {
  readonly #z = new ZContext(zlib.createInflate({ dictionary: SPDY3_DICTIONARY }));

  async decode(block: Buffer): Promise<Map<string, string[]>> {
    const raw = block.length ? await this.#z.run(block) : Buffer.alloc(0);
    return parseHeaderBlock(raw);
  }

  close(): void {
    this.#z.close();
  }
}

export function parseHeaderBlock(raw: Buffer): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  if (raw.length < 4) return headers;
  const n = raw.readUInt32BE(0);
  let i = 4;
  const take = (): string => {
    if (i + 4 > raw.length) throw new Error('truncated SPDY header block');
    const len = raw.readUInt32BE(i);
    i += 4;
    if (i + len > raw.length) throw new Error('truncated SPDY header block');
    const v = raw.subarray(i, i + len).toString('latin1');
    i += len;
    return v;
  };
  for (let k = 0; k < n; k++) {
    const name = take().toLowerCase();
    headers.set(name, take().split('\0'));
  }
  return headers;
}

/** One direction's header compression context. */
export class HeaderDeflater {
  readonly #z = new ZContext(zlib.createDeflate({ dictionary: SPDY3_DICTIONARY }));

  encode(headers: Record<string, string>): Promise<Buffer> {
    const parts: Buffer[] = [];
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const entries = Object.entries(headers);
    parts.push(u32(entries.length));
    for (const [k, v] of entries) {
      const kb = Buffer.from(k.toLowerCase(), 'latin1');
      const vb = Buffer.from(v, 'latin1');
      parts.push(u32(kb.length), kb, u32(vb.length), vb);
    }
    return this.#z.run(Buffer.concat(parts));
  }

  close(): void {
    this.#z.close();
  }
}

export function controlFrame(type: number, flags: number, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE((0x8000 | 3) * 0x10000 + type);
  head.writeUInt32BE(((flags & 0xff) * 0x1000000 + data.length) >>> 0, 4);
  return Buffer.concat([head, data]);
}

export function dataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamId & 0x7fffffff);
  head.writeUInt32BE(((flags & 0xff) * 0x1000000 + data.length) >>> 0, 4);
  return Buffer.concat([head, data]);
}

export const streamIdOf = (data: Buffer): number => data.readUInt32BE(0) & 0x7fffffff;

export const first = (h: Map<string, string[]>, name: string): string | undefined => h.get(name)?.[0];
