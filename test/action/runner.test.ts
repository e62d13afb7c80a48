// The bundled action (dist/main.js, dist/post.js) run the way the GitHub runner runs it, against the
// scripted broker and the GitHub API stand-in. e2e.test.ts does the same against the real broker.
import { existsSync, readFileSync, statSync } from 'node:fs';
import ssh2 from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ActionsRunner,
  PR_HEAD_SHA,
  type StepResult,
  startActionsRunner,
} from '../fixtures/actions-runner.js';
import { type GitHubApiStandIn, startGitHubApi } from '../fixtures/github-api.js';
import { postgresTarget, startFakeBroker } from './fake-broker.js';
import { fakeJwt } from './recording-core.js';

let api: GitHubApiStandIn;
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});
beforeAll(async () => {
  api = await startGitHubApi();
});
afterAll(() => api.close());

/** Every place a step can leak to: stdout (minus ::add-mask:: lines), stderr, outputs, state-free files. */
function expectNowhere(step: StepResult, secret: string, allowedOutputs: string[] = []): void {
  const stdout = step.stdout
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n');
  expect(stdout).not.toContain(secret);
  expect(step.stderr).not.toContain(secret);
  expect(step.summary).not.toContain(secret);
  for (const [name, value] of Object.entries(step.outputs))
    if (!allowedOutputs.includes(name)) expect(value).not.toContain(secret);
}

async function runner(
  broker: { url: string },
  inputs: Record<string, string> = {},
  withIdToken = true,
): Promise<ActionsRunner> {
  const r = await startActionsRunner({
    inputs: { 'broker-url': broker.url, ...inputs },
    env: { GITHUB_API_URL: api.url },
    ...(withIdToken
      ? {
          idToken: (aud: string | null) =>
            fakeJwt({ aud, repository: 'octo-org/octo-repo', event_name: 'pull_request' }),
        }
      : {}),
  });
  open.push(r);
  return r;
}

describe('the bundled action, run like the GitHub runner runs it', () => {
  it('opens, wires postgres/kubernetes/ssh, masks, carries state to post, reports and revokes', async () => {
    const hostKey = ssh2.utils.generateKeyPairSync('ed25519').public;
    const broker = await startFakeBroker({
      caPem: '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n',
      targets: (id) => [
        postgresTarget(id),
        {
          name: 'staging',
          kind: 'kubernetes',
          access: 'read',
          connection: { server: 'https://127.0.0.1:8443/k8s/staging', namespace: 'web' },
        },
        {
          name: 'build-host',
          kind: 'ssh',
          access: 'write',
          connection: { host: '127.0.0.1', port: 2222, user: id, host_key: hostKey },
        },
      ],
      events: [
        {
          target: 'orders-db',
          kind: 'pg.statement',
          operation: { statement: 'select 1' },
          decision: 'allow',
          reasons: [],
          rows: 1,
          duration_ms: 1,
        },
      ],
    });
    open.push(broker);
    const r = await runner(broker, { targets: 'orders-db,staging,build-host' });

    const main = await r.runMain();
    expect(main.stderr).toBe('');
    expect(main.exitCode).toBe(0);
    expect(r.idTokenRequests).toEqual([{ audience: broker.url, authorized: true }]);
    const token = (broker.requests[0]!.body as { oidc_token: string }).oidc_token;
    // the runner masks whatever ::add-mask:: announced: the token, the secret, the github token
    expect(main.masks).toEqual(expect.arrayContaining([token, broker.secret, r.githubToken]));
    // before the secret is masked, only masks and @actions/core's own debug line are printed
    const lines = main.stdout.split('\n');
    const secretMasked = lines.indexOf(`::add-mask::${broker.secret}`);
    expect(secretMasked).toBeGreaterThan(0);
    expect(
      lines
        .slice(0, secretMasked)
        .every((l) => l.startsWith('::add-mask::') || l.startsWith('::debug::ID token url')),
    ).toBe(true);
    expectNowhere(main, broker.secret, ['database-url']);
    expectNowhere(main, token);
    expectNowhere(main, r.idTokenRequestToken);

    expect(main.outputs['session-id']).toBe(broker.sessionId);
    expect(main.outputs['expires-at']).toBe('2025-06-01T12:15:00.000Z');
    expect(main.outputs['database-url']).toMatch(
      new RegExp(
        `^postgres://${broker.sessionId}:.+@127\\.0\\.0\\.1:6432/orders-db\\?sslmode=verify-full&sslrootcert=`,
      ),
    );
    expect(main.env).toMatchObject({
      PGHOST: '127.0.0.1',
      PGPORT: '6432',
      PGUSER: broker.sessionId,
      PGPASSWORD: broker.secret,
      PGDATABASE: 'orders-db',
      PGSSLMODE: 'verify-full',
      HOOP_ORDERS_DB_PGUSER: broker.sessionId,
      KUBECONFIG: main.outputs.kubeconfig,
      HOOP_SSH_CONFIG: main.outputs['ssh-config'],
    });
    expect(main.env.PGSSLROOTCERT!.startsWith(r.runnerTemp)).toBe(true);
    expect(statSync(main.env.PGSSLROOTCERT!).mode & 0o777).toBe(0o600);
    const kube = JSON.parse(readFileSync(main.outputs.kubeconfig!, 'utf8'));
    expect(kube.users[0].user.token).toBe(broker.secret);
    expect(readFileSync(main.outputs['ssh-config']!, 'utf8')).toContain(
      'Host build-host\n  HostName 127.0.0.1\n  Port 2222',
    );
    // state went through GITHUB_STATE, not the log
    expect(Object.keys(main.state).sort()).toEqual(['secret', 'session']);

    const post = await r.runPost();
    expect(post.stderr).toBe('');
    expect(post.exitCode).toBe(0);
    expect(broker.requests.map((q) => q.method)).toEqual(['POST', 'DELETE', 'GET']);
    expect(post.summary).toContain(`## hoop session <code>s&#95;${broker.sessionId.slice(2)}</code>`);
    expect(post.summary).toContain(broker.transcript().head_hash);
    expectNowhere(post, broker.secret);
    expect(existsSync(main.env.PGSSLROOTCERT!)).toBe(false);
    const check = api.checkRuns().at(-1);
    expect(check).toMatchObject({
      head_sha: PR_HEAD_SHA,
      status: 'completed',
      conclusion: 'success',
      external_id: broker.sessionId,
    });
    expect(api.violations).toEqual([]);
    expect(api.requests.at(-1)?.headers.authorization).toBe(`token ${r.githubToken}`);
  });

  it('shows a denial: reasons in the log, claims in a collapsed group, an error annotation, no state', async () => {
    const broker = await startFakeBroker({
      refuse: {
        status: 403,
        body: {
          error: 'no matching policy',
          reasons: [
            {
              message: 'claim event_name does not match',
              policy: 'migrations',
              claim: 'event_name',
              expected: 'push',
              actual: 'pull_request',
            },
          ],
        },
      },
    });
    open.push(broker);
    const r = await runner(broker);
    const main = await r.runMain();
    expect(main.exitCode).toBe(1);
    expect(main.stdout).toContain(
      '  • claim event_name does not match (policy "migrations", claim event_name, expected "push", actual "pull_request")',
    );
    const group = main.commands.find((c) => c.command === 'group');
    expect(group?.message).toMatch(/^This job's OIDC token claims/);
    expect(main.stdout).toMatch(
      /::group::.*\naud: http:\/\/127\.0\.0\.1:\d+\nevent_name: pull_request\nrepository: octo-org\/octo-repo\n::endgroup::/,
    );
    expect(main.commands.find((c) => c.command === 'error')?.message).toBe(
      'hoop: the broker refused the session: HTTP 403 no matching policy — claim event_name does not match',
    );
    expect(main.state).toEqual({});
    const post = await r.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.stdout).toContain('no session was opened in this job');
  });

  it('fails with the permissions hint when the job has no id-token permission', async () => {
    const r = await runner({ url: 'https://hoop.example.com' }, {}, false);
    const main = await r.runMain();
    expect(main.exitCode).toBe(1);
    const error = main.commands.find((c) => c.command === 'error')?.message ?? '';
    expect(error).toContain('ACTIONS_ID_TOKEN_REQUEST_URL is not set');
    expect(error).toContain('permissions:\n    id-token: write');
  });

  it('fails clearly when the broker is down at main', async () => {
    const broker = await startFakeBroker();
    await broker.close();
    const r = await runner(broker);
    const main = await r.runMain();
    expect(main.exitCode).toBe(1);
    expect(main.commands.find((c) => c.command === 'error')?.message).toMatch(
      new RegExp(`^hoop: could not reach the broker at ${broker.url.replace(/\./g, '\\.')}: .*ECONNREFUSED`),
    );
    expect(r.idTokenRequests).toHaveLength(3);
  });

  it('still reports and retries the revoke when the broker is down at post', async () => {
    const broker = await startFakeBroker();
    open.push(broker);
    const r = await runner(broker, { 'check-run': 'false' });
    expect((await r.runMain()).exitCode).toBe(0);
    await broker.stop();
    const post = await r.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toContain('The transcript could not be fetched: broker unreachable');
    expect(post.summary).toContain('could not be revoked after 4 attempts');
    expect(post.commands.filter((c) => c.command === 'warning').map((c) => c.message)).toEqual([
      expect.stringMatching(
        /^hoop: could not revoke session s_\w+ \(4 attempts\): broker unreachable.*ECONNREFUSED.*It stays usable until 2025-06-01T12:15:00.000Z\.$/,
      ),
      expect.stringMatching(
        /^hoop: the transcript of session s_\w+ could not be fetched: broker unreachable/,
      ),
    ]);
  });
});
