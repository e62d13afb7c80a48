// The explain report: which policy a verified token matches and why each other one does not. Pure;
// identity/explain.ts verifies a raw token first (the I/O) for `hoop-broker explain --config`.
// The report holds policy names, claims, conditions and target names with access levels: never a
// target's host, port, user or credential.
import type { Policy } from '../config/schema.js';
import { pickIdentity } from '../identity/claims.js';
import type { VerifiedToken } from '../identity/verify.js';
import type { ExplainResult } from './explanation.js';
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
