// Session ids and secrets. The secret is 256 random bits, shown once; the broker keeps a SHA-256 of it
// (HTTP API, ssh) and a SCRAM-SHA-256 verifier (PostgreSQL gateway), never the secret itself.
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

export const SECRET_PREFIX = 'hoop_';

/** "ses_" + 20 random bytes, base32 lower-case (safe as a PostgreSQL user name and in URLs). */
export function newSessionId(): string {
  return `ses_${base32(randomBytes(20))}`;
}

/** 32 random bytes, base64url, with a recognisable prefix (secret scanners and log redaction key on it). */
export function newSessionSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented secret with a stored SHA-256 hex digest. */
export function secretMatches(presented: string, storedHashHex: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = Buffer.from(storedHashHex, 'hex');
  return b.length === a.length && timingSafeEqual(a, b);
}

export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/**
 * SCRAM-SHA-256 verifier (RFC 7677), in PostgreSQL's text format, with PostgreSQL's default 4096
 * iterations (~1.5 ms here). The secret has 256 bits of entropy, so stretching is not what protects it.
 */
export function makeScramVerifier(secret: string, iterations = 4096, salt: Buffer = randomBytes(16)): string {
  return scramVerifierText(
    pbkdf2Sync(secret.normalize('NFKC'), salt, iterations, 32, 'sha256'),
    iterations,
    salt,
  );
}

/** The same, with PBKDF2 on libuv's thread pool so concurrent session opens use every core. */
export async function makeScramVerifierAsync(
  secret: string,
  iterations = 4096,
  salt: Buffer = randomBytes(16),
): Promise<string> {
  return scramVerifierText(
    await pbkdf2Async(secret.normalize('NFKC'), salt, iterations, 32, 'sha256'),
    iterations,
    salt,
  );
}

function scramVerifierText(salted: Buffer, iterations: number, salt: Buffer): string {
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

export function parseScramVerifier(text: string): ScramVerifier | null {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (!m) return null;
  return {
    iterations: Number(m[1]),
    salt: Buffer.from(m[2]!, 'base64'),
    storedKey: Buffer.from(m[3]!, 'base64'),
    serverKey: Buffer.from(m[4]!, 'base64'),
  };
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
export function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}
