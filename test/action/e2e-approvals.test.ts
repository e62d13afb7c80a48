// The action as the runner runs it, with a statement held for approval during the job: the bundled
// main step against the REAL broker, a later `run:` step's psql whose DROP waits for a human, an
// approver deciding through the broker's API with an approver token (one approve, one deny), then the
// post step. The job summary and the check run must show each hold, who decided, and the outcome;
// what reached the database is read back from it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../service/config/schema.js';
import { type ActionsRunner, pullRequestClaims, startActionsRunner } from '../fixtures/actions-runner.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { githubIssuer, loopbackListen, pgTarget } from '../fixtures/config.js';
import { type GitHubApiStandIn, startGitHubApi } from '../fixtures/github-api.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';

const AUDIENCE = 'https://hoop.example.com';
const WRITER_PASSWORD = 'writer-password-for-approval-e2e';
const ALICE = 'approver-token-alice-0123456789abcdef';

interface ApprovalView {
  id: string;
  state: string;
  summary?: string;
}

describe('the action against the real broker, with a hold approved during the job', () => {
  let pg: PgServer;
  let oidc: OidcIssuer;
  let broker: TestBroker;
  let api: GitHubApiStandIn;
  let runner: ActionsRunner;

  beforeAll(async () => {
    [pg, oidc, api] = await Promise.all([
      startPostgres(),
      startOidcIssuer({ audience: AUDIENCE }),
      startGitHubApi(),
    ]);
    await pg.psql('CREATE DATABASE shop');
    await pg.psql(
      `CREATE ROLE ci_writer LOGIN PASSWORD '${WRITER_PASSWORD}';
       CREATE TABLE legacy_orders (id int);
       CREATE TABLE keep_me (id int);
       ALTER TABLE legacy_orders OWNER TO ci_writer;
       ALTER TABLE keep_me OWNER TO ci_writer;`,
      'shop',
    );
    const config: Config = {
      listen: loopbackListen(),
      issuers: githubIssuer(oidc, AUDIENCE),
      targets: [
        pgTarget({
          name: 'shop-db',
          port: pg.port,
          database: 'shop',
          user: 'ci_writer',
          passwordEnv: 'SHOP_DB_PASSWORD',
        }),
      ],
      policies: [
        {
          name: 'migrations-with-approval',
          when: { repository_id: '123456' },
          ttl: '15m',
          grants: [
            {
              target: 'shop-db',
              access: 'write',
              approve: [{ statement: ['DROP'] }],
              approvers: { users: ['alice'] },
              approval_timeout: '2m',
            },
          ],
        },
      ],
      approvals: {
        approver_tokens: [{ name: 'alice', token: { env: 'APPROVER_ALICE' }, github_login: 'alice' }],
      },
    };
    broker = await startBroker({ config, env: { SHOP_DB_PASSWORD: WRITER_PASSWORD, APPROVER_ALICE: ALICE } });
    runner = await startActionsRunner({
      inputs: { 'broker-url': broker.url, audience: AUDIENCE, ttl: '10m' },
      env: { GITHUB_API_URL: api.url },
      idToken: (aud) =>
        oidc.mint({ ...(aud ? { aud } : {}), ...pullRequestClaims('feature/drop-legacy', 'migrate.yml') }),
    });
  }, 120_000);

  afterAll(async () => {
    await runner?.close();
    await broker?.close();
    await Promise.all([pg?.stop(), oidc?.close(), api?.close()]);
  });

  async function call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${broker.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ALICE}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function nextPending(sessionId: string): Promise<ApprovalView> {
    const until = Date.now() + 30_000;
    for (;;) {
      const r = await call('GET', `/v1/approvals?state=pending&session=${sessionId}`);
      expect(r.status).toBe(200);
      const [a] = r.body.approvals as ApprovalView[];
      if (a) return a;
      if (Date.now() > until) throw new Error(`no pending approval for ${sessionId}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  const tables = async () =>
    (
      await pg.psql(
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
        'shop',
      )
    ).trim();

  it('psql waits on the held DROP; the approved one runs, the denied one does not; the summary and the check run show both', async () => {
    const main = await runner.runMain();
    expect(main.stderr).toBe('');
    expect(main.exitCode).toBe(0);
    const sessionId = main.outputs['session-id']!;
    const secret = main.env.PGPASSWORD!;

    // a later step: the DROP is held; psql prints the notice and waits
    const approvedRun = runner.runCommand('psql', [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      'DROP TABLE legacy_orders',
    ]);
    const first = await nextPending(sessionId);
    expect(first.summary).toContain('DROP TABLE legacy_orders');
    expect(await tables()).toBe('keep_me,legacy_orders'); // nothing reached the server while held
    const ok = await call('POST', `/v1/approvals/${first.id}`, {
      decision: 'approve',
      reason: 'reviewed in PR 7',
    });
    expect(ok.status).toBe(200);
    const approved = await approvedRun;
    expect(approved.stderr).toContain(`approval ${first.id}`);
    expect(approved.code).toBe(0);
    expect(await tables()).toBe('keep_me');

    const deniedRun = runner.runCommand('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'DROP TABLE keep_me']);
    const second = await nextPending(sessionId);
    expect(second.id).not.toBe(first.id);
    const no = await call('POST', `/v1/approvals/${second.id}`, {
      decision: 'deny',
      reason: 'not in this release',
    });
    expect(no.status).toBe(200);
    const denied = await deniedRun;
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('alice');
    expect(denied.stderr).toContain('not in this release');
    expect(await tables()).toBe('keep_me');

    const post = await runner.runPost();
    expect(post.stderr).toBe('');
    expect(post.exitCode).toBe(0);
    // markdown cells escape the ids' underscores
    const cell = (id: string) => id.replace(/_/g, '&#95;');
    expect(post.summary).toContain('### Held for approval (2)');
    const rows = post.summary
      .split('\n')
      .filter((l) => l.startsWith('|') && (l.includes(cell(first.id)) || l.includes(cell(second.id))));
    expect(rows).toHaveLength(2);
    const approvedRow = rows.find((l) => l.includes(cell(first.id)))!;
    const deniedRow = rows.find((l) => l.includes(cell(second.id)))!;
    expect(approvedRow).toContain('✅ approved');
    expect(approvedRow).toContain('alice');
    expect(deniedRow).toContain('⛔ denied');
    expect(deniedRow).toContain('not in this release');
    expect(post.summary).not.toContain(secret);
    expect(api.violations).toEqual([]);
    const [run] = api.checkRuns().filter((r) => r.external_id === sessionId);
    const output = run?.output as { summary?: string } | undefined;
    expect(output?.summary).toContain('### Held for approval (2)');
    expect(output?.summary).toContain(cell(first.id));
    expect(output?.summary).toContain(cell(second.id));
  });
});
