// GitHub deliveries that decide holds, through the real broker's POST /v1/github/webhook, with the
// App's API answered by the OpenAPI-checked stand-in: built from GitHub's example payloads and signed
// as GitHub signs them. A permitted reviewer's button or `/hoop` comment reaches the decider verified;
// forged, replayed, unpermitted, self-approving and unrelated deliveries are refused with the reason.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { checkRunName } from '../../../service/approvals/github/check-run-channel.js';
import {
  GET_PERMISSION,
  GET_PULL,
  GET_TEAM_MEMBERSHIP,
} from '../../../service/approvals/github/permissions.js';
import type { PendingApproval } from '../../../service/approvals/types.js';
import type { Config } from '../../../service/config/schema.js';
import { startBroker, type TestBroker } from '../../fixtures/broker.js';
import { type GitHubApiStandIn, startGitHubApi } from '../../fixtures/github-api.js';
import { type OidcIssuer, startOidcIssuer } from '../../fixtures/oidc-issuer.js';
import { APP_ID, APP_PRIVATE_KEY } from './app-key.js';
import { delivery, example, post } from './deliveries.js';
import { MemoryDecider, pendingApproval } from './memory-decider.js';

const SECRET = 'approvals-webhook-secret-7';
const TOKENS = 'POST /app/installations/{installation_id}/access_tokens';
const PERMISSIONS: Record<string, string> = {
  reviewer: 'write',
  teamie: 'write',
  outsider: 'write',
  reader: 'read',
  author: 'admin',
  prauthor: 'write',
};

let issuer: OidcIssuer;
let api: GitHubApiStandIn;
let broker: TestBroker;
const decider = new MemoryDecider();

beforeAll(async () => {
  issuer = await startOidcIssuer({ audience: 'https://hoop.approvals.test' });
  api = await startGitHubApi({
    operations: [TOKENS, GET_PULL, GET_PERMISSION, GET_TEAM_MEMBERSHIP],
    respond: (r) => {
      if (r.operation === TOKENS)
        return {
          status: 201,
          body: { token: 'ghs_webhook_test', expires_at: new Date(Date.now() + 3.6e6).toISOString() },
        };
      if (r.operation === GET_PULL)
        return { status: 200, body: { number: Number(r.params.pull_number), user: { login: 'prauthor' } } };
      if (r.operation === GET_PERMISSION) {
        const permission = PERMISSIONS[r.params.username!];
        return permission
          ? { status: 200, body: { permission, role_name: permission, user: { login: r.params.username } } }
          : { status: 404, body: { message: 'Not Found' } };
      }
      if (r.operation === GET_TEAM_MEMBERSHIP)
        return r.params.org === 'octo-org' && r.params.team_slug === 'dba' && r.params.username === 'teamie'
          ? { status: 200, body: { role: 'member', state: 'active', url: 'https://api.github.com/x' } }
          : { status: 404, body: { message: 'Not Found' } };
      return undefined;
    },
  });
  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: 'https://hoop.approvals.test' }],
    targets: [
      {
        name: 'db',
        kind: 'postgres',
        host: '127.0.0.1',
        database: 'x',
        user: 'x',
        password: { env: 'AW_PW' },
      },
    ],
    policies: [
      { name: 'p', when: { event_name: 'pull_request' }, grants: [{ target: 'db', access: 'read' }] },
    ],
    github_app: {
      webhook_secret: { env: 'AW_SECRET' },
      app_id: APP_ID,
      private_key: { env: 'AW_KEY' },
      api_url: api.url,
      installation_id: 3,
    },
  };
  broker = await startBroker({
    config,
    env: { AW_PW: 'unused', AW_SECRET: SECRET, AW_KEY: APP_PRIVATE_KEY },
    approvalDecider: decider,
  });
});
afterAll(async () => {
  await broker?.close();
  await api?.close();
  await issuer?.close();
});
beforeEach(() => {
  decider.decisions.length = 0;
});

function held(over: Partial<PendingApproval> = {}): PendingApproval {
  const a = decider.add(pendingApproval(over));
  a.approvers = over.approvers ?? { users: ['reviewer'], teams: ['octo-org/dba'], min: 1 };
  a.github_check_run_id = 4242;
  return a;
}

function button(
  a: PendingApproval,
  identifier: 'approve' | 'deny',
  login: string,
  over: Record<string, unknown> = {},
) {
  const p = example('check_run', 'requested_action') as Record<string, Record<string, unknown>>;
  p.requested_action = { identifier };
  p.check_run = { ...p.check_run, id: 4242, name: checkRunName(a.id), external_id: a.id, ...over };
  p.repository = { ...p.repository, full_name: a.job.repository };
  p.sender = { ...p.sender, login, type: 'User' };
  return p;
}

function comment(
  a: PendingApproval | { id: string; job: { repository: string } },
  body: string,
  login: string,
  pr: number | null = 7,
) {
  const p = example('issue_comment', 'created') as Record<string, Record<string, unknown>>;
  p.issue = {
    ...p.issue,
    number: pr ?? 1,
    ...(pr === null ? {} : { pull_request: { url: 'https://api.github.com/repos/octo-org/app/pulls/7' } }),
  };
  if (pr === null) delete p.issue.pull_request;
  p.comment = { ...p.comment, body, user: { login, type: 'User' } };
  p.repository = { ...p.repository, full_name: a.job.repository };
  p.sender = { ...p.sender, login, type: 'User' };
  return p;
}

const send = async (event: string, payload: unknown, override: Record<string, string> = {}) => {
  const res = await post(broker.url, delivery(event, payload, SECRET), override);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe('check_run requested_action', () => {
  it('a named approver with write permission approves: the decider gets a verified decision', async () => {
    const a = held();
    const res = await send('check_run', button(a, 'approve', 'reviewer'));
    expect(res).toMatchObject({
      status: 200,
      body: { approval: a.id, decision: 'approve', by: 'reviewer', state: 'approved' },
    });
    expect(decider.decisions).toEqual([
      { id: a.id, decision: 'approve', by: 'reviewer', channel: 'github_check', verified_approver: true },
    ]);
    expect(a.state).toBe('approved');
    expect(api.violations).toEqual([]);
  });

  it('the Deny button denies', async () => {
    const a = held();
    const res = await send('check_run', button(a, 'deny', 'teamie'));
    expect(res.status).toBe(200);
    expect(a.state).toBe('denied');
    expect(a.votes[0]).toMatchObject({ by: 'teamie', decision: 'deny', channel: 'github_check' });
  });

  it('a forged signature is refused and decides nothing', async () => {
    const a = held();
    const d = delivery('check_run', button(a, 'approve', 'reviewer'), 'not-the-secret');
    const res = await post(broker.url, d);
    expect(res.status).toBe(401);
    // a valid signature over another body does not carry over either
    const good = delivery('check_run', button(a, 'approve', 'reviewer'), SECRET);
    const tampered = await post(broker.url, { ...good, body: good.body.replace('"approve"', '"deny"   ') });
    expect(tampered.status).toBe(401);
    expect(decider.decisions).toEqual([]);
    expect(a.state).toBe('pending');
  });

  it('a replayed delivery id is refused, also with a valid signature', async () => {
    const a = held({ approvers: { users: ['reviewer', 'teamie'], teams: [], min: 2 } });
    const first = delivery('check_run', button(a, 'approve', 'reviewer'), SECRET);
    expect((await post(broker.url, first)).status).toBe(200);
    const again = await post(broker.url, first);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe('replayed delivery');
    expect(decider.decisions).toHaveLength(1);
    expect(a.state).toBe('pending');
    // and a missing delivery id is malformed
    const none = delivery('check_run', button(a, 'approve', 'teamie'), SECRET);
    const { 'x-github-delivery': _, ...headers } = none.headers;
    const res = await fetch(`${broker.url}/v1/github/webhook`, { method: 'POST', headers, body: none.body });
    expect(res.status).toBe(400);
    expect(decider.decisions).toHaveLength(1);
  });

  it('refuses a sender without write permission, and a writer who is not among the approvers', async () => {
    const a = held();
    const reader = await send('check_run', button(a, 'approve', 'reader'));
    expect(reader).toMatchObject({ status: 403, body: { error: 'not_permitted' } });
    expect(JSON.stringify(reader.body)).toContain('no write permission');
    const outsider = await send('check_run', button(a, 'approve', 'outsider'));
    expect(outsider).toMatchObject({ status: 403, body: { error: 'not_permitted' } });
    expect(JSON.stringify(outsider.body)).toContain('not among the approvers');
    const stranger = await send('check_run', button(a, 'approve', 'nobody-here'));
    expect(stranger.status).toBe(403);
    expect(decider.decisions).toEqual([]);
    expect(a.state).toBe('pending');
    // the team was asked about
    expect(
      api.requests.some((r) => r.operation === GET_TEAM_MEMBERSHIP && r.params.username === 'outsider'),
    ).toBe(true);
  });

  it("refuses self-approval: the job's actor, and the PR's author read through the API", async () => {
    const a = held({ approvers: { users: ['author', 'prauthor'], teams: [], min: 1 } });
    const actor = await send('check_run', button(a, 'approve', 'AUTHOR'));
    expect(actor).toMatchObject({ status: 403, body: { error: 'self_approval' } });
    const before = api.requests.filter((r) => r.operation === GET_PULL).length;
    const prAuthor = await send('check_run', button(a, 'approve', 'prauthor'));
    expect(prAuthor).toMatchObject({ status: 403, body: { error: 'self_approval' } });
    const pulls = api.requests.filter((r) => r.operation === GET_PULL);
    expect(pulls.length).toBe(before + 1);
    expect(pulls.at(-1)!.params).toMatchObject({ owner: 'octo-org', repo: 'app', pull_number: '7' });
    expect(decider.decisions).toEqual([]);
    expect(a.state).toBe('pending');
  });

  it("refuses a check run that is not the approval's, and ignores check runs that are not hoop's", async () => {
    const a = held();
    expect((await send('check_run', button(a, 'approve', 'reviewer', { id: 999 }))).status).toBe(422);
    expect((await send('check_run', button(a, 'approve', 'reviewer', { name: 'CI' }))).status).toBe(422);
    const other = button(a, 'approve', 'reviewer');
    (other.repository as Record<string, unknown>).full_name = 'octo-org/other';
    expect((await send('check_run', other)).status).toBe(422);
    const unknown = await send(
      'check_run',
      button(a, 'approve', 'reviewer', { external_id: 'apr_nosuch', name: checkRunName('apr_nosuch') }),
    );
    expect(unknown.status).toBe(404);
    const foreign = await send('check_run', example('check_run', 'requested_action'));
    expect(foreign).toMatchObject({ status: 202, body: { ignored: true } });
    expect(decider.decisions).toEqual([]);
  });

  it('a decided approval is not decided again', async () => {
    const a = held();
    expect((await send('check_run', button(a, 'approve', 'reviewer'))).status).toBe(200);
    const late = await send('check_run', button(a, 'deny', 'teamie'));
    expect(late).toMatchObject({ status: 409, body: { error: 'not pending' } });
    expect(a.state).toBe('approved');
  });
});

describe('issue_comment /hoop approve|deny', () => {
  it('a team member approves with a comment on the approval’s pull request', async () => {
    const a = held();
    const res = await send(
      'issue_comment',
      comment(a, `Checked the plan.\n/hoop approve ${a.id}\nthanks`, 'teamie'),
    );
    expect(res).toMatchObject({
      status: 200,
      body: { state: 'approved', by: 'teamie', via: 'member of octo-org/dba' },
    });
    expect(decider.decisions.at(-1)).toMatchObject({ channel: 'github_comment', verified_approver: true });
  });

  it('/hoop deny with a reason denies, and the reason reaches the decider', async () => {
    const a = held();
    const res = await send(
      'issue_comment',
      comment(a, `/hoop deny ${a.id} drops the wrong table`, 'reviewer'),
    );
    expect(res.status).toBe(200);
    expect(a.votes[0]).toMatchObject({ decision: 'deny', reason: 'drops the wrong table' });
  });

  it('refuses a comment on an unrelated PR, on an issue, for an unknown id, and from the PR author', async () => {
    const a = held();
    expect((await send('issue_comment', comment(a, `/hoop approve ${a.id}`, 'reviewer', 8))).status).toBe(
      422,
    );
    expect((await send('issue_comment', comment(a, `/hoop approve ${a.id}`, 'reviewer', null))).status).toBe(
      422,
    );
    expect((await send('issue_comment', comment(a, '/hoop approve apr_unknown1', 'reviewer'))).status).toBe(
      404,
    );
    expect((await send('issue_comment', comment(a, '/hoop approve ../../x', 'reviewer'))).status).toBe(400);
    const self = await send(
      'issue_comment',
      comment({ ...a, approvers: a.approvers }, `/hoop approve ${a.id}`, 'prauthor'),
    );
    expect(self).toMatchObject({ status: 403, body: { error: 'self_approval' } });
    expect(decider.decisions).toEqual([]);
    expect(a.state).toBe('pending');
  });

  it('ignores comments without a command, edits, and the unmodified example', async () => {
    const a = held();
    expect((await send('issue_comment', comment(a, 'LGTM', 'reviewer'))).body).toMatchObject({
      ignored: true,
    });
    const edited = comment(a, `/hoop approve ${a.id}`, 'reviewer');
    edited.action = 'edited' as never;
    expect((await send('issue_comment', edited)).body).toMatchObject({ ignored: true });
    expect((await send('issue_comment', example('issue_comment', 'created'))).status).toBe(202);
    expect(decider.decisions).toEqual([]);
  });
});
