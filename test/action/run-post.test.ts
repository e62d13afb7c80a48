import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getOctokit } from '@actions/github';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runPost } from '../../src/run-post.js';
import { encodeSavedSession, STATE_SECRET, STATE_SESSION } from '../../src/state.js';
import { PR_HEAD_SHA, pullRequestEvent } from '../fixtures/actions-runner.js';
import { type GitHubApiStandIn, startGitHubApi } from '../fixtures/github-api.js';
import { type FakeBroker, type FakeBrokerOptions, startFakeBroker } from './fake-broker.js';
import { recordingCore } from './recording-core.js';

const GITHUB_TOKEN = 'ghs_post_token_0123456789';
let api: GitHubApiStandIn;
let work: string;
let broker: FakeBroker | undefined;

beforeAll(async () => {
  api = await startGitHubApi({ token: GITHUB_TOKEN });
});
afterAll(() => api.close());
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'hoop-post-'));
  api.requests.length = 0;
});
afterEach(async () => {
  await broker?.close();
  broker = undefined;
  rmSync(work, { recursive: true, force: true });
});

function setup(b: { url: string; sessionId: string; secret: string }, inputs: Record<string, string> = {}) {
  const dir = join(work, 'hoop-AbC123');
  mkdirSync(dir);
  writeFileSync(join(dir, 'kubeconfig'), 'x');
  const eventPath = join(work, 'event.json');
  writeFileSync(eventPath, JSON.stringify(pullRequestEvent().payload));
  const rec = recordingCore({
    state: {
      [STATE_SECRET]: b.secret,
      [STATE_SESSION]: encodeSavedSession({
        brokerUrl: b.url,
        caCertPem: null,
        dir,
        id: b.sessionId,
        expiresAt: '2025-06-01T12:15:00.000Z',
        policy: 'pull-requests-read-only',
        identity: { repository: 'octo-org/octo-repo', run_id: '9876543210', run_attempt: '1' },
        targets: [{ name: 'orders-db', kind: 'postgres', access: 'read' }],
      }),
    },
  });
  const summaries: string[] = [];
  const env: Record<string, string> = {
    'INPUT_GITHUB-TOKEN': GITHUB_TOKEN,
    'INPUT_JOB-SUMMARY': 'true',
    'INPUT_CHECK-RUN': 'true',
    'INPUT_FAIL-ON-DENIED': 'false',
    GITHUB_REPOSITORY: 'octo-org/octo-repo',
    GITHUB_SHA: 'f0e1d2c3b4a5968778695a4b3c2d1e0f12345678',
    GITHUB_RUN_ID: '9876543210',
    GITHUB_JOB: 'db-check',
    GITHUB_EVENT_NAME: 'pull_request',
    GITHUB_EVENT_PATH: eventPath,
    GITHUB_API_URL: api.url,
    ...inputs,
  };
  const deps = {
    core: rec.core,
    env,
    writeSummary: async (md: string) => {
      summaries.push(md);
    },
    checksApi: (token: string, baseUrl: string) => getOctokit(token, { baseUrl }),
    now: () => new Date('2025-06-01T12:05:00.000Z'),
    revokeRetry: { attempts: 3, baseDelayMs: 10 },
    transcriptRetry: { attempts: 2, baseDelayMs: 10 },
  };
  return { rec, summaries, deps, dir };
}

const denial: FakeBrokerOptions['events'] = [
  {
    target: 'orders-db',
    kind: 'pg.statement',
    operation: { statement: 'select 1' },
    decision: 'allow',
    reasons: [],
    rows: 1,
  },
  {
    target: 'orders-db',
    kind: 'pg.denied',
    operation: { statement: 'DROP TABLE orders' },
    decision: 'deny',
    reasons: ['access read'],
  },
];

async function openedBroker(opts: FakeBrokerOptions = {}): Promise<FakeBroker> {
  const b = await startFakeBroker(opts);
  // open the session the way main would have
  await fetch(`${b.url}/v1/sessions`, {
    method: 'POST',
    body: JSON.stringify({ oidc_token: 'x' }),
    headers: { 'content-type': 'application/json' },
  });
  return b;
}

describe('post step', () => {
  it('revokes, then reports the final transcript in the summary and a check run on the PR head', async () => {
    broker = await openedBroker({ events: denial });
    const { rec, summaries, deps, dir } = setup(broker);
    await runPost(deps);
    expect(rec.failed()).toBeUndefined();
    const methods = broker.requests.map((r) => `${r.method} ${r.path}`);
    expect(methods.slice(1)).toEqual([
      `DELETE /v1/sessions/${broker.sessionId}`,
      `GET /v1/sessions/${broker.sessionId}/transcript`,
    ]);
    expect(rec.secrets()).toContain(broker.secret);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toContain('session.revoked');
    expect(summaries[0]).toContain(broker.transcript().head_hash);
    expect(summaries[0]).toContain('**⛔ denied**');
    expect(api.violations).toEqual([]);
    const [check] = api.checkRuns();
    expect(check).toMatchObject({
      head_sha: PR_HEAD_SHA,
      conclusion: 'neutral',
      name: 'hoop session (db-check)',
    });
    expect(existsSync(dir)).toBe(false);
    for (const line of rec.log()) expect(line).not.toContain(broker.secret);
  });

  it('fails the job and the check with fail-on-denied', async () => {
    broker = await openedBroker({ events: denial });
    const { rec, deps } = setup(broker, { 'INPUT_FAIL-ON-DENIED': 'true' });
    await runPost(deps);
    expect(rec.failed()).toBe('hoop: 1 operation was denied (fail-on-denied: true); see the job summary');
    expect(api.checkRuns()[0]).toMatchObject({ conclusion: 'failure' });
  });

  it('says the transcript could not be fetched when the broker is down, after retrying the revoke', async () => {
    broker = await openedBroker();
    await broker.stop();
    const { rec, summaries, deps } = setup(broker);
    await runPost(deps);
    expect(rec.failed()).toBeUndefined();
    expect(summaries[0]).toContain('The transcript could not be fetched: broker unreachable');
    expect(summaries[0]).toContain('could not be revoked after 3 attempts');
    expect(
      rec
        .log()
        .some((l) => /^hoop: could not revoke session s_\w+ \(3 attempts\): broker unreachable/.test(l)),
    ).toBe(true);
    expect(api.checkRuns()[0]).toMatchObject({
      conclusion: 'neutral',
      output: { title: 'Transcript unavailable' },
    });
  });

  it('retries a revoke the broker answers 503 to, and reports success once it passes', async () => {
    broker = await openedBroker({ failRevokes: 2 });
    const { rec, summaries, deps } = setup(broker);
    await runPost(deps);
    expect(broker.requests.filter((r) => r.method === 'DELETE')).toHaveLength(3);
    expect(summaries[0]).toContain('Session: revoked at the end of the job (after 3 attempts).');
    expect(rec.log()).toContain(`hoop: session ${broker.sessionId} revoked`);
  });

  it('reports an already expired session with its transcript', async () => {
    broker = await openedBroker({ state: 'expired', events: denial });
    const { summaries, deps } = setup(broker);
    await runPost(deps);
    expect(summaries[0]).toContain('| State | expired |');
    expect(summaries[0]).toContain('Session: had already expired at the end of the job.');
  });

  it('degrades to the saved facts when the broker no longer accepts the secret', async () => {
    broker = await openedBroker({ transcriptStatus: 401 });
    const { rec, summaries, deps } = setup(broker);
    await runPost(deps);
    expect(summaries[0]).toContain("the broker no longer accepts this session's secret");
    expect(summaries[0]).toContain('| Repository | octo-org/octo-repo |');
    expect(rec.failed()).toBeUndefined();
  });

  it('turns a refused check run into a warning with the permissions hint', async () => {
    const readOnly = await startGitHubApi({
      respond: () => ({ status: 403, body: { message: 'Resource not accessible by integration' } }),
    });
    try {
      broker = await openedBroker();
      const { rec, deps } = setup(broker, { GITHUB_API_URL: readOnly.url });
      await runPost(deps);
      expect(rec.failed()).toBeUndefined();
      expect(
        rec.calls.some((c) => c.fn === 'warning' && String(c.args[0]).includes('permissions: checks: write')),
      ).toBe(true);
    } finally {
      await readOnly.close();
    }
  });

  it('skips summary and check run when turned off, and does nothing without a session', async () => {
    broker = await openedBroker();
    const { summaries, deps } = setup(broker, { 'INPUT_JOB-SUMMARY': 'false', 'INPUT_CHECK-RUN': 'false' });
    await runPost(deps);
    expect(summaries).toEqual([]);
    expect(api.requests).toEqual([]);
    expect(broker.requests.some((r) => r.method === 'DELETE')).toBe(true);

    const empty = recordingCore();
    await runPost({ ...deps, core: empty.core });
    expect(empty.log()).toEqual([
      'hoop: no session was opened in this job, so there is nothing to report or revoke.',
    ]);
  });
});

describe('post step with a hanging broker', () => {
  let hang: Server;
  beforeAll(async () => {
    hang = createServer(() => {});
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    hang.closeAllConnections();
    await new Promise<void>((r) => hang.close(() => r()));
  });
  it('does not hang the job: the client deadline ends each attempt', async () => {
    const url = `http://127.0.0.1:${(hang.address() as AddressInfo).port}`;
    const { summaries, deps } = setup({ url, sessionId: 's_1', secret: 'hoop_x_secret' });
    const t0 = Date.now();
    // a short deadline for the test; the action uses 20 s per request
    await runPost({
      ...deps,
      revokeRetry: { attempts: 1, baseDelayMs: 0 },
      transcriptRetry: { attempts: 1, baseDelayMs: 0 },
      requestTimeoutMs: 300,
    });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(summaries[0]).toContain('timed out after 300 ms');
  });
});
