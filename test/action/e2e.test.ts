// End to end, the way a workflow runs it: the bundled action's main step against the REAL broker (OIDC
// token from the test issuer, via the runner's token endpoint stand-in), then `psql` with exactly the
// environment a later step sees, then the post step (summary, check run on the GitHub API stand-in,
// revoke). Real PostgreSQL behind the broker's gateway, and a real sshd behind its ssh gateway (the job
// runs `ssh -F "$HOOP_SSH_CONFIG" build-host …` with the key, config and known_hosts main wrote).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../service/config/schema.js';
import {
  type ActionsRunner,
  PR_HEAD_SHA,
  pullRequestClaims,
  startActionsRunner,
} from '../fixtures/actions-runner.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { type GitHubApiStandIn, startGitHubApi } from '../fixtures/github-api.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { type KubeApiServer, startKubeApiServer } from '../fixtures/kube-apiserver.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';
import { type SshdServer, startSshd } from '../fixtures/sshd.js';

const AUDIENCE = 'https://hoop.example.com';
const READER_PASSWORD = 'reader-password-for-tests';

describe('the action against the real broker', () => {
  let pg: PgServer;
  let oidc: OidcIssuer;
  let broker: TestBroker;
  let api: GitHubApiStandIn;
  let runner: ActionsRunner;
  let sshd: SshdServer;
  let keyDir: string;
  let kube: KubeApiServer;
  let dir: string;

  beforeAll(async () => {
    keyDir = mkdtempSync(join(tmpdir(), 'hoop-e2e-key-'));
    const upstreamKey = join(keyDir, 'upstream');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', upstreamKey]);
    [pg, oidc, api, sshd, kube] = await Promise.all([
      startPostgres(),
      startOidcIssuer({ audience: AUDIENCE }),
      startGitHubApi(),
      startSshd({ authorizedKeys: [readFileSync(`${upstreamKey}.pub`, 'utf8').trim()] }),
      startKubeApiServer({ tokens: { 'e2e-cluster-token': 'hoop-broker' } }),
    ]);
    dir = mkdtempSync(join(tmpdir(), 'hoop-e2e-k8s-'));
    writeFileSync(join(dir, 'cluster-ca.pem'), kube.caPem);
    kube.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'default' },
      spec: { containers: [{ name: 'main', image: 'nginx' }] },
    });
    await pg.psql('CREATE DATABASE orders');
    await pg.psql(
      `CREATE ROLE ci_reader LOGIN PASSWORD '${READER_PASSWORD}';
       CREATE TABLE customers (id int PRIMARY KEY, name text);
       INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');
       GRANT SELECT ON customers TO ci_reader;`,
      'orders',
    );
    const config: Config = {
      listen: {
        http: { port: 0, host: '127.0.0.1' },
        postgres: { port: 0, host: '127.0.0.1' },
        ssh: { port: 0, host: '127.0.0.1' },
        kubernetes: { port: 0, host: '127.0.0.1' },
      },
      issuers: [{ name: 'github', issuer: oidc.issuer, audience: AUDIENCE }],
      targets: [
        {
          name: 'orders-db',
          kind: 'postgres',
          host: '127.0.0.1',
          port: pg.port,
          database: 'orders',
          user: 'ci_reader',
          password: { env: 'ORDERS_DB_PASSWORD' },
          tls: { mode: 'disable' },
        },
        {
          name: 'build-host',
          kind: 'ssh',
          host: '127.0.0.1',
          port: sshd.port,
          user: sshd.user,
          host_key: sshd.hostKey,
          private_key: { file: upstreamKey },
        },
        {
          name: 'staging',
          kind: 'kubernetes',
          server: kube.url,
          ca_file: join(dir, 'cluster-ca.pem'),
          credentials: { token: { env: 'STAGING_CLUSTER_TOKEN' } },
          namespace: 'default',
        },
      ],
      policies: [
        {
          name: 'pull-requests-read-only',
          when: { repository_id: '123456', event_name: 'pull_request' },
          ttl: '15m',
          grants: [
            { target: 'orders-db', access: 'read' },
            { target: 'build-host', access: 'write', ssh: { commands: { allow: ['echo *', 'touch *'] } } },
            { target: 'staging', access: 'read' },
          ],
        },
      ],
    };
    broker = await startBroker({
      config,
      env: { ORDERS_DB_PASSWORD: READER_PASSWORD, STAGING_CLUSTER_TOKEN: 'e2e-cluster-token' },
    });
    runner = await startActionsRunner({
      inputs: { 'broker-url': broker.url, audience: AUDIENCE, ttl: '10m' },
      env: { GITHUB_API_URL: api.url },
      idToken: (aud) =>
        oidc.mint({ ...(aud ? { aud } : {}), ...pullRequestClaims('feature/report', 'ci.yml') }),
    });
  });

  afterAll(async () => {
    await runner?.close();
    await broker?.close();
    await Promise.all([pg?.stop(), oidc?.close(), api?.close(), sshd?.stop(), kube?.close()]);
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('main opens a session, psql works through the gateway with the exported env, post reports and revokes', async () => {
    const main = await runner.runMain();
    expect(main.stderr).toBe('');
    expect(main.exitCode).toBe(0);
    expect(runner.idTokenRequests).toEqual([{ audience: AUDIENCE, authorized: true }]);
    const sessionId = main.outputs['session-id']!;
    const secret = main.env.PGPASSWORD!;
    expect(main.masks).toContain(secret);
    expect(main.env).toMatchObject({
      PGUSER: sessionId,
      PGDATABASE: 'orders-db',
      PGPORT: String(broker.pgPort),
      PGSSLMODE: 'verify-full',
    });

    // a later `run:` step: only the job's environment, no arguments but the SQL
    const ok = await runner.runCommand('psql', ['-XAt', '-c', 'select 1']);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe('1');
    const rows = await runner.runCommand('psql', ['-XAt', '-c', 'select name from customers order by id']);
    expect(rows.stdout.trim().split('\n')).toEqual(['Ada', 'Grace']);
    const denied = await runner.runCommand('psql', ['-XAt', '-c', 'DROP TABLE customers']);
    expect(denied.code).not.toBe(0);
    const viaUrl = await runner.runCommand('psql', [
      '-XAt',
      main.outputs['database-url']!,
      '-c',
      'select current_user',
    ]);
    expect(viaUrl.code).toBe(0);

    // ssh with the files main wrote: allowed commands run on the target, others are refused there
    const sshConfigFile = main.env.HOOP_SSH_CONFIG!;
    expect(main.outputs['ssh-config']).toBe(sshConfigFile);
    const hello = await runner.runCommand('ssh', [
      '-F',
      sshConfigFile,
      'build-host',
      'echo hello from the job',
    ]);
    expect(hello).toMatchObject({ code: 0, stdout: 'hello from the job\n' });
    const marker = join(sshd.home, 'touched-by-the-job');
    const refused = await runner.runCommand('ssh', [
      '-F',
      sshConfigFile,
      'build-host',
      `rm -rf ${sshd.home}`,
    ]);
    expect(refused.code).toBe(126);
    expect(refused.stderr).toContain('hoop: command');
    const touched = await runner.runCommand('ssh', ['-F', sshConfigFile, 'build-host', `touch ${marker}`]);
    expect(touched.code).toBe(0);
    expect(existsSync(marker)).toBe(true);
    // kubectl with the kubeconfig main wrote (KUBECONFIG), through the broker's Kubernetes gateway
    expect(main.env.KUBECONFIG).toBeTruthy();
    const pods = await runner.runCommand('kubectl', ['get', 'pods']);
    expect(pods.stderr).toBe('');
    expect(pods.stdout).toMatch(/web\s+1\/1\s+Running/);
    const k8sRefused = await runner.runCommand('kubectl', ['delete', 'pod', 'web']);
    expect(k8sRefused.code).not.toBe(0);
    expect(k8sRefused.stderr).toContain('Error from server (Forbidden): hoop:');
    expect(kube.requests.every((r) => r.headers.authorization === 'Bearer e2e-cluster-token')).toBe(true);

    const post = await runner.runPost();
    expect(post.stderr).toBe('');
    expect(post.exitCode).toBe(0);
    expect(post.summary).toContain('| Policy | <code>pull-requests-read-only</code> |');
    expect(post.summary).toContain('select 1');
    expect(post.summary).toContain('echo hello from the job');
    expect(post.summary).toContain(`rm -rf ${sshd.home}`);
    expect(post.summary).toContain('**⛔ denied**');
    expect(post.summary).toContain('session.revoked');
    expect(post.summary).not.toContain(secret);
    expect(post.stdout).not.toMatch(new RegExp(`^(?!::add-mask::).*${secret}`, 'm'));
    expect(api.violations).toEqual([]);
    expect(api.checkRuns()).toEqual([
      expect.objectContaining({
        head_sha: PR_HEAD_SHA,
        conclusion: 'neutral',
        external_id: sessionId,
        status: 'completed',
      }),
    ]);

    // revoked: the same environment no longer gets in
    const after = await runner.runCommand('psql', ['-XAt', '-c', 'select 1']);
    expect(after.code).not.toBe(0);
    const sshAfter = await runner.runCommand('ssh', ['-F', sshConfigFile, 'build-host', 'echo again']);
    expect(sshAfter.code).not.toBe(0);
    expect(post.summary).toContain('k8s.request');
    expect(post.summary).toContain('k8s.denied');
    // and the files holding the secret are gone
    expect(post.stdout).toContain(`hoop: session ${sessionId} revoked`);
  });
});
