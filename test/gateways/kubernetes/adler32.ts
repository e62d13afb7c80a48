// Adler-32 (RFC 1950), the dictionary id a zlib stream names its preset dictionary by.
export function adler32Of(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of buf) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}
