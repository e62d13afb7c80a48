// Session-open gates (a grant's `require:`): evidence, read from GitHub as the App, that humans already
// approved this job before any credential is handed out.
// - environment_approval: the run's deployment reviews (GET …/actions/runs/{run_id}/approvals) show the
//   token's `environment` approved, and not rejected;
// - pull_request_reviews {min, teams}: the pull request of the token's commit has at least `min`
//   reviewers whose latest review is APPROVED on that PR's head commit (stale approvals do not count),
//   never the author, and from the listed teams when given. For a `refs/pull/N/merge` token the commit
//   is GitHub's merge commit: its parents must contain the PR's current head (else the head moved
//   since the job started and nothing is proven).
// Fail closed: any API failure refuses, naming what could not be read.
import type { Grant } from '../../config/schema.js';
import type { GitHubClient } from './client.js';
import { GET_PULL, activeTeamMember } from './permissions.js';

export { GET_PULL };

export const RUN_APPROVALS = 'GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals';
export const COMMIT_PULLS = 'GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls';
export const GET_COMMIT = 'GET /repos/{owner}/{repo}/commits/{ref}';
export const PULL_REVIEWS = 'GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews';

export type GateOutcome =
  { ok: true; evidence: string[]; approvers: string[] } | { ok: false; reasons: { message: string }[] };

type Claims = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const lower = (s: string) => s.toLowerCase();

interface Review {
  user?: { login?: string } | null;
  state?: string;
  commit_id?: string | null;
  submitted_at?: string;
}

async function environmentApproval(client: GitHubClient, claims: Claims): Promise<GateOutcome> {
  const repo = str(claims.repository);
  const runId = str(claims.run_id);
  const environment = str(claims.environment);
  if (!repo || !runId)
    return {
      ok: false,
      reasons: [{ message: 'require.environment_approval: the token names no repository or run_id' }],
    };
  if (!environment)
    return {
      ok: false,
      reasons: [
        {
          message:
            'require.environment_approval: the job runs in no environment (the token has no environment claim)',
        },
      ],
    };
  const approvals = await client.request<
    { state?: string; user?: { login?: string }; comment?: string; environments?: { name?: string }[] }[]
  >(repo, RUN_APPROVALS, { run_id: Number(runId) });
  const forEnv = approvals.filter((a) => (a.environments ?? []).some((e) => e.name === environment));
  const rejected = forEnv.find((a) => a.state === 'rejected');
  if (rejected)
    return {
      ok: false,
      reasons: [
        {
          message: `require.environment_approval: ${rejected.user?.login ?? 'a reviewer'} rejected environment ${environment} for run ${runId}`,
        },
      ],
    };
  const approvers = [
    ...new Set(forEnv.filter((a) => a.state === 'approved').map((a) => a.user?.login ?? '?')),
  ];
  if (approvers.length === 0)
    return {
      ok: false,
      reasons: [
        {
          message: `require.environment_approval: no approval of environment ${environment} is on record for run ${runId}`,
        },
      ],
    };
  return {
    ok: true,
    evidence: [`environment ${environment} approved by ${approvers.join(', ')}`],
    approvers,
  };
}

async function pullRequestOf(
  client: GitHubClient,
  repo: string,
  claims: Claims,
  sha: string,
): Promise<number | string> {
  const ref = str(claims.ref) ?? '';
  const m = /^refs\/pull\/(\d+)\/(?:merge|head)$/.exec(ref);
  if (m) return Number(m[1]);
  const pulls = await client.request<{ number: number; state?: string; head?: { sha?: string } }[]>(
    repo,
    COMMIT_PULLS,
    {
      commit_sha: sha,
    },
  );
  const pr =
    pulls.find((p) => p.head?.sha === sha && p.state === 'open') ?? pulls.find((p) => p.head?.sha === sha);
  return pr ? pr.number : `no pull request has commit ${sha} as its head`;
}

async function pullRequestReviews(
  client: GitHubClient,
  claims: Claims,
  rule: { min: number; teams?: string[] | undefined },
): Promise<GateOutcome> {
  const repo = str(claims.repository);
  const sha = str(claims.sha);
  const no = (message: string): GateOutcome => ({
    ok: false,
    reasons: [{ message: `require.pull_request_reviews: ${message}` }],
  });
  if (!repo || !sha) return no('the token names no repository or sha');
  const number = await pullRequestOf(client, repo, claims, sha);
  if (typeof number === 'string') return no(number);
  const pr = await client.request<{ head?: { sha?: string }; user?: { login?: string } | null }>(
    repo,
    GET_PULL,
    {
      pull_number: number,
    },
  );
  const head = pr.head?.sha;
  const author = pr.user?.login;
  if (!head || !author) return no(`pull request #${number} could not be read`);
  if (head !== sha) {
    const commit = await client.request<{ parents?: { sha?: string }[] }>(repo, GET_COMMIT, { ref: sha });
    if (!(commit.parents ?? []).some((p) => p.sha === head))
      return no(
        `pull request #${number}'s head is now ${head.slice(0, 12)}, not what this job runs (${sha.slice(0, 12)})`,
      );
  }
  const reviews = await client.request<Review[]>(repo, PULL_REVIEWS, { pull_number: number, per_page: 100 });
  // GitHub's rule: a reviewer's latest approving / changes-requested / dismissed review stands; comments do not change it
  const latest = new Map<string, Review>();
  for (const r of reviews) {
    const login = r.user?.login;
    if (!login || !['APPROVED', 'CHANGES_REQUESTED', 'DISMISSED'].includes(r.state ?? '')) continue;
    latest.set(lower(login), r);
  }
  const approvers: string[] = [];
  for (const r of latest.values()) {
    const login = r.user!.login!;
    if (r.state !== 'APPROVED' || r.commit_id !== head || lower(login) === lower(author)) continue;
    if (rule.teams && rule.teams.length > 0) {
      let member = false;
      for (const team of rule.teams) if ((member = await activeTeamMember(client, repo, team, login))) break;
      if (!member) continue;
    }
    approvers.push(login);
  }
  if (approvers.length < rule.min) {
    const from = rule.teams?.length ? ` from ${rule.teams.join(', ')}` : '';
    return no(
      `pull request #${number} has ${approvers.length} approving review${approvers.length === 1 ? '' : 's'} on its head ${head.slice(0, 12)}${from} (the author's never counts), ${rule.min} required`,
    );
  }
  return {
    ok: true,
    evidence: [`pull request #${number} approved on ${head.slice(0, 12)} by ${approvers.join(', ')}`],
    approvers,
  };
}

/** Every `require:` of the grants, in order; the first refusal refuses the session. */
export async function checkGrantRequirements(
  client: GitHubClient,
  grants: readonly Grant[],
  claims: Claims,
): Promise<GateOutcome> {
  const evidence: string[] = [];
  const approvers = new Set<string>();
  for (const grant of grants) {
    const req = grant.require;
    if (!req) continue;
    const checks: (() => Promise<GateOutcome>)[] = [];
    if (req.environment_approval) checks.push(() => environmentApproval(client, claims));
    if (req.pull_request_reviews) {
      const rule = req.pull_request_reviews;
      checks.push(() => pullRequestReviews(client, claims, rule));
    }
    for (const check of checks) {
      let outcome: GateOutcome;
      try {
        outcome = await check();
      } catch (err) {
        outcome = {
          ok: false,
          reasons: [
            { message: `grant ${grant.target}: GitHub could not be asked: ${(err as Error).message}` },
          ],
        };
      }
      if (!outcome.ok)
        return {
          ok: false,
          reasons: outcome.reasons.map((r) => ({ message: `grant ${grant.target}: ${r.message}` })),
        };
      evidence.push(...outcome.evidence.map((e) => `grant ${grant.target}: ${e}`));
      for (const a of outcome.approvers) approvers.add(a);
    }
  }
  return { ok: true, evidence, approvers: [...approvers] };
}
