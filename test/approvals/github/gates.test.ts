// Session-open gates through POST /v1/sessions on the real broker, GitHub answered by the OpenAPI-checked
// stand-in: `require.environment_approval` (the run's deployment reviews) and
// `require.pull_request_reviews` (approvals on the PR's head commit, latest per reviewer, never the
// author, from teams when given). A missing approval refuses the session (403, recorded as a denial);
// the approvers land in the transcript's session.opened event.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  COMMIT_PULLS,
  GET_COMMIT,
  GET_PULL,
  PULL_REVIEWS,
  RUN_APPROVALS,
} from '../../../service/approvals/github/gates.js';
import { GET_TEAM_MEMBERSHIP } from '../../../service/approvals/github/permissions.js';
import type { Config } from '../../../service/config/schema.js';
import { startBroker, type TestBroker } from '../../fixtures/broker.js';
import { type GitHubApiStandIn, startGitHubApi } from '../../fixtures/github-api.js';
import { type OidcIssuer, startOidcIssuer } from '../../fixtures/oidc-issuer.js';
import { APP_ID, APP_PRIVATE_KEY } from './app-key.js';

const AUD = 'https://hoop.gates.test';
const TOKENS = 'POST /app/installations/{installation_id}/access_tokens';
const HEAD = 'b'.repeat(40);
const OLD = 'c'.repeat(40);
const MERGE = 'd'.repeat(40);

let issuer: OidcIssuer;
let api: GitHubApiStandIn;
let broker: TestBroker;
let runApprovals: unknown[] = [];
let reviews: unknown[] = [];
let prHead = HEAD;
let mergeParents = ['e'.repeat(40), HEAD];

const review = (login: string, state: string, commit_id: string, n: number) => ({
  id: n,
  user: { login },
  state,
  commit_id,
  submitted_at: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(),
});

beforeAll(async () => {
  issuer = await startOidcIssuer({ audience: AUD });
  api = await startGitHubApi({
    operations: [
      TOKENS,
      RUN_APPROVALS,
      COMMIT_PULLS,
      GET_COMMIT,
      PULL_REVIEWS,
      GET_PULL,
      GET_TEAM_MEMBERSHIP,
    ],
    respond: (r) => {
      switch (r.operation) {
        case TOKENS:
          return {
            status: 201,
            body: { token: 'ghs_gates', expires_at: new Date(Date.now() + 3.6e6).toISOString() },
          };
        case RUN_APPROVALS:
          return { status: 200, body: runApprovals };
        case COMMIT_PULLS:
          return {
            status: 200,
            body: r.params.commit_sha === HEAD ? [{ number: 7, state: 'open', head: { sha: HEAD } }] : [],
          };
        case GET_PULL:
          return { status: 200, body: { number: 7, head: { sha: prHead }, user: { login: 'prauthor' } } };
        case GET_COMMIT:
          return { status: 200, body: { sha: r.params.ref, parents: mergeParents.map((sha) => ({ sha })) } };
        case PULL_REVIEWS:
          return { status: 200, body: reviews };
        case GET_TEAM_MEMBERSHIP:
          return r.params.username === 'alice' && r.params.team_slug === 'dba'
            ? { status: 200, body: { state: 'active', role: 'member', url: 'https://api.github.com/x' } }
            : { status: 404, body: { message: 'Not Found' } };
        default:
          return undefined;
      }
    },
  });
  const grant = (require: NonNullable<Config['policies'][number]['grants'][number]['require']>) => [
    { target: 'db', access: 'write' as const, require },
  ];
  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'db',
        kind: 'postgres',
        host: '127.0.0.1',
        database: 'x',
        user: 'x',
        password: { env: 'G_PW' },
      },
    ],
    policies: [
      { name: 'deploy', when: { workflow: 'deploy' }, grants: grant({ environment_approval: true }) },
      {
        name: 'reviewed',
        when: { workflow: 'migrate' },
        grants: grant({ pull_request_reviews: { min: 2 } }),
      },
      {
        name: 'dba',
        when: { workflow: 'dba' },
        grants: grant({ pull_request_reviews: { min: 1, teams: ['octo-org/dba'] } }),
      },
    ],
    github_app: {
      webhook_secret: { env: 'G_WH' },
      app_id: APP_ID,
      private_key: { env: 'G_KEY' },
      api_url: api.url,
      installation_id: 1,
    },
  };
  broker = await startBroker({ config, env: { G_PW: 'unused', G_WH: 'wh', G_KEY: APP_PRIVATE_KEY } });
});
afterAll(async () => {
  await broker?.close();
  await api?.close();
  await issuer?.close();
});
beforeEach(() => {
  runApprovals = [];
  reviews = [];
  prHead = HEAD;
  mergeParents = ['e'.repeat(40), HEAD];
});

async function open(claims: Record<string, string>) {
  const res = await fetch(`${broker.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      oidc_token: await issuer.mint({ repository: 'octo-org/app', run_id: '555', ...claims }),
    }),
  });
  const body = (await res.json()) as { id: string; secret: string; reasons?: { message: string }[] };
  return { status: res.status, body, reasons: (body.reasons ?? []).map((r) => r.message).join(' | ') };
}

async function opened(s: { id: string; secret: string }) {
  const res = await fetch(`${broker.url}/v1/sessions/${s.id}/transcript`, {
    headers: { authorization: `Bearer ${s.secret}` },
  });
  const t = (await res.json()) as {
    events: { kind: string; reasons: string[]; operation: Record<string, unknown> }[];
  };
  return t.events.find((e) => e.kind === 'session.opened')!;
}

describe('require.environment_approval', () => {
  it('refuses the session when no approval of the environment is on record', async () => {
    const r = await open({ workflow: 'deploy', environment: 'production' });
    expect(r.status).toBe(403);
    expect(r.reasons).toContain('no approval of environment production is on record for run 555');
    expect(api.requests.at(-1)).toMatchObject({
      operation: RUN_APPROVALS,
      params: { run_id: '555', owner: 'octo-org', repo: 'app' },
    });
  });

  it('refuses a job outside any environment, and a rejected deployment', async () => {
    expect((await open({ workflow: 'deploy' })).reasons).toContain('the job runs in no environment');
    runApprovals = [
      { state: 'approved', user: { login: 'alice' }, comment: '', environments: [{ name: 'production' }] },
      { state: 'rejected', user: { login: 'bob' }, comment: 'no', environments: [{ name: 'production' }] },
    ];
    const r = await open({ workflow: 'deploy', environment: 'production' });
    expect(r.status).toBe(403);
    expect(r.reasons).toContain('bob rejected environment production');
  });

  it("an approval of another environment does not count; this environment's approval opens it, with the approvers in the transcript", async () => {
    runApprovals = [
      { state: 'approved', user: { login: 'mallory' }, comment: '', environments: [{ name: 'staging' }] },
    ];
    expect((await open({ workflow: 'deploy', environment: 'production' })).status).toBe(403);
    runApprovals.push({
      state: 'approved',
      user: { login: 'alice' },
      comment: 'ok',
      environments: [{ name: 'production' }],
    });
    const r = await open({ workflow: 'deploy', environment: 'production' });
    expect(r.status).toBe(201);
    const ev = await opened(r.body);
    expect(ev.operation.approved_by).toEqual(['alice']);
    expect(ev.reasons.join(' ')).toContain('environment production approved by alice');
    expect(api.violations).toEqual([]);
  });
});

describe('require.pull_request_reviews', () => {
  it('counts only the latest review per reviewer, approving the head commit, not the author', async () => {
    reviews = [
      review('alice', 'APPROVED', HEAD, 1),
      review('bob', 'APPROVED', OLD, 2), // stale: an earlier commit
      review('prauthor', 'APPROVED', HEAD, 3), // the author never counts
      review('carol', 'APPROVED', HEAD, 4),
      review('carol', 'CHANGES_REQUESTED', HEAD, 5), // carol's latest
      review('dave', 'APPROVED', HEAD, 6),
      review('dave', 'COMMENTED', HEAD, 7), // a comment does not undo dave's approval
    ];
    const ok = await open({ workflow: 'migrate', ref: 'refs/heads/feature', sha: HEAD });
    expect(ok.status).toBe(201);
    const ev = await opened(ok.body);
    expect(ev.operation.approved_by).toEqual(['alice', 'dave']);
    expect(api.requests.some((r) => r.operation === COMMIT_PULLS && r.params.commit_sha === HEAD)).toBe(true);
    reviews = reviews.filter((r) => (r as { user: { login: string } }).user.login !== 'dave');
    const short = await open({ workflow: 'migrate', ref: 'refs/heads/feature', sha: HEAD });
    expect(short.status).toBe(403);
    expect(short.reasons).toContain(
      "pull request #7 has 1 approving review on its head bbbbbbbbbbbb (the author's never counts), 2 required",
    );
  });

  it('refuses when all approvals are stale, and when the commit is no pull request’s head', async () => {
    reviews = [review('alice', 'APPROVED', OLD, 1), review('dave', 'APPROVED', OLD, 2)];
    expect((await open({ workflow: 'migrate', ref: 'refs/heads/feature', sha: HEAD })).status).toBe(403);
    const none = await open({ workflow: 'migrate', ref: 'refs/heads/feature', sha: OLD });
    expect(none.reasons).toContain(`no pull request has commit ${OLD} as its head`);
  });

  it("a pull_request job's merge commit must have the PR's current head as a parent", async () => {
    reviews = [review('alice', 'APPROVED', HEAD, 1), review('dave', 'APPROVED', HEAD, 2)];
    const ok = await open({ workflow: 'migrate', ref: 'refs/pull/7/merge', sha: MERGE });
    expect(ok.status).toBe(201);
    expect(api.requests.some((r) => r.operation === GET_COMMIT && r.params.ref === MERGE)).toBe(true);
    prHead = 'f'.repeat(40); // pushed since: the approvals are for a head this job does not run
    reviews = [review('alice', 'APPROVED', prHead, 1), review('dave', 'APPROVED', prHead, 2)];
    const moved = await open({ workflow: 'migrate', ref: 'refs/pull/7/merge', sha: MERGE });
    expect(moved.status).toBe(403);
    expect(moved.reasons).toContain('head is now ffffffffffff');
  });

  it('with teams, only active members count', async () => {
    reviews = [review('dave', 'APPROVED', HEAD, 1)];
    const r = await open({ workflow: 'dba', ref: 'refs/heads/feature', sha: HEAD });
    expect(r.status).toBe(403);
    expect(r.reasons).toContain('from octo-org/dba');
    reviews.push(review('alice', 'APPROVED', HEAD, 2));
    const ok = await open({ workflow: 'dba', ref: 'refs/heads/feature', sha: HEAD });
    expect(ok.status).toBe(201);
    expect((await opened(ok.body)).operation.approved_by).toEqual(['alice']);
    expect(api.violations).toEqual([]);
  });
});
