// The claim set GitHub Actions puts in a job's OIDC token, with made-up values for a local development
// token. Ids and flags are strings, as GitHub sends them. Overrides replace a claim; null removes it.
import { randomUUID } from 'node:crypto';

export interface ShapeOptions {
  /** seconds since the epoch */
  now: number;
  issuer: string;
  audience: string;
}

export function githubShapedClaims(
  overrides: Readonly<Record<string, unknown>>,
  opts: ShapeOptions,
): Record<string, unknown> {
  const repository = typeof overrides.repository === 'string' ? overrides.repository : 'octo-org/octo-repo';
  const owner = repository.split('/')[0] ?? 'octo-org';
  const event = typeof overrides.event_name === 'string' ? overrides.event_name : 'pull_request';
  const ref =
    typeof overrides.ref === 'string'
      ? overrides.ref
      : event === 'pull_request'
        ? 'refs/pull/7/merge'
        : 'refs/heads/main';
  const environment = typeof overrides.environment === 'string' ? overrides.environment : undefined;
  const workflowRef = `${repository}/.github/workflows/ci.yml@${ref}`;
  const base: Record<string, unknown> = {
    jti: randomUUID(),
    sub: environment
      ? `repo:${repository}:environment:${environment}`
      : event === 'pull_request'
        ? `repo:${repository}:pull_request`
        : `repo:${repository}:ref:${ref}`,
    aud: opts.audience,
    iss: opts.issuer,
    ref,
    sha: 'f0e1d2c3b4a5968778695a4b3c2d1e0f12345678',
    repository,
    repository_id: '123456',
    repository_owner: owner,
    repository_owner_id: '654321',
    repository_visibility: 'private',
    run_id: '9876543210',
    run_number: '42',
    run_attempt: '1',
    actor: 'octocat',
    actor_id: '583231',
    workflow: 'CI',
    workflow_ref: workflowRef,
    workflow_sha: 'f0e1d2c3b4a5968778695a4b3c2d1e0f12345678',
    job_workflow_ref: workflowRef,
    job_workflow_sha: 'f0e1d2c3b4a5968778695a4b3c2d1e0f12345678',
    head_ref: event === 'pull_request' ? 'feature/report' : '',
    base_ref: event === 'pull_request' ? 'main' : '',
    event_name: event,
    ref_type: 'branch',
    ref_protected: ref === 'refs/heads/main' ? 'true' : 'false',
    runner_environment: 'self-hosted',
    iat: opts.now,
    nbf: opts.now - 5,
    exp: opts.now + 300,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) delete base[k];
    else base[k] = v;
  }
  return base;
}

/**
 * `--claims` as given on the command line: a JSON object, or `name=value` pairs separated by commas
 * (`event_name=push,ref=refs/heads/main`). Values of pairs stay strings, as GitHub sends its claims.
 */
export function parseClaimsArgument(text: string): Record<string, unknown> {
  const t = text.trim();
  if (t.startsWith('{')) {
    const v: unknown = JSON.parse(t);
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw new Error('--claims must be a JSON object');
    return v as Record<string, unknown>;
  }
  const out: Record<string, unknown> = {};
  for (const pair of t.split(',').filter((p) => p.trim() !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--claims: "${pair}" is not name=value`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
  }
  return out;
}
