// SCRAM-SHA-256 (RFC 5802 / RFC 7677), server side, against the session's stored verifier: the broker
// never holds the secret. SCRAM-SHA-256-PLUS (tls-server-end-point) is offered over TLS when the
// certificate allows; plain SCRAM-SHA-256 is always offered, so libpq's channel_binding=prefer works.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ScramVerifier } from '../../../sessions/secret.js';
import {
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
} from '../backend-messages.js';
import { decodeSaslInitialResponse } from '../frontend-messages.js';
import type { AuthMethod, AuthStep } from './auth-method.js';

export const SCRAM = 'SCRAM-SHA-256';
export const SCRAM_PLUS = 'SCRAM-SHA-256-PLUS';

const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** printable ASCII except ',' (RFC 5802 "value" for nonces) */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

interface ClientFirst {
  gs2Header: string;
  cbindFlag: 'n' | 'y' | 'p';
  bare: string;
  nonce: string;
}

function parseClientFirst(text: string, channelBound: boolean): ClientFirst | string {
  // gs2-header: cbind-flag "," [authzid] ","
  let cbindFlag: 'n' | 'y' | 'p';
  let pos: number;
  if (text.startsWith('n,')) {
    cbindFlag = 'n';
    pos = 2;
  } else if (text.startsWith('y,')) {
    cbindFlag = 'y';
    pos = 2;
  } else if (text.startsWith('p=tls-server-end-point,')) {
    cbindFlag = 'p';
    pos = 'p=tls-server-end-point,'.length;
  } else if (text.startsWith('p=')) {
    return 'unsupported SCRAM channel-binding type';
  } else {
    return 'malformed SCRAM message (unexpected channel-binding flag)';
  }
  if (text[pos] === 'a') return 'SCRAM authorization identities are not supported';
  if (text[pos] !== ',') return 'malformed SCRAM message (expected end of GS2 header)';
  const gs2Header = text.slice(0, pos + 1);
  const bare = text.slice(pos + 1);
  if (cbindFlag === 'p' && !channelBound)
    return 'channel binding requested with SCRAM-SHA-256; use SCRAM-SHA-256-PLUS';
  if (cbindFlag !== 'p' && channelBound)
    return 'SCRAM-SHA-256-PLUS was selected but the client did not send channel-binding data';
  if (bare.startsWith('m=')) return 'SCRAM mandatory extensions are not supported';
  const m = /^n=[^,]*,r=([^,]+)(,.*)?$/.exec(bare);
  if (!m || !NONCE.test(m[1]!)) return 'malformed SCRAM message (client-first-message)';
  return { gs2Header, cbindFlag, bare, nonce: m[1]! };
}

export interface ScramServerOptions {
  verifier: ScramVerifier;
  /** tls-server-end-point data when the connection is TLS and the certificate allows it */
  channelBinding: Buffer | null;
}

export class ScramServer implements AuthMethod {
  readonly name = SCRAM;
  private state: 'initial' | 'first-sent' | 'done' = 'initial';
  private mechanism = SCRAM;
  private clientFirst: ClientFirst | null = null;
  private serverFirst = '';
  private fullNonce = '';

  constructor(private readonly opts: ScramServerOptions) {}

  private mechanisms(): string[] {
    return this.opts.channelBinding ? [SCRAM_PLUS, SCRAM] : [SCRAM];
  }

  start(): Buffer {
    return authenticationSasl(this.mechanisms());
  }

  respond(body: Buffer): AuthStep {
    if (this.state === 'initial') return this.onInitial(body);
    if (this.state === 'first-sent') return this.onFinal(body);
    return { kind: 'invalid', message: 'unexpected SASL message after authentication' };
  }

  private onInitial(body: Buffer): AuthStep {
    const init = decodeSaslInitialResponse(body);
    if (!init?.data) return { kind: 'invalid', message: 'malformed SASLInitialResponse message' };
    if (!this.mechanisms().includes(init.mechanism)) {
      return { kind: 'invalid', message: `client selected an invalid SASL authentication mechanism` };
    }
    this.mechanism = init.mechanism;
    const parsed = parseClientFirst(init.data.toString('utf8'), init.mechanism === SCRAM_PLUS);
    if (typeof parsed === 'string') return { kind: 'invalid', message: parsed };
    // 'y': the client can bind but believes we cannot. We offered PLUS, so someone stripped it.
    if (parsed.cbindFlag === 'y' && this.opts.channelBinding) {
      return { kind: 'invalid', message: 'SCRAM channel binding negotiation error' };
    }
    this.clientFirst = parsed;
    this.fullNonce = parsed.nonce + randomBytes(18).toString('base64');
    const v = this.opts.verifier;
    this.serverFirst = `r=${this.fullNonce},s=${v.salt.toString('base64')},i=${v.iterations}`;
    this.state = 'first-sent';
    return { kind: 'continue', message: authenticationSaslContinue(this.serverFirst) };
  }

  private onFinal(body: Buffer): AuthStep {
    this.state = 'done';
    const first = this.clientFirst!;
    const text = body.toString('utf8');
    const proofAt = text.lastIndexOf(',p=');
    if (proofAt < 0) return { kind: 'invalid', message: 'malformed SCRAM message (missing proof)' };
    const withoutProof = text.slice(0, proofAt);
    const m = /^c=([A-Za-z0-9+/=]*),r=([^,]+)(,.*)?$/.exec(withoutProof);
    if (!m) return { kind: 'invalid', message: 'malformed SCRAM message (client-final-message)' };
    const expectedCbind = Buffer.concat([
      Buffer.from(first.gs2Header, 'utf8'),
      first.cbindFlag === 'p' ? this.opts.channelBinding! : Buffer.alloc(0),
    ]);
    const cbind = Buffer.from(m[1]!, 'base64');
    if (cbind.length !== expectedCbind.length || !timingSafeEqual(cbind, expectedCbind)) {
      return { kind: 'invalid', message: 'SCRAM channel binding check failed' };
    }
    if (m[2] !== this.fullNonce) return { kind: 'invalid', message: 'SCRAM nonce mismatch' };
    const proof = Buffer.from(text.slice(proofAt + 3), 'base64');
    const v = this.opts.verifier;
    if (proof.length !== v.storedKey.length) return { kind: 'invalid', message: 'malformed SCRAM proof' };
    const authMessage = `${first.bare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(v.storedKey, authMessage);
    const clientKey = Buffer.allocUnsafe(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    const computedStoredKey = createHash('sha256').update(clientKey).digest();
    if (!timingSafeEqual(computedStoredKey, v.storedKey))
      return { kind: 'failed', reason: 'SCRAM proof does not match' };
    const serverSignature = hmac(v.serverKey, authMessage);
    return { kind: 'proven', final: authenticationSaslFinal(`v=${serverSignature.toString('base64')}`) };
  }

  /** which mechanism the client chose (for the connection log) */
  chosenMechanism(): string {
    return this.mechanism;
  }
}

/**
 * A verifier for a session id that does not exist: same shape as a real one, salt derived from the
 * user name (so repeated probes see a stable salt, like a real account), keys that match nothing.
 * The exchange then fails at the proof exactly as a wrong secret does.
 */
export function mockVerifier(user: string, processKey: Buffer, iterations = 4096): ScramVerifier {
  return {
    iterations,
    salt: createHmac('sha256', processKey).update(`salt:${user}`).digest().subarray(0, 16),
    storedKey: randomBytes(32),
    serverKey: randomBytes(32),
  };
}
