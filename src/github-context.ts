// The job's own context, from the runner's GITHUB_* variables and the event payload. Pure: the caller
// reads the environment and the payload file.
import { readFileSync } from 'node:fs';

export interface RunContext {
  /** owner/name */
  repository: string;
  owner: string;
  repo: string;
  serverUrl: string;
  apiUrl: string;
  runId: string;
  runAttempt: string;
  workflow: string;
  /** the job id (GITHUB_JOB) */
  job: string;
  actor: string;
  ref: string;
  sha: string;
  eventName: string;
  /** the commit a check run belongs on: the pull request's head for PR events, else GITHUB_SHA */
  headSha: string;
  /** link to this run (attempt), or '' when the variables are missing */
  runUrl: string;
}

type Env = Readonly<Record<string, string | undefined>>;

function pullRequestHeadSha(payload: unknown): string | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const pr = (payload as { pull_request?: unknown }).pull_request;
  if (typeof pr !== 'object' || pr === null) return null;
  const head = (pr as { head?: unknown }).head;
  if (typeof head !== 'object' || head === null) return null;
  const sha = (head as { sha?: unknown }).sha;
  return typeof sha === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha) ? sha : null;
}

export function runContext(env: Env, eventPayload: unknown): RunContext {
  const repository = env.GITHUB_REPOSITORY ?? '';
  const [owner = '', repo = ''] = repository.split('/', 2);
  const serverUrl = (env.GITHUB_SERVER_URL ?? 'https://github.com').replace(/\/+$/, '');
  const runId = env.GITHUB_RUN_ID ?? '';
  const runAttempt = env.GITHUB_RUN_ATTEMPT ?? '1';
  const sha = env.GITHUB_SHA ?? '';
  return {
    repository,
    owner,
    repo,
    serverUrl,
    apiUrl: (env.GITHUB_API_URL ?? 'https://api.github.com').replace(/\/+$/, ''),
    runId,
    runAttempt,
    workflow: env.GITHUB_WORKFLOW ?? '',
    job: env.GITHUB_JOB ?? '',
    actor: env.GITHUB_ACTOR ?? '',
    ref: env.GITHUB_REF ?? '',
    sha,
    eventName: env.GITHUB_EVENT_NAME ?? '',
    // pull_request(_target) runs check out a merge commit; the check belongs on the PR's head commit.
    headSha: pullRequestHeadSha(eventPayload) ?? sha,
    runUrl:
      repository && runId ? `${serverUrl}/${repository}/actions/runs/${runId}/attempts/${runAttempt}` : '',
  };
}

/** The event payload at GITHUB_EVENT_PATH, or null when absent or unreadable. */
export function readEventPayload(env: Env): unknown {
  const path = env.GITHUB_EVENT_PATH;
  if (!path) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return null;
  }
}
