// Who may decide a hold through GitHub, asked of GitHub itself (never read from the delivery):
// - never the job's actor, never the pull request's author (read through the API: GET …/pulls/{n});
// - at least write permission on the repository (GET …/collaborators/{username}/permission);
// - and, when the approve rule names approvers, one of those users or an active member of one of those
//   teams (GET /orgs/{org}/teams/{team_slug}/memberships/{username}).
// Any API failure refuses (fail closed), saying which check could not be made.
import type { PendingApproval } from '../types.js';
import { type GitHubClient, GitHubApiError } from './client.js';

export const GET_PULL = 'GET /repos/{owner}/{repo}/pulls/{pull_number}';
export const GET_PERMISSION = 'GET /repos/{owner}/{repo}/collaborators/{username}/permission';
export const GET_TEAM_MEMBERSHIP = 'GET /orgs/{org}/teams/{team_slug}/memberships/{username}';

export type ApproverCheck =
  { ok: true; via: string } | { ok: false; code: 'self_approval' | 'not_permitted'; message: string };

const same = (a: string | undefined | null, b: string): boolean =>
  typeof a === 'string' && a.toLowerCase() === b.toLowerCase();

/** The pull request's author, read through the API (null when the job is not for a pull request). */
export async function pullRequestAuthor(
  client: GitHubClient,
  approval: PendingApproval,
): Promise<string | null> {
  if (approval.job.pull_request_author) return approval.job.pull_request_author;
  if (approval.job.pull_request === undefined) return null;
  const pr = await client.request<{ user?: { login?: string } | null }>(approval.job.repository, GET_PULL, {
    pull_number: approval.job.pull_request,
  });
  return pr.user?.login ?? null;
}

/** Is `team` ("org/slug") showing `login` as an active member? 404: not a member. */
export async function activeTeamMember(
  client: GitHubClient,
  repository: string,
  team: string,
  login: string,
): Promise<boolean> {
  const [org = '', team_slug = ''] = team.split('/');
  try {
    const m = await client.request<{ state?: string }>(repository, GET_TEAM_MEMBERSHIP, {
      org,
      team_slug,
      username: login,
    });
    return m.state === 'active';
  } catch (err) {
    if (err instanceof GitHubApiError && err.status === 404) return false;
    throw err;
  }
}

/** Write or admin on the repository (GitHub reports maintain as write, triage as read). */
export async function canWrite(client: GitHubClient, repository: string, login: string): Promise<boolean> {
  try {
    const p = await client.request<{ permission?: string }>(repository, GET_PERMISSION, { username: login });
    return p.permission === 'admin' || p.permission === 'write';
  } catch (err) {
    if (err instanceof GitHubApiError && err.status === 404) return false;
    throw err;
  }
}

export async function checkApprover(
  client: GitHubClient,
  approval: PendingApproval,
  login: string,
): Promise<ApproverCheck> {
  const repo = approval.job.repository;
  if (same(approval.job.actor, login))
    return {
      ok: false,
      code: 'self_approval',
      message: `${login} is the job's actor: nobody approves their own statement`,
    };
  let author: string | null;
  try {
    author = await pullRequestAuthor(client, approval);
  } catch (err) {
    return {
      ok: false,
      code: 'not_permitted',
      message: `the pull request's author could not be read: ${(err as Error).message}`,
    };
  }
  if (author !== null && same(author, login))
    return {
      ok: false,
      code: 'self_approval',
      message: `${login} authored pull request #${approval.job.pull_request}: nobody approves their own change`,
    };
  try {
    if (!(await canWrite(client, repo, login)))
      return { ok: false, code: 'not_permitted', message: `${login} has no write permission on ${repo}` };
    const { users, teams } = approval.approvers;
    if (users.length === 0 && teams.length === 0) return { ok: true, via: `write permission on ${repo}` };
    if (users.some((u) => same(u, login))) return { ok: true, via: 'named approver' };
    for (const team of teams)
      if (await activeTeamMember(client, repo, team, login)) return { ok: true, via: `member of ${team}` };
    const named = [...users, ...teams].join(', ');
    return { ok: false, code: 'not_permitted', message: `${login} is not among the approvers (${named})` };
  } catch (err) {
    return {
      ok: false,
      code: 'not_permitted',
      message: `${login}'s permission could not be checked: ${(err as Error).message}`,
    };
  }
}
