// The check-run channel against the OpenAPI-checked stand-in: a hold creates a completed check run
// with conclusion action_required and Approve/Deny buttons (GitHub's limits checked by the schema),
// on the job's commit, external_id = the approval; its end updates that run (success, failure,
// neutral) with who decided; a replica that did not create it finds it by name and external_id.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CREATE_CHECK_RUN,
  CheckRunChannel,
  LIST_CHECK_RUNS,
  UPDATE_CHECK_RUN,
} from '../../../service/approvals/github/check-run-channel.js';
import { GitHubAppClient } from '../../../service/approvals/github/client.js';
import { GET_PULL } from '../../../service/approvals/github/permissions.js';
import { type GitHubApiOptions, type GitHubApiStandIn, startGitHubApi } from '../../fixtures/github-api.js';
import { APP_ID, APP_PRIVATE_KEY } from './app-key.js';
import { MemoryDecider, pendingApproval } from './memory-decider.js';

const TOKENS = 'POST /app/installations/{installation_id}/access_tokens';
let api: GitHubApiStandIn | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

/** the PR's head is the job's own commit unless a test says otherwise */
const samePrHead: NonNullable<GitHubApiOptions['respond']> = (r) =>
  r.operation === GET_PULL ? { status: 200, body: { number: 7, head: { sha: 'a'.repeat(40) } } } : undefined;

async function setup(respond?: GitHubApiOptions['respond'], extra: string[] = [GET_PULL]) {
  api = await startGitHubApi({
    operations: [TOKENS, CREATE_CHECK_RUN, UPDATE_CHECK_RUN, LIST_CHECK_RUNS, ...extra],
    respond: (r) => respond?.(r) ?? samePrHead(r),
  });
  const client = new GitHubAppClient({
    appId: APP_ID,
    privateKey: APP_PRIVATE_KEY,
    apiUrl: api.url,
    installationId: 1,
  });
  const decider = new MemoryDecider();
  const channel = new CheckRunChannel({ client, logger: pino({ level: 'silent' }), decider });
  return { api, decider, channel };
}

describe('CheckRunChannel', () => {
  it('creates an action_required check run with the statement, policy, job and buttons, and records its id', async () => {
    const { api, decider, channel } = await setup();
    const a = decider.add(pendingApproval({ summary: 'DROP TABLE legacy_orders -- ```' }));
    await channel.requested(a, {
      api: `https://hoop.example/v1/approvals/${a.id}`,
      viewer: 'https://hoop.example/ui/s/ses_1',
    });
    expect(api.violations).toEqual([]);
    const [run] = api.checkRuns();
    expect(run).toMatchObject({
      name: `hoop approval ${a.id}`,
      head_sha: a.job.sha,
      external_id: a.id,
      status: 'completed',
      conclusion: 'action_required',
      details_url: 'https://hoop.example/ui/s/ses_1',
      actions: [
        { label: 'Approve', identifier: 'approve' },
        { label: 'Deny', identifier: 'deny' },
      ],
    });
    const post = api.requests.find((r) => r.operation === CREATE_CHECK_RUN)!;
    expect(post.params).toMatchObject({ owner: 'octo-org', repo: 'app' });
    const out = run!.output as { title: string; summary: string; text: string };
    expect(out.summary).toContain('DROP TABLE legacy_orders');
    expect(out.summary).toContain('````'); // the fence outgrows the statement's backticks
    expect(out.summary).toContain('migrations');
    expect(out.summary).toContain('approve[0]');
    expect(out.summary).toContain('migrate');
    expect(out.summary).toContain('1234');
    expect(out.summary).toContain('author');
    expect(out.summary).toContain(a.expires_at);
    expect(out.text).toContain(`/hoop approve ${a.id}`);
    expect(decider.checkRuns.get(a.id)).toBe(a.github_check_run_id);
    expect(typeof a.github_check_run_id).toBe('number');
  });

  it('updates the run when the hold ends: success naming the approver, failure on denial and expiry, neutral when abandoned', async () => {
    const { api, decider, channel } = await setup();
    const cases = [
      ['approved', 'success'],
      ['denied', 'failure'],
      ['expired', 'failure'],
      ['abandoned', 'neutral'],
    ] as const;
    for (const [state, conclusion] of cases) {
      const a = decider.add(pendingApproval());
      await channel.requested(a, { api: 'https://hoop.example/v1/approvals/x' });
      a.state = state;
      a.decided_at = new Date().toISOString();
      if (state !== 'expired' && state !== 'abandoned')
        a.votes.push({
          by: 'reviewer',
          decision: state === 'approved' ? 'approve' : 'deny',
          channel: 'github_check',
          at: a.decided_at,
          reason: 'looks wrong',
        });
      await channel.ended(a);
      const patch = api.requests.filter((r) => r.operation === UPDATE_CHECK_RUN).at(-1)!;
      expect(patch.params.check_run_id).toBe(String(a.github_check_run_id));
      expect(patch.body).toMatchObject({ status: 'completed', conclusion, actions: [] });
      const title = (patch.body as { output: { title: string } }).output.title;
      if (state === 'approved') expect(title).toContain('Approved by reviewer');
      if (state === 'denied') expect(title).toBe('Denied by reviewer: looks wrong');
    }
    expect(api.violations).toEqual([]);
  });

  it('on a replica that did not create the run, finds it by name and external_id', async () => {
    const { api, channel } = await setup((r) =>
      r.operation === LIST_CHECK_RUNS
        ? {
            status: 200,
            body: {
              total_count: 2,
              check_runs: [
                { id: 5, external_id: 'apr_other' },
                { id: 9, external_id: 'apr_find' },
              ],
            },
          }
        : undefined,
    );
    const a = pendingApproval({ id: 'apr_find', state: 'expired', decided_at: new Date().toISOString() });
    await channel.ended(a);
    const list = api.requests.find((r) => r.operation === LIST_CHECK_RUNS)!;
    expect(list.path).toBe(`/repos/octo-org/app/commits/${a.job.sha}/check-runs`);
    const patch = api.requests.find((r) => r.operation === UPDATE_CHECK_RUN)!;
    expect(patch.params.check_run_id).toBe('9');
    expect(api.violations).toEqual([]);
  });

  it('creates nothing for a job without a commit', async () => {
    const { api, channel } = await setup();
    const a = pendingApproval();
    delete a.job.sha;
    delete a.job.pull_request;
    await channel.requested(a, { api: 'x' });
    expect(api.requests).toEqual([]);
  });

  it("a pull_request job's check run goes on the PR's head commit, not on the merge commit the token names", async () => {
    const head = 'b'.repeat(40);
    const { api, decider, channel } = await setup(
      (r) => {
        if (r.operation === TOKENS)
          return {
            status: 201,
            body: { token: 'ghs_channel', expires_at: new Date(Date.now() + 3.6e6).toISOString() },
          };
        if (r.operation === GET_PULL)
          return String(r.params.pull_number) === '7'
            ? { status: 200, body: { number: 7, head: { sha: head } } }
            : { status: 404, body: { message: 'Not Found' } };
        return undefined;
      },
      [GET_PULL],
    );
    const base = pendingApproval();
    const a = decider.add(pendingApproval({ job: { ...base.job, pull_request: 7 } }));
    await channel.requested(a, { api: 'x' });
    const [run] = api.checkRuns();
    expect(run).toMatchObject({ head_sha: head, external_id: a.id });
    expect(a.job.sha).not.toBe(head);
    // a job without a pull request keeps its own commit
    const b = decider.add(pendingApproval());
    delete b.job.pull_request;
    await channel.requested(b, { api: 'x' });
    expect(api.checkRuns().find((r) => r.external_id === b.id)).toMatchObject({ head_sha: b.job.sha });
  });
});
