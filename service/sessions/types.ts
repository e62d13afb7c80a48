// The session as stored. The secret itself is never stored: only its SHA-256 (for the HTTP API and
// ssh) and a SCRAM-SHA-256 verifier (for the PostgreSQL gateway).
import type { Grant } from '../config/schema.js';

export type Claims = Record<string, unknown>;

export interface SessionRecord {
  id: string;
  /** hex SHA-256 of the session secret (the secret is 256 random bits, so no stretching is needed) */
  secret_hash: string;
  /** PostgreSQL-format verifier: SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64> */
  scram_verifier: string;
  /** the configured issuer's name */
  issuer: string;
  /** the claims a reader needs (repository, run_id, actor, …) */
  identity: Claims;
  /** every verified claim of the OIDC token */
  claims: Claims;
  policy: string;
  grants: Grant[];
  ssh_public_key: string | null;
  created_at: Date;
  expires_at: Date;
  /** set once, when the session is revoked or found expired */
  ended_at: Date | null;
  end_reason: string | null;
}

export type SessionState = 'active' | 'expired' | 'revoked';

export function sessionState(
  s: Pick<SessionRecord, 'expires_at' | 'ended_at' | 'end_reason'>,
  now: Date,
): SessionState {
  if (s.ended_at && s.end_reason !== 'expired') return 'revoked';
  if (s.ended_at || s.expires_at.getTime() <= now.getTime()) return 'expired';
  return 'active';
}
