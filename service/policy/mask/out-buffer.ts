// The output buffer the COPY masker writes masked rows into, reused from chunk to chunk; what it
// holds is copied out once per chunk (take).
//
// Most of what goes into it is unchanged bytes of the chunk being masked (the rest of a row around
// a masked cell). Buffer#copy of a range makes a Uint8Array view per call, which costs more than the
// copy of a row's hundred bytes; so the chunk can be mirrored into the tail of the buffer once
// (mirror), and its ranges are then moved with copyWithin inside one buffer, with no view made.
// Writes stay below the mirror; output that grows past it (masks longer than what they replace)
// moves the mirror out of the way first.

export class OutBuffer {
  buf: Buffer = Buffer.allocUnsafe(64 * 1024);
  len = 0;
  /** the buffer mirrored into buf's tail, and where: src offset i is buf offset i + srcDelta */
  private src: Buffer | null = null;
  private srcDelta = 0;
  /** where the mirror starts in buf (writes stay below it) */
  private srcLow = 0;

  /** Mirror src[start, end): ranges of src written from now on are copied within buf. */
  mirror(src: Buffer, start: number, end: number): void {
    const n = end - start;
    // room for the output to outgrow the input by 4 KB (or a quarter) before the mirror must move
    const need = this.len + n + Math.max(4096, n >> 2) + n;
    if (this.buf.length < need) this.realloc(need, false);
    const low = this.buf.length - n;
    src.copy(this.buf, low, start, end);
    this.src = src;
    this.srcDelta = low - start;
    this.srcLow = low;
  }

  /** Stop mirroring (the source buffer is not kept). */
  unmirror(): void {
    this.src = null;
    this.srcLow = this.buf.length;
  }

  /** a bigger buffer with what was written, and the mirror (if kept) at its new tail */
  private realloc(size: number, keepMirror: boolean): void {
    let cap = this.buf.length * 2;
    while (cap < size) cap *= 2;
    const bigger = Buffer.allocUnsafe(cap);
    this.buf.copy(bigger, 0, 0, this.len);
    if (keepMirror && this.src) {
      const n = this.buf.length - this.srcLow;
      this.buf.copy(bigger, cap - n, this.srcLow, this.buf.length);
      this.srcDelta += cap - this.buf.length;
      this.srcLow = cap - n;
    } else {
      this.src = null;
      this.srcLow = cap;
    }
    this.buf = bigger;
  }

  private ensure(extra: number): void {
    const limit = this.src ? this.srcLow : this.buf.length;
    if (this.len + extra <= limit) return;
    const mirrored = this.src ? this.buf.length - this.srcLow : 0;
    this.realloc(this.len + extra + mirrored + 4096, true);
  }

  range(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n <= 0) return;
    this.ensure(n);
    if (n > 16 && src === this.src) {
      this.buf.copyWithin(this.len, start + this.srcDelta, end + this.srcDelta);
      this.len += n;
      return;
    }
    if (n > 48) {
      this.len += src.copy(this.buf, this.len, start, end);
      return;
    }
    // a few bytes (a field, a terminator): a loop costs less than Buffer#copy's own overhead
    const dst = this.buf;
    let at = this.len;
    for (let i = start; i < end; i++) dst[at++] = src[i]!;
    this.len = at;
  }

  bytes(b: Buffer): void {
    this.range(b, 0, b.length);
  }

  byte(c: number): void {
    this.ensure(1);
    this.buf[this.len++] = c;
  }

  /** a copy of what was written (the buffer itself is reused) */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.len);
    this.buf.copy(out, 0, 0, this.len);
    return out;
  }
}
