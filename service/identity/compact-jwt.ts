// Structural checks on a compact JWT before anything trusts or fetches on its behalf: size, the three
// base64url parts, JSON header and payload. Pure; the signature is checked later, with jose.
import type { Reason } from '../reasons.js';

export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** decoded signature length in bytes (to tell a truncated token from a forged one) */
  signatureBytes: number;
}

export type DecodeResult = { ok: true; jwt: DecodedJwt } | { ok: false; reasons: Reason[] };

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const PART_NAMES = ['header', 'payload', 'signature'] as const;

const refuse = (message: string): { ok: false; reasons: Reason[] } => ({ ok: false, reasons: [{ message }] });

/** Decode without verifying. `maxBytes` is checked first, on the raw string, before any parsing. */
export function decodeCompactJwt(raw: unknown, maxBytes: number): DecodeResult {
  if (typeof raw !== 'string') return refuse('the token must be a string');
  if (raw.length === 0) return refuse('the token is empty');
  // Cheap bound first: a UTF-8 string has at least as many bytes as UTF-16 code units / 1.
  if (raw.length > maxBytes || Buffer.byteLength(raw, 'utf8') > maxBytes) {
    return refuse(`the token is ${Buffer.byteLength(raw, 'utf8')} bytes; the limit is ${maxBytes} bytes`);
  }
  if (/^bearer\s/i.test(raw)) return refuse('the token starts with "Bearer "; send the JWT alone');
  if (raw.trim() !== raw) return refuse('the token has leading or trailing whitespace');

  const parts = raw.split('.');
  if (parts.length === 5)
    return refuse('the token is an encrypted JWT (JWE); only signed JWTs (JWS) are accepted');
  if (parts.length !== 3) {
    return refuse(
      `the token is not a JWT: expected 3 base64url parts separated by ".", found ${parts.length}` +
        (parts.length === 2 ? ' (no signature part: truncated?)' : ''),
    );
  }
  for (const [index, part] of parts.entries()) {
    const name = PART_NAMES[index]!;
    if (!BASE64URL.test(part))
      return refuse(`the JWT ${name} is not base64url (it contains other characters)`);
    // A base64 text of length 4n+1 cannot come from any byte string: the part was cut.
    if (part.length % 4 === 1)
      return refuse(`the JWT ${name} is not valid base64url (its length is impossible: truncated?)`);
  }
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  if (headerPart.length === 0) return refuse('the JWT header is empty');
  if (payloadPart.length === 0) return refuse('the JWT payload is empty');
  if (signaturePart.length === 0)
    return refuse('the JWT has no signature (an unsecured JWT is never accepted)');

  const header = decodeJsonObject(headerPart);
  if (typeof header === 'string') return refuse(`the JWT header ${header}`);
  const payload = decodeJsonObject(payloadPart);
  if (typeof payload === 'string') return refuse(`the JWT payload ${payload}`);
  return {
    ok: true,
    jwt: { header, payload, signatureBytes: Buffer.from(signaturePart, 'base64url').length },
  };
}

/** The decoded JSON object, or a phrase saying what is wrong with it. */
function decodeJsonObject(part: string): Record<string, unknown> | string {
  const text = Buffer.from(part, 'base64url').toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'is not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not a JSON object';
  return value as Record<string, unknown>;
}

/** A token-supplied value, safe to put in a reason: bounded length, no control characters. */
export function displayValue(value: unknown, maxChars = 200): string {
  let text: string;
  if (value === undefined) return '(absent)';
  if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  text = text.replace(/\p{Cc}/gu, '?');
  return text.length > maxChars ? `${text.slice(0, maxChars)}… (${text.length} chars)` : text;
}
