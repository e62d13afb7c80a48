import { getOctokit } from '@actions/github';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHECK_RUN_OUTPUT_MAX,
  checkRunConclusion,
  checkRunRequest,
  createCheckRun,
} from '../../../src/report/check-run.js';
import { CREATE_CHECK_RUN, type GitHubApiStandIn, startGitHubApi } from '../../fixtures/github-api.js';
import { chain, hugeEvents, realisticEvents, reportInput, transcriptOf } from './transcripts.js';

const NOW = new Date('2025-06-01T12:01:00.000Z');

describe('check-run conclusion', () => {
  it('is success without denials, neutral with them or without a transcript, failure when asked', () => {
    expect(checkRunConclusion(0, false)).toBe('success');
    expect(checkRunConclusion(0, true)).toBe('success');
    expect(checkRunConclusion(2, false)).toBe('neutral');
    expect(checkRunConclusion(2, true)).toBe('failure');
    expect(checkRunConclusion(null, true)).toBe('neutral');
  });
});

describe('check-run payload', () => {
  it('targets the PR head, names the job, and carries summary and table', () => {
    const events = chain(realisticEvents());
    const req = checkRunRequest(reportInput(transcriptOf(events)), { failOnDenied: false, now: NOW });
    expect(req).toMatchObject({
      owner: 'octo-org',
      repo: 'octo-repo',
      name: 'hoop session (db-check)',
      head_sha: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
      status: 'completed',
      conclusion: 'neutral',
      started_at: '2025-06-01T12:00:00Z',
      completed_at: '2025-06-01T12:01:00Z',
      details_url: 'https://github.com/octo-org/octo-repo/actions/runs/9876543210/attempts/1',
      external_id: 's_01J0TESTSESSION0000000000',
    });
    expect(req.output.title).toBe('2 denied of 11 events, 1 held');
    expect(req.output.summary).toContain('### Denied and held (3)');
    expect(req.output.summary).toContain(events.at(-1)!.hash);
    expect(req.output.summary).not.toContain('### Transcript');
    expect(req.output.text).toContain('### Transcript');
    expect(req.output.text).not.toContain('<script>');
  });

  it('fails the check with fail-on-denied, succeeds when nothing was denied', () => {
    const denied = checkRunRequest(reportInput(transcriptOf(chain(realisticEvents()))), {
      failOnDenied: true,
      now: NOW,
    });
    expect(denied.conclusion).toBe('failure');
    const clean = chain(realisticEvents().filter((e) => e.decision !== 'deny' && e.decision !== 'hold'));
    const ok = checkRunRequest(reportInput(transcriptOf(clean)), { failOnDenied: true, now: NOW });
    expect(ok.conclusion).toBe('success');
    expect(ok.output.title).toBe('8 events, none denied');
  });

  it('is neutral and says so when the transcript is missing', () => {
    const req = checkRunRequest(
      reportInput(null, { transcriptProblem: 'broker unreachable: ECONNREFUSED' }),
      {
        failOnDenied: true,
        now: NOW,
      },
    );
    expect(req.conclusion).toBe('neutral');
    expect(req.output.title).toBe('Transcript unavailable');
    expect(req.output.summary).toContain('The transcript could not be fetched');
    expect(req.started_at).toBeUndefined();
  });

  it('keeps summary and text within 65,535 characters for a huge transcript', () => {
    const req = checkRunRequest(reportInput(transcriptOf(chain(hugeEvents(20_000)))), {
      failOnDenied: false,
      now: NOW,
    });
    expect(req.output.summary.length).toBeLessThanOrEqual(CHECK_RUN_OUTPUT_MAX);
    expect(req.output.text.length).toBeLessThanOrEqual(CHECK_RUN_OUTPUT_MAX);
    expect(req.output.text).toContain('Summarised to fit the check run’s 65,535-character limit');
    expect(req.output.summary).toMatch(/more denied\/held events \(not listed\)/);
  });
});

describe('creating the check run through Octokit against the GitHub API stand-in', () => {
  let api: GitHubApiStandIn;
  beforeAll(async () => {
    api = await startGitHubApi({
      token: 'ghs_test',
      respond: (r) =>
        (r.body as { head_sha?: string }).head_sha === 'f'.repeat(40)
          ? { status: 403, body: { message: 'Resource not accessible by integration' } }
          : undefined,
    });
  });
  afterAll(() => api.close());

  it('sends a request the published OpenAPI description accepts', async () => {
    const req = checkRunRequest(reportInput(transcriptOf(chain(realisticEvents()))), {
      failOnDenied: false,
      now: NOW,
    });
    const out = await createCheckRun(getOctokit('ghs_test', { baseUrl: api.url }), req);
    expect(out).toMatchObject({ ok: true, url: expect.stringContaining('/octo-org/octo-repo/runs/') });
    expect(api.violations).toEqual([]);
    const last = api.requests.at(-1)!;
    expect(last.operation).toBe(CREATE_CHECK_RUN);
    expect(last.params).toEqual({ owner: 'octo-org', repo: 'octo-repo' });
    expect(last.headers.authorization).toBe('token ghs_test');
    const { owner: _owner, repo: _repo, ...body } = req;
    expect(api.checkRuns().at(-1)).toEqual(body);
  });

  it('reports a read-only token with the permissions hint', async () => {
    const req = checkRunRequest(reportInput(transcriptOf(chain(realisticEvents()))), {
      failOnDenied: false,
      now: NOW,
    });
    const out = await createCheckRun(getOctokit('ghs_test', { baseUrl: api.url }), {
      ...req,
      head_sha: 'f'.repeat(40),
    });
    expect(out.ok).toBe(false);
    expect(!out.ok && out.message).toMatch(/^HTTP 403: .*permissions: checks: write/);
  });

  it('the stand-in itself rejects what the description forbids', async () => {
    const before = api.violations.length;
    const octokit = getOctokit('ghs_test', { baseUrl: api.url });
    await expect(
      octokit.request('POST /repos/{owner}/{repo}/check-runs', {
        owner: 'o',
        repo: 'r',
        name: 'x',
        head_sha: 'abc',
        status: 'completed',
        output: { title: 't', summary: 'x'.repeat(70_000) },
      }),
    ).rejects.toMatchObject({ status: 422 });
    await expect(
      octokit.request('GET /repos/{owner}/{repo}/check-runs/{id}', { owner: 'o', repo: 'r', id: 1 }),
    ).rejects.toMatchObject({
      status: 404,
    });
    const found = api.violations.slice(before);
    expect(found.some((v) => v.includes('/output/summary must NOT have more than 65535 characters'))).toBe(
      true,
    );
    expect(found.some((v) => v.includes('conclusion is required'))).toBe(true);
    expect(found.some((v) => v.startsWith('GET /repos/o/r/check-runs/1: no such operation'))).toBe(true);
    api.violations.length = before;
  });
});
