// SCRAM-SHA-256 client side (RFC 5802 / 7677), for the broker's own login to the upstream database.
// The salted password is cached per (password, salt, iterations): PostgreSQL keeps a role's salt
// stable, so reconnecting costs HMACs instead of 4096 PBKDF2 rounds.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);
const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** Upper bound on iterations an upstream may ask for: a compromised upstream must not pin a core. */
const MAX_ITERATIONS = 1_000_000;

const saltedCache = new Map<string, Buffer>();

async function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  const key = createHash('sha256')
    .update(password)
    .update('\0')
    .update(salt)
    .update(String(iterations))
    .digest('hex');
  const hit = saltedCache.get(key);
  if (hit) return hit;
  const salted = await pbkdf2Async(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  if (saltedCache.size > 256) saltedCache.clear();
  saltedCache.set(key, salted);
  return salted;
}

export interface ScramClientStart {
  mechanism: string;
  clientFirst: string;
}

export class ScramClient {
  private readonly nonce = randomBytes(18).toString('base64');
  private readonly gs2Header: string;
  private readonly bare: string;
  private serverSignature: Buffer | null = null;

  /**
   * @param offered mechanisms the server listed
   * @param channelBinding tls-server-end-point data of the upstream's certificate, null without TLS
   */
  constructor(
    private readonly password: string,
    offered: string[],
    private readonly channelBinding: Buffer | null,
  ) {
    this.usePlus = channelBinding !== null && offered.includes('SCRAM-SHA-256-PLUS');
    if (!this.usePlus && !offered.includes('SCRAM-SHA-256'))
      throw new Error('server offers no SCRAM-SHA-256 mechanism');
    // 'y': we could bind but the server did not offer it (lets a PLUS-capable server detect a downgrade).
    this.gs2Header = this.usePlus ? 'p=tls-server-end-point,,' : channelBinding ? 'y,,' : 'n,,';
    this.bare = `n=*,r=${this.nonce}`;
  }

  private readonly usePlus: boolean;

  start(): ScramClientStart {
    return {
      mechanism: this.usePlus ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256',
      clientFirst: this.gs2Header + this.bare,
    };
  }

  /** server-first-message → client-final-message */
  async continue(serverFirst: string): Promise<string> {
    const m = /^r=([^,]+),s=([A-Za-z0-9+/=]+),i=(\d+)(,.*)?$/.exec(serverFirst);
    if (!m) throw new Error('malformed SCRAM server-first-message');
    const fullNonce = m[1]!;
    if (!fullNonce.startsWith(this.nonce) || fullNonce.length === this.nonce.length)
      throw new Error('SCRAM nonce mismatch');
    const iterations = Number(m[3]);
    if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
      throw new Error('SCRAM iteration count out of range');
    }
    const salted = await saltedPassword(this.password, Buffer.from(m[2]!, 'base64'), iterations);
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const cbind = Buffer.concat([
      Buffer.from(this.gs2Header),
      this.usePlus ? this.channelBinding! : Buffer.alloc(0),
    ]);
    const withoutProof = `c=${cbind.toString('base64')},r=${fullNonce}`;
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.allocUnsafe(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** server-final-message: the server must prove it knows the verifier too. */
  verifyFinal(serverFinal: string): void {
    const m = /^v=([A-Za-z0-9+/=]+)/.exec(serverFinal);
    if (!m || !this.serverSignature) throw new Error('malformed SCRAM server-final-message');
    const sig = Buffer.from(m[1]!, 'base64');
    if (sig.length !== this.serverSignature.length || !timingSafeEqual(sig, this.serverSignature)) {
      throw new Error('upstream server signature does not match');
    }
  }
}
