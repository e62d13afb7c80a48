// Verified OIDC claims, and the subset a reader (session view, transcript, explain) needs.

/** The claims of a verified token. The registered ones were checked; everything else is as signed. */
export interface Claims {
  iss: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nbf?: number;
  sub?: string;
  jti?: string;
  [claim: string]: unknown;
}

/** GitHub Actions claims worth showing to a person reading a session or a denial; `iss` last. */
export const IDENTITY_CLAIMS = [
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'ref',
  'ref_type',
  'ref_protected',
  'sha',
  'run_id',
  'run_number',
  'run_attempt',
  'actor',
  'actor_id',
  'workflow',
  'workflow_ref',
  'job_workflow_ref',
  'event_name',
  'environment',
  'head_ref',
  'base_ref',
  'sub',
  'runner_environment',
  'iss',
] as const;

/** Only the claims present in the token (absent and null ones are left out, empty strings kept). */
export function pickIdentity(claims: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const identity: Record<string, unknown> = {};
  for (const name of IDENTITY_CLAIMS) {
    const value = claims[name];
    if (value !== undefined && value !== null) identity[name] = value;
  }
  return identity;
}
