// A passive RFC 6455 frame reader: the payloads of the data frames passing through (unmasked), for
// reading port-forward's SPDY-over-WebSocket tunnel without terminating it. Handles frames split or
// coalesced across reads; control frames (ping, pong, close) are skipped.

export class WsFrameReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: Buffer[] = [];
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) break;
      const opcode = b[0]! & 0x0f;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(64 * 1024 * 1024)) throw new Error('WebSocket frame too large');
        len = Number(big);
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) {
        const payload = Buffer.from(b.subarray(off, off + len));
        if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ b[maskOff + (i & 3)]!;
        if (payload.length) out.push(payload);
      }
      this.#buf = b.subarray(off + len);
    }
    return out;
  }
}
