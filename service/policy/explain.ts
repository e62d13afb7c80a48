// The explain report: which policy a verified token matches and why each other one does not.
// buildExplainResult is pure. explainToken also verifies the token (fetching the issuer's JWKS) for
// `hoop-broker explain --config`, which has no running broker to ask.
// The report holds policy names, claims, conditions and target names with access levels: never a
// target's host, port, user or credential.
import type { ErrorBody, ExplainResult } from '../api/schemas.js';
import type { Policy } from '../config/schema.js';
import { pickIdentity } from '../identity/claims.js';
import {
  type IdentityConfig,
  IssuerRegistry,
  type IssuerRegistryOptions,
  type VerifiedToken,
} from '../identity/verify.js';
import { evaluatePolicies } from './match.js';

export function buildExplainResult(
  verified: Pick<VerifiedToken, 'issuer' | 'claims'>,
  policies: readonly Policy[],
): ExplainResult {
  const evaluation = evaluatePolicies(policies, verified.claims, verified.issuer);
  return {
    issuer: verified.issuer,
    identity: pickIdentity(verified.claims),
    matched_policy: evaluation.matched?.name ?? null,
    policies: evaluation.explanations,
  };
}

export type ExplainOutcome =
  { ok: true; value: ExplainResult } | { ok: false; status: 401 | 503; body: ErrorBody };

/** The config parts explain needs: issuers, limits (raw or resolved form) and policies. */
export interface ExplainConfig extends IdentityConfig {
  policies: readonly Policy[];
}

/** Verify a raw token against the config's issuers, then explain it. Nothing is opened or recorded. */
export async function explainToken(
  config: ExplainConfig,
  rawToken: string,
  now: Date,
  options: IssuerRegistryOptions = {},
): Promise<ExplainOutcome> {
  const registry = IssuerRegistry.fromConfig(config, options);
  const verified = await registry.verifyToken(rawToken, now);
  if (!verified.ok)
    return { ok: false, status: verified.status, body: { error: verified.error, reasons: verified.reasons } };
  return { ok: true, value: buildExplainResult(verified, config.policies) };
}
