// Cleartext password, for clients without SCRAM. Only ever used inside TLS, and only when the config
// allows it. The secret is checked against its SHA-256 in constant time; an unknown session checks
// against a random hash so both paths cost the same.
import { randomBytes } from 'node:crypto';
import { secretMatches } from '../../../sessions/secret.js';
import { authenticationCleartextPassword } from '../backend-messages.js';
import { decodePassword } from '../frontend-messages.js';
import type { AuthMethod, AuthStep } from './auth-method.js';

export class CleartextPassword implements AuthMethod {
  readonly name = 'password';
  private readonly secretHash: string;

  /** secretHash null: unknown session (always fails, after the same work) */
  constructor(secretHash: string | null) {
    this.secretHash = secretHash ?? randomBytes(32).toString('hex');
  }

  start(): Buffer {
    return authenticationCleartextPassword();
  }

  respond(body: Buffer): AuthStep {
    const password = decodePassword(body);
    if (password === null) return { kind: 'invalid', message: 'malformed password message' };
    return secretMatches(password, this.secretHash)
      ? { kind: 'proven' }
      : { kind: 'failed', reason: 'wrong secret' };
  }
}
