// The GitHub channel end to end, through the real broker (in-process, embedded store) configured as a
// GitHub App whose API is the OpenAPI-checked stand-in, in front of a real PostgreSQL: a statement psql
// or node-postgres sends is held; the stand-in receives an `action_required` check run with Approve /
// Deny on the pull request's head commit; a signed `check_run.requested_action` delivery (or a `/hoop`
// comment) POSTed to the broker's webhook route releases or refuses it; the check run is updated with
// who decided. Forged, replayed, unpermitted and self-approving deliveries release nothing. What
// reached the server is read back from the server.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRunName } from '../../service/approvals/github/check-run-channel.js';
import { GET_PERMISSION, GET_PULL, GET_TEAM_MEMBERSHIP } from '../../service/approvals/github/permissions.js';
import type { PendingApproval } from '../../service/approvals/types.js';
import type { Config } from '../../service/config/schema.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { CREATE_CHECK_RUN, type GitHubApiStandIn, startGitHubApi } from '../fixtures/github-api.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';
import { tool } from '../gateways/postgres/helpers.js';
import { GET_CONTENTS } from '../../service/approvals/reviewed-migrations.js';
import { runner } from 'node-pg-migrate';
import { APP_ID, APP_PRIVATE_KEY } from './github/app-key.js';
import { delivery, example, post, sign } from './github/deliveries.js';

const AUD = 'https://hoop.github-e2e.test';
const SECRET = 'github-e2e-webhook-secret-41';
const ADMIN = 'github-e2e-admin-token-0123456789abcdef';
const DB_PASSWORD = 'github-e2e-upstream-pw-9z8y7x';
const REPO = 'octo-org/app';
const PR = 7;
const MERGE_SHA = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const HEAD_SHA = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
/** a commit whose files the contents API fails to serve */
const BROKEN_SHA = 'cccccccccccccccccccccccccccccccccccccccc';
const TOKENS = 'POST /app/installations/{installation_id}/access_tokens';
const UPDATE_CHECK_RUN = 'PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}';
const LIST_CHECK_RUNS = 'GET /repos/{owner}/{repo}/commits/{ref}/check-runs';
const CREATE_COMMENT = 'POST /repos/{owner}/{repo}/issues/{issue_number}/comments';
/** The repository's reviewed migration files at MERGE_SHA (node-pg-migrate's SQL format: up and down). */
const REVIEWED: Record<string, string> = {
  'db/migrations/1700000000001_orders.sql': [
    '-- Up Migration',
    'CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL);',
    'ALTER TABLE orders ADD COLUMN note text;',
    '-- Down Migration',
    'DROP TABLE orders;',
    '',
  ].join('\n'),
  'db/migrations/1700000000002_backfill.sql':
    "-- Up Migration\nALTER TABLE orders ALTER COLUMN note SET DEFAULT '';\nUPDATE orders SET note = '' WHERE note IS NULL;\n",
  // golang-migrate style: a down file is never a reviewed up statement
  'db/migrations/1700000000003_x.down.sql': 'DROP TABLE orders;\n',
};
const PERMISSIONS: Record<string, string> = {
  reviewer: 'write',
  teamie: 'write',
  reader: 'read',
  octocat: 'admin',
  prauthor: 'write',
};

let issuer: OidcIssuer;
let db: PgServer;
let gh: GitHubApiStandIn;
let b: TestBroker;
let dir: string;
const contentReads: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-gh-e2e-'));
  [issuer, db, gh] = await Promise.all([
    startOidcIssuer({ audience: AUD }),
    startPostgres(),
    startGitHubApi({
      operations: [
        TOKENS,
        GET_PULL,
        GET_PERMISSION,
        GET_TEAM_MEMBERSHIP,
        CREATE_CHECK_RUN,
        UPDATE_CHECK_RUN,
        LIST_CHECK_RUNS,
        CREATE_COMMENT,
        GET_CONTENTS,
      ],
      respond: (r) => {
        if (r.operation === TOKENS)
          return {
            status: 201,
            body: { token: 'ghs_e2e_installation', expires_at: new Date(Date.now() + 3.6e6).toISOString() },
          };
        if (r.operation === GET_PULL)
          return {
            status: 200,
            body: {
              number: Number(r.params.pull_number),
              user: { login: 'prauthor' },
              head: { sha: HEAD_SHA, ref: 'feature' },
            },
          };
        if (r.operation === GET_PERMISSION) {
          const permission = PERMISSIONS[r.params.username!];
          return permission
            ? { status: 200, body: { permission, role_name: permission, user: { login: r.params.username } } }
            : { status: 404, body: { message: 'Not Found' } };
        }
        if (r.operation === GET_CONTENTS) {
          contentReads.push(`${r.params.path}@${r.query.ref ?? ''}`);
          if (r.query.ref === BROKEN_SHA) return { status: 502, body: { message: 'Server Error' } };
          const path = r.params.path!;
          if (path === 'db/migrations')
            return {
              status: 200,
              body: Object.keys(REVIEWED).map((p) => ({
                type: 'file',
                name: p.split('/').at(-1),
                path: p,
                size: REVIEWED[p]!.length,
              })),
            };
          const text = REVIEWED[path];
          return text === undefined
            ? { status: 404, body: { message: 'Not Found' } }
            : {
                status: 200,
                body: {
                  type: 'file',
                  name: path.split('/').at(-1),
                  path,
                  encoding: 'base64',
                  content: Buffer.from(text).toString('base64'),
                },
              };
        }
        if (r.operation === GET_TEAM_MEMBERSHIP)
          return r.params.org === 'octo-org' && r.params.team_slug === 'dba' && r.params.username === 'teamie'
            ? { status: 200, body: { role: 'member', state: 'active', url: 'https://api.github.com/x' } }
            : { status: 404, body: { message: 'Not Found' } };
        return undefined;
      },
    }),
  ]);
  await db.psql(`CREATE ROLE ci_app LOGIN PASSWORD '${DB_PASSWORD}'`);
  await db.psql('CREATE DATABASE app OWNER ci_app');
  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' }, postgres: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'app-db',
        kind: 'postgres',
        host: '127.0.0.1',
        port: db.port,
        database: 'app',
        user: 'ci_app',
        password: { env: 'GHE2E_DB_PASSWORD' },
        tls: { mode: 'disable' },
      },
    ],
    policies: [
      {
        // as examples/pr-gated-migrations.yaml: DDL that changes or removes, and row changes, are held
        // unless reviewed; node-pg-migrate's own bookkeeping (CREATE TABLE pgmigrations, SELECT, INSERT,
        // advisory locks, BEGIN/COMMIT) passes
        name: 'migrate-job',
        when: { repository: REPO, workflow: 'migrate' },
        grants: [
          {
            target: 'app-db',
            access: 'write',
            migrations: { paths: ['db/migrations/*.sql'] },
            deny: [{ statement: ['TRUNCATE'] }],
            approve: [{ statement: ['DROP', 'ALTER', 'DELETE', 'UPDATE'] }],
            approvers: { teams: ['octo-org/dba'] },
          },
        ],
      },
      {
        name: 'pr-migrations',
        when: { repository: REPO },
        grants: [
          {
            target: 'app-db',
            access: 'write',
            approve: [{ statement: ['DROP', 'CREATE TABLE'] }],
            approvers: { users: ['reviewer'], teams: ['octo-org/dba'] },
          },
        ],
      },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'GHE2E_ADMIN' } }] },
    github_app: {
      webhook_secret: { env: 'GHE2E_SECRET' },
      app_id: APP_ID,
      private_key: { env: 'GHE2E_KEY' },
      api_url: gh.url,
      installation_id: 3,
    },
  };
  b = await startBroker({
    config,
    env: {
      GHE2E_DB_PASSWORD: DB_PASSWORD,
      GHE2E_ADMIN: ADMIN,
      GHE2E_SECRET: SECRET,
      GHE2E_KEY: APP_PRIVATE_KEY,
    },
  });
}, 120_000);

afterAll(async () => {
  await b?.close();
  await Promise.all([issuer?.close(), db?.stop(), gh?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function openSession(workflow = 'ci', sha = MERGE_SHA): Promise<{ id: string; secret: string }> {
  const res = await requestSession(workflow, sha);
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string };
}

async function requestSession(workflow: string, sha: string): Promise<Response> {
  return fetch(`${b.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      oidc_token: await issuer.mint({
        repository: REPO,
        repository_owner: 'octo-org',
        sub: `repo:${REPO}:pull_request`,
        event_name: 'pull_request',
        ref: `refs/pull/${PR}/merge`,
        sha,
        actor: 'octocat',
        workflow,
      }),
    }),
  });
}

function pgEnv(s: { id: string; secret: string }): Record<string, string> {
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, b.caPem);
  return {
    PATH: process.env.PATH ?? '',
    PGHOST: '127.0.0.1',
    PGPORT: String(b.pgPort),
    PGUSER: s.id,
    PGPASSWORD: s.secret,
    PGDATABASE: 'app-db',
    PGSSLMODE: 'verify-ca',
    PGSSLROOTCERT: caFile,
  };
}

function client(s: { id: string; secret: string }): pg.Client {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: b.pgPort,
    user: s.id,
    password: s.secret,
    database: 'app-db',
    ssl: { ca: b.caPem },
  });
  c.on('error', () => undefined);
  return c;
}

/** The session's pending approval, once its check run exists (the channel recorded its id). */
async function heldWithCheckRun(sessionId: string, n = 1, timeoutMs = 20_000): Promise<PendingApproval[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const list = await b.broker.approvals.list({ state: 'pending', session_id: sessionId });
    const withRun = list.filter((a) => a.github_check_run_id !== undefined);
    if (withRun.length >= n) return withRun.sort((x, y) => x.requested_at.localeCompare(y.requested_at));
    if (Date.now() > until) throw new Error(`no ${n} held approval(s) with a check run for ${sessionId}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function button(a: PendingApproval, identifier: 'approve' | 'deny', login: string) {
  const p = example('check_run', 'requested_action') as Record<string, Record<string, unknown>>;
  p.requested_action = { identifier };
  p.check_run = {
    ...p.check_run,
    id: a.github_check_run_id,
    name: checkRunName(a.id),
    external_id: a.id,
    head_sha: HEAD_SHA,
  };
  p.repository = { ...p.repository, full_name: REPO };
  p.sender = { ...p.sender, login, type: 'User' };
  return p;
}

function comment(body: string, login: string) {
  const p = example('issue_comment', 'created') as Record<string, Record<string, unknown>>;
  p.issue = {
    ...p.issue,
    number: PR,
    pull_request: { url: `https://api.github.com/repos/${REPO}/pulls/${PR}` },
  };
  p.comment = { ...p.comment, body, user: { login, type: 'User' } };
  p.repository = { ...p.repository, full_name: REPO };
  p.sender = { ...p.sender, login, type: 'User' };
  return p;
}

const tableExists = async (name: string) =>
  (await db.psql(`SELECT count(*) FROM pg_class WHERE relname = '${name}'`, 'app')).trim() === '1';

const requestsTo = (operation: string, pred: (body: Record<string, unknown>) => boolean = () => true) =>
  gh.requests.filter(
    (r) => r.operation === operation && r.body !== null && pred(r.body as Record<string, unknown>),
  );

async function checkRunUpdate(a: PendingApproval, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const u = gh.requests.find(
      (r) => r.operation === UPDATE_CHECK_RUN && r.params.check_run_id === String(a.github_check_run_id),
    );
    if (u) {
      expect(u.errors).toEqual([]);
      return u.body as Record<string, unknown>;
    }
    if (Date.now() > until) throw new Error(`check run of ${a.id} was not updated`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function transcript(
  sessionId: string,
): Promise<{ kind: string; operation: Record<string, unknown> }[]> {
  const res = await fetch(`${b.url}/v1/sessions/${sessionId}/transcript`, {
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  return ((await res.json()) as { events: { kind: string; operation: Record<string, unknown> }[] }).events;
}

describe('the check run', () => {
  it('psql held → action_required check run on the PR head → Approve button → the statement runs, the run names who', async () => {
    await db.psql('CREATE TABLE gh_a (id int)', 'app');
    const s = await openSession();
    const run = tool('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-At', '-c', 'DROP TABLE gh_a'], pgEnv(s));
    const [a] = await heldWithCheckRun(s.id);
    const created = requestsTo(CREATE_CHECK_RUN, (x) => x.external_id === a!.id);
    expect(created).toHaveLength(1);
    expect(created[0]!.errors).toEqual([]);
    expect(created[0]!.params).toMatchObject({ owner: 'octo-org', repo: 'app' });
    expect(created[0]!.headers.authorization).toBe('token ghs_e2e_installation');
    const body = created[0]!.body as Record<string, unknown> & { output: Record<string, string> };
    expect(body).toMatchObject({
      name: checkRunName(a!.id),
      head_sha: HEAD_SHA, // the PR head, not the merge commit the token names
      status: 'completed',
      conclusion: 'action_required',
      actions: [
        expect.objectContaining({ label: 'Approve', identifier: 'approve' }),
        expect.objectContaining({ label: 'Deny', identifier: 'deny' }),
      ],
    });
    expect(body.output.summary).toContain('DROP TABLE gh_a');
    expect(body.output.summary).toContain('pr-migrations');
    expect(JSON.stringify(body)).not.toContain(DB_PASSWORD);
    await new Promise((r) => setTimeout(r, 200));
    expect(await tableExists('gh_a')).toBe(true); // held: not run

    const res = await post(b.url, delivery('check_run', button(a!, 'approve', 'reviewer'), SECRET));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ approval: a!.id, by: 'reviewer', state: 'approved' });
    const r = await run;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`hoop: statement held for approval ${a!.id}`);
    // the second notice names the check run, once the channel made it
    expect(r.stderr).toContain(
      `hoop: approval ${a!.id} can be decided on its GitHub check run: https://github.com/${REPO}/runs/${a!.github_check_run_id}`,
    );
    expect(await tableExists('gh_a')).toBe(false);

    const update = (await checkRunUpdate(a!)) as { conclusion: string; output: Record<string, string> };
    expect(update.conclusion).toBe('success');
    expect(update.output.title).toContain('Approved by reviewer (github_check)');
    expect(update.output.summary).toContain('reviewer: approve via github_check');
    const granted = (await transcript(s.id)).find((e) => e.kind === 'approval.granted');
    expect(granted?.operation).toMatchObject({ approval_id: a!.id, by: 'reviewer', channel: 'github_check' });
    expect(gh.violations).toEqual([]);
  });

  it('Deny button (a member of the approving team): a non-fatal 42501 naming who; nothing ran', async () => {
    await db.psql('CREATE TABLE gh_b (id int)', 'app');
    const s = await openSession();
    const c = client(s);
    await c.connect();
    try {
      const held = c.query('DROP TABLE gh_b').then(
        () => null,
        (e: Error & { code?: string; detail?: string }) => e,
      );
      const [a] = await heldWithCheckRun(s.id);
      const res = await post(b.url, delivery('check_run', button(a!, 'deny', 'teamie'), SECRET));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ state: 'denied', via: 'member of octo-org/dba' });
      const err = await held;
      expect(err?.code).toBe('42501');
      expect(`${err?.message} ${err?.detail}`).toContain(`approval ${a!.id} denied by teamie`);
      expect(await tableExists('gh_b')).toBe(true);
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      const update = (await checkRunUpdate(a!)) as { conclusion: string; output: Record<string, string> };
      expect(update.conclusion).toBe('failure');
      expect(update.output.title).toContain('Denied by teamie');
    } finally {
      await c.end();
    }
    expect(gh.violations).toEqual([]);
  });
});

describe('a /hoop comment on the pull request', () => {
  it('`/hoop approve <id>` by a named reviewer releases the statement', async () => {
    const s = await openSession();
    const c = client(s);
    await c.connect();
    try {
      const held = c.query('CREATE TABLE gh_c (id int)');
      const [a] = await heldWithCheckRun(s.id);
      expect(await tableExists('gh_c')).toBe(false);
      const res = await post(
        b.url,
        delivery('issue_comment', comment(`LGTM\n/hoop approve ${a!.id}`, 'reviewer'), SECRET),
      );
      expect(res.status).toBe(200);
      await held;
      expect(await tableExists('gh_c')).toBe(true);
      const update = (await checkRunUpdate(a!)) as { output: Record<string, string> };
      expect(update.output.title).toContain('Approved by reviewer (github_comment)');
    } finally {
      await c.end();
    }
  });
});

describe('deliveries that must release nothing', () => {
  it('a forged signature and a replayed delivery id are refused; the statement stays held, upstream unchanged', async () => {
    await db.psql('CREATE TABLE gh_d (id int); CREATE TABLE gh_e (id int)', 'app');
    const s = await openSession();
    const [c1, c2] = [client(s), client(s)];
    await Promise.all([c1.connect(), c2.connect()]);
    try {
      const d = c1.query('DROP TABLE gh_d').catch((e: Error) => e);
      const [a] = await heldWithCheckRun(s.id, 1);
      const e = c2.query('DROP TABLE gh_e').catch((e: Error) => e);
      const both = await heldWithCheckRun(s.id, 2);
      const second = both.find((x) => x.id !== a!.id)!;

      // forged: the body of a valid approval, signed with another secret
      const forged = delivery('check_run', button(a!, 'approve', 'reviewer'), 'not-the-secret');
      expect((await post(b.url, forged)).status).toBe(401);
      // tampered: a genuine signature over another body
      const genuine = delivery('check_run', button(second, 'deny', 'reviewer'), SECRET);
      const tampered = {
        ...genuine,
        body: delivery('check_run', button(a!, 'approve', 'reviewer'), SECRET).body,
      };
      expect((await post(b.url, tampered)).status).toBe(401);
      await new Promise((r) => setTimeout(r, 300));
      expect((await b.broker.approvals.get(a!.id))!.state).toBe('pending');
      expect(await tableExists('gh_d')).toBe(true);

      // replayed: a delivery id seen before, even re-signed over a new body, decides nothing
      const first = delivery('check_run', button(a!, 'approve', 'reviewer'), SECRET, 'e2e-delivery-1');
      expect((await post(b.url, first)).status).toBe(200);
      await d;
      expect(await tableExists('gh_d')).toBe(false);
      const again = delivery('check_run', button(second, 'approve', 'reviewer'), SECRET, 'e2e-delivery-1');
      expect(again.headers['x-hub-signature-256']).toBe(sign(SECRET, again.body));
      const replay = await post(b.url, again);
      expect(replay.status).toBe(409);
      expect(await replay.json()).toMatchObject({ error: 'replayed delivery' });
      await new Promise((r) => setTimeout(r, 300));
      expect((await b.broker.approvals.get(second.id))!.state).toBe('pending');
      expect(await tableExists('gh_e')).toBe(true);
      // the held one is still decidable by a fresh delivery
      expect(
        (await post(b.url, delivery('check_run', button(second, 'deny', 'reviewer'), SECRET))).status,
      ).toBe(200);
      expect(await e).toMatchObject({ code: '42501' });
      expect(await tableExists('gh_e')).toBe(true);
    } finally {
      await Promise.all([c1.end(), c2.end()]);
    }
  });

  it("an unpermitted sender, the job's actor and the PR's author are refused; the statement stays held", async () => {
    await db.psql('CREATE TABLE gh_f (id int)', 'app');
    const s = await openSession();
    const c = client(s);
    await c.connect();
    try {
      const held = c.query('DROP TABLE gh_f').catch((e: Error) => e);
      const [a] = await heldWithCheckRun(s.id);
      const cases: [string, string, string][] = [
        ['reader', 'not_permitted', 'no write permission'],
        ['outsider', 'not_permitted', 'no write permission'],
        ['octocat', 'self_approval', "job's actor"],
        ['prauthor', 'self_approval', 'authored pull request #7'],
      ];
      for (const [login, code, text] of cases) {
        const res = await post(b.url, delivery('check_run', button(a!, 'approve', login), SECRET));
        expect(res.status, login).toBe(403);
        const body = (await res.json()) as { error: string; reasons: { message: string }[] };
        expect(body.error, login).toBe(code);
        expect(body.reasons[0]!.message, login).toContain(text);
      }
      // a write collaborator who is neither a named approver nor in the team
      PERMISSIONS.writer = 'write';
      const res = await post(
        b.url,
        delivery('issue_comment', comment(`/hoop approve ${a!.id}`, 'writer'), SECRET),
      );
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'not_permitted' });
      // the refused comment gets a reply on the pull request saying why (the request checked by the stand-in)
      const reply = gh.requests.find(
        (r) => r.operation === CREATE_COMMENT && JSON.stringify(r.body).includes('@writer'),
      );
      expect(reply?.errors).toEqual([]);
      expect(reply?.params).toMatchObject({ owner: 'octo-org', repo: 'app', issue_number: String(PR) });
      expect((reply?.body as { body: string }).body).toContain('not among the approvers');
      await new Promise((r) => setTimeout(r, 300));
      expect((await b.broker.approvals.get(a!.id))!.state).toBe('pending');
      expect(await tableExists('gh_f')).toBe(true);
      expect((await post(b.url, delivery('check_run', button(a!, 'deny', 'reviewer'), SECRET))).status).toBe(
        200,
      );
      expect(await held).toMatchObject({ code: '42501' });
      expect(await tableExists('gh_f')).toBe(true);
    } finally {
      await c.end();
    }
  });

  it("an approval for one statement does not release another (another check run's button, another's id)", async () => {
    await db.psql('CREATE TABLE gh_g (id int); CREATE TABLE gh_h (id int)', 'app');
    const s = await openSession();
    const [c1, c2] = [client(s), client(s)];
    await Promise.all([c1.connect(), c2.connect()]);
    try {
      const g = c1.query('DROP TABLE gh_g').catch((e: Error) => e);
      await heldWithCheckRun(s.id, 1);
      const h = c2.query('DROP TABLE gh_h').catch((e: Error) => e);
      const both = await heldWithCheckRun(s.id, 2);
      const [ag, ah] = [
        both.find((x) => x.summary.includes('gh_g'))!,
        both.find((x) => x.summary.includes('gh_h'))!,
      ];
      // ah's button pressed on ag's check run: refused as unrelated
      const crossed = button(ah, 'approve', 'reviewer');
      (crossed.check_run as Record<string, unknown>).id = ag.github_check_run_id;
      const res = await post(b.url, delivery('check_run', crossed, SECRET));
      expect(res.status).toBe(422);
      // approving g releases g only
      expect(
        (await post(b.url, delivery('check_run', button(ag, 'approve', 'reviewer'), SECRET))).status,
      ).toBe(200);
      expect(await g).not.toBeInstanceOf(Error);
      expect(await tableExists('gh_g')).toBe(false);
      await new Promise((r) => setTimeout(r, 300));
      expect(await tableExists('gh_h')).toBe(true);
      expect((await b.broker.approvals.get(ah.id))!.state).toBe('pending');
      expect((await post(b.url, delivery('check_run', button(ah, 'deny', 'reviewer'), SECRET))).status).toBe(
        200,
      );
      expect(await h).toMatchObject({ code: '42501' });
      expect(await tableExists('gh_h')).toBe(true);
    } finally {
      await Promise.all([c1.end(), c2.end()]);
    }
    expect(gh.violations).toEqual([]);
  });
});

describe('PR-gated migrations: node-pg-migrate with the reviewed files', () => {
  const migrate = (s: { id: string; secret: string }, migrationsDir: string) =>
    runner({
      databaseUrl: {
        connectionString: `postgres://${s.id}:${s.secret}@127.0.0.1:${b.pgPort}/app-db`,
        ssl: { ca: b.caPem },
      },
      dir: migrationsDir,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      log: () => undefined,
    } as Parameters<typeof runner>[0]);

  it('the reviewed files run without a hold (the transcript names file and statements); an unreviewed ALTER is held', async () => {
    const local = mkdtempSync(join(dir, 'migrations-'));
    for (const [p, text] of Object.entries(REVIEWED))
      if (!p.endsWith('.down.sql')) writeFileSync(join(local, p.split('/').at(-1)!), text);
    const before = contentReads.length;
    const s = await openSession('migrate');
    // read at session open, before any statement
    expect(contentReads.length).toBeGreaterThan(before);
    await migrate(s, local);
    expect((await db.psql("SELECT string_agg(name, ',' ORDER BY id) FROM pgmigrations", 'app')).trim()).toBe(
      '1700000000001_orders,1700000000002_backfill',
    );
    expect(
      (
        await db.psql(
          "SELECT column_default FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'",
          'app',
        )
      ).trim(),
    ).toBe("''::text");
    expect(await b.broker.approvals.list({ session_id: s.id })).toEqual([]); // nobody was asked
    const events = await transcript(s.id);
    const passed = events.filter(
      (e) => e.kind === 'pg.statement' && JSON.stringify(e).includes('reviewed migration'),
    );
    // each file's up part is one message (node-pg-migrate sends it at once): all its statements matched
    expect(passed.map((e) => e.operation.statement)).toEqual([
      'CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL)',
      'ALTER TABLE orders ADD COLUMN note text',
      "ALTER TABLE orders ALTER COLUMN note SET DEFAULT ''",
      "UPDATE orders SET note = '' WHERE note IS NULL",
    ]);
    const text = JSON.stringify(passed);
    expect(text).toContain('statements 1, 2 of db/migrations/1700000000001_orders.sql at aaaaaaaaaaaa');
    expect(text).toContain('statements 1, 2 of db/migrations/1700000000002_backfill.sql');
    expect(contentReads.length).toBeGreaterThan(0);
    expect(contentReads.every((r) => r.endsWith(`@${MERGE_SHA}`))).toBe(true); // at the token's sha

    // a file nobody reviewed: its ALTER waits for a DBA (and is denied here)
    writeFileSync(
      join(local, '1700000000004_unreviewed.sql'),
      '-- Up Migration\nALTER TABLE orders DROP COLUMN note;\n',
    );
    const s2 = await openSession('migrate');
    const run = migrate(s2, local).catch((e: Error) => e);
    const [a] = await heldWithCheckRun(s2.id);
    expect(a!.summary).toContain('ALTER TABLE orders DROP COLUMN note');
    expect((await post(b.url, delivery('check_run', button(a!, 'deny', 'teamie'), SECRET))).status).toBe(200);
    expect(await run).toBeInstanceOf(Error);
    expect(
      (
        await db.psql(
          "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'",
          'app',
        )
      ).trim(),
    ).toBe('1');
  });

  it('migration files that cannot be read refuse the session at open (fail closed)', async () => {
    const res = await requestSession('migrate', BROKEN_SHA);
    expect(res.status).toBe(403);
    const body = (await res.json()) as { reasons: { message: string }[] };
    expect(JSON.stringify(body.reasons)).toContain('could not be read at cccccccccccc');
  });

  it('a reviewed statement does not carry an unreviewed one in the same message, and a down section is not reviewed', async () => {
    const s = await openSession('migrate');
    const c = client(s);
    await c.connect();
    try {
      // the reviewed UPDATE first, an unreviewed DROP behind it, in one simple Query
      const held = c
        .query("UPDATE orders SET note = '' WHERE note IS NULL; DROP TABLE orders")
        .catch((e: Error) => e);
      const [a] = await heldWithCheckRun(s.id);
      expect(a!.summary).toContain('DROP TABLE orders'); // the approver sees the whole message
      expect((await post(b.url, delivery('check_run', button(a!, 'deny', 'teamie'), SECRET))).status).toBe(
        200,
      );
      expect(await held).toMatchObject({ code: '42501' });
      // the down section's DROP, and the .down.sql file's, alone: held as well
      const drop = c.query('DROP TABLE orders').catch((e: Error) => e);
      const [d] = await heldWithCheckRun(s.id);
      expect((await post(b.url, delivery('check_run', button(d!, 'deny', 'teamie'), SECRET))).status).toBe(
        200,
      );
      expect(await drop).toMatchObject({ code: '42501' });
      expect(await tableExists('orders')).toBe(true);
    } finally {
      await c.end();
    }
  });
});

describe('measured', () => {
  it('approval → statement, through the signed check_run webhook: p50 over 15 holds', async () => {
    const s = await openSession();
    const c = client(s);
    await c.connect();
    const ms: number[] = [];
    try {
      for (let i = 0; i < 15; i++) {
        const held = c.query(`CREATE TABLE gh_p50_${i} (id int)`);
        const [a] = await heldWithCheckRun(s.id);
        const t0 = performance.now();
        const res = await post(b.url, delivery('check_run', button(a!, 'approve', 'reviewer'), SECRET));
        expect(res.status).toBe(200);
        await held;
        ms.push(performance.now() - t0);
        expect(await tableExists(`gh_p50_${i}`)).toBe(true);
      }
    } finally {
      await c.end();
    }
    ms.sort((x, y) => x - y);
    const p50 = ms[Math.floor(ms.length / 2)]!;
    console.log(
      `approval→statement via check_run webhook: p50 ${p50.toFixed(1)} ms, max ${ms.at(-1)!.toFixed(1)} ms (n=${ms.length})`,
    );
    expect(p50).toBeLessThan(3000);
  });
});
