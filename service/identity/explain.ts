// `hoop-broker explain --config`: verify a token against the config's issuers (fetching their JWKS:
// the I/O) and explain it with the pure report (policy/explain.ts). Nothing is opened or recorded.
import type { Policy } from '../config/schema.js';
import { buildExplainResult } from '../policy/explain.js';
import type { ExplainResult } from '../policy/explanation.js';
import type { ErrorBody } from '../reasons.js';
import {
  type IdentityConfig,
  IssuerRegistry,
  type IssuerRegistryOptions,
  type VerifyFailure,
} from './verify.js';

export type ExplainOutcome =
  { ok: true; value: ExplainResult } | { ok: false; failure: VerifyFailure; body: ErrorBody };

/** The config parts explain needs: issuers, limits (raw or resolved form) and policies. */
export interface ExplainConfig extends IdentityConfig {
  policies: readonly Policy[];
}

/** Verify a raw token against the config's issuers, then explain it. */
export async function explainToken(
  config: ExplainConfig,
  rawToken: string,
  now: Date,
  options: IssuerRegistryOptions = {},
): Promise<ExplainOutcome> {
  const registry = IssuerRegistry.fromConfig(config, options);
  const verified = await registry.verifyToken(rawToken, now);
  if (!verified.ok)
    return {
      ok: false,
      failure: verified.failure,
      body: { error: verified.error, reasons: verified.reasons },
    };
  return { ok: true, value: buildExplainResult(verified, config.policies) };
}
