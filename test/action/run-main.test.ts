import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ID_TOKEN_HINT, runMain } from '../../src/run-main.js';
import { decodeSavedSession, STATE_SECRET, STATE_SESSION } from '../../src/state.js';
import { type FakeBroker, postgresTarget, startFakeBroker } from './fake-broker.js';
import { fakeJwt, PRINTING, recordingCore } from './recording-core.js';

const CLAIMS = {
  repository: 'octo-org/octo-repo',
  event_name: 'push',
  ref: 'refs/heads/feature',
  iat: 1748779200,
  aud: 'x',
};
let runnerTemp: string;
let broker: FakeBroker | undefined;

beforeEach(() => {
  runnerTemp = mkdtempSync(join(tmpdir(), 'hoop-main-'));
});
afterEach(async () => {
  await broker?.close();
  broker = undefined;
  rmSync(runnerTemp, { recursive: true, force: true });
});

function env(brokerUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'INPUT_BROKER-URL': brokerUrl,
    'INPUT_GITHUB-TOKEN': 'ghs_runner_token_0123456789',
    'INPUT_JOB-SUMMARY': 'true',
    ACTIONS_ID_TOKEN_REQUEST_URL: 'http://127.0.0.1:9/idtoken?api-version=2.0',
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'request-token',
    RUNNER_TEMP: runnerTemp,
    GITHUB_REPOSITORY: 'octo-org/octo-repo',
    GITHUB_RUN_ID: '1',
    ...extra,
  };
}

describe('main step', () => {
  it('masks every credential before anything that could print it, then wires the session', async () => {
    broker = await startFakeBroker({
      caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    });
    const token = fakeJwt(CLAIMS);
    const rec = recordingCore({ idToken: () => token });
    await runMain({ core: rec.core, env: env(broker.url, { INPUT_TARGETS: 'orders-db', INPUT_TTL: '10m' }) });
    expect(rec.failed()).toBeUndefined();

    const credentials = [token, broker.secret, 'ghs_runner_token_0123456789'];
    for (const cred of credentials) {
      const masked = rec.calls.findIndex((c) => c.fn === 'setSecret' && c.args[0] === cred);
      expect(masked, 'credential registered with setSecret').toBeGreaterThanOrEqual(0);
      // no call before the mask carries the credential, and nothing printed carries it at all
      const firstUse = rec.calls.findIndex(
        (c) => c.fn !== 'setSecret' && JSON.stringify(c.args).includes(cred),
      );
      if (firstUse >= 0) expect(masked).toBeLessThan(firstUse);
      for (const line of rec.log()) expect(line).not.toContain(cred);
    }
    // the session secret is masked by the very first call after the broker answered
    const afterToken = rec.calls.findLastIndex((c) => c.fn === 'setSecret' && c.args[0] === token);
    expect(rec.calls[afterToken + 1]).toEqual({ fn: 'setSecret', args: [broker.secret] });
    // the token is masked before the session request is even sent
    expect(rec.calls.findIndex((c) => c.fn === 'getIDToken')).toBe(afterToken - 1);

    expect(broker.requests[0]?.body).toMatchObject({
      oidc_token: token,
      targets: ['orders-db'],
      ttl: '10m',
      ssh_public_key: expect.stringMatching(/^ssh-ed25519 AAAA/),
    });
    expect(rec.calls.find((c) => c.fn === 'getIDToken')?.args).toEqual([broker.url]);
    expect(rec.state[STATE_SECRET]).toBe(broker.secret);
    const saved = decodeSavedSession(rec.state[STATE_SESSION] ?? '');
    expect(saved).toMatchObject({
      brokerUrl: broker.url,
      id: broker.sessionId,
      policy: 'pull-requests-read-only',
    });
    expect(JSON.stringify(saved)).not.toContain(broker.secret);
    expect(rec.exported).toMatchObject({
      PGUSER: broker.sessionId,
      PGPASSWORD: broker.secret,
      PGSSLMODE: 'verify-full',
    });
    expect(readFileSync(rec.exported.PGSSLROOTCERT!, 'utf8')).toContain('BEGIN CERTIFICATE');
    expect(statSync(rec.exported.PGSSLROOTCERT!).mode & 0o777).toBe(0o600);
    expect(rec.outputs).toMatchObject({
      'session-id': broker.sessionId,
      'database-url': rec.exported.DATABASE_URL,
    });
    expect(rec.log()).toContain(
      `hoop: session ${broker.sessionId} opened by policy "pull-requests-read-only", expires at 2025-06-01T12:15:00.000Z`,
    );
  });

  it('fails with the id-token permission hint when the job cannot request a token', async () => {
    const rec = recordingCore();
    const e = env('https://hoop.example.com');
    delete e.ACTIONS_ID_TOKEN_REQUEST_URL;
    await runMain({ core: rec.core, env: e });
    expect(rec.failed()).toBe(`hoop: ${ID_TOKEN_HINT}`);
    expect(rec.failed()).toContain('id-token: write');
    expect(rec.calls.some((c) => c.fn === 'getIDToken')).toBe(false);
  });

  it('fails on bad inputs, listing them', async () => {
    const rec = recordingCore();
    await runMain({ core: rec.core, env: env('http://hoop.example.com', { INPUT_TTL: 'soon' }) });
    expect(rec.failed()).toMatch(
      /^hoop: invalid inputs:\n {2}- broker-url: plain http .*\n {2}- ttl: "soon"/,
    );
  });

  it('shows the reasons of a denial as a list, the claims in a group, then fails', async () => {
    broker = await startFakeBroker({
      refuse: {
        status: 403,
        body: {
          error: 'no matching policy',
          reasons: [
            {
              message: 'claim event_name does not match',
              policy: 'pull-requests-read-only',
              claim: 'event_name',
              expected: 'pull_request',
              actual: 'push',
            },
            {
              message: 'claim ref does not match',
              policy: 'production-migrations',
              claim: 'ref',
              expected: 'refs/heads/main',
              actual: 'refs/heads/feature',
            },
          ],
        },
      },
    });
    const token = fakeJwt(CLAIMS);
    const rec = recordingCore({ idToken: () => token });
    await runMain({ core: rec.core, env: env(broker.url) });
    const log = rec.log();
    expect(log).toContain('The broker refused to open a session (HTTP 403: no matching policy):');
    expect(log).toContain(
      '  • claim event_name does not match (policy "pull-requests-read-only", claim event_name, expected "pull_request", actual "push")',
    );
    const group = rec.calls.findIndex((c) => c.fn === 'startGroup');
    const end = rec.calls.findIndex((c) => c.fn === 'endGroup');
    expect(group).toBeGreaterThan(0);
    const inGroup = rec.calls.slice(group + 1, end).map((c) => String(c.args[0]));
    expect(inGroup).toEqual([
      'aud: x',
      'event_name: push',
      'iat: 1748779200 (2025-06-01T12:00:00.000Z)',
      'ref: refs/heads/feature',
      'repository: octo-org/octo-repo',
    ]);
    expect(rec.failed()).toBe(
      'hoop: the broker refused the session: HTTP 403 no matching policy — claim event_name does not match (and 1 more reasons above)',
    );
    for (const line of log) expect(line).not.toContain(token.split('.')[2]);
    expect(rec.calls.some((c) => c.fn === 'saveState')).toBe(false);
  });

  it('retries an unreachable broker with fresh tokens, then fails with a clear error', async () => {
    const down = await startFakeBroker();
    await down.close();
    let minted = 0;
    const rec = recordingCore({ idToken: () => fakeJwt({ n: ++minted }) });
    const delays: number[] = [];
    await runMain({
      core: rec.core,
      env: env(down.url),
      openAttempts: 3,
      retryDelayMs: 10,
      sleep: async (ms) => {
        delays.push(ms);
      },
    });
    expect(minted).toBe(3);
    expect(delays).toEqual([10, 20]);
    expect(rec.failed()).toMatch(
      new RegExp(
        `^hoop: could not reach the broker at ${down.url}: broker unreachable|^hoop: could not reach the broker at ${down.url}: POST`,
      ),
    );
    expect(rec.failed()).toContain('ECONNREFUSED');
    expect(rec.failed()).toContain('ca-cert');
    expect(readdirSync(runnerTemp)).toEqual([]);
  });

  it('saves state before touching the disk, so post revokes even when RUNNER_TEMP is unusable', async () => {
    broker = await startFakeBroker();
    const notADir = join(runnerTemp, 'file');
    writeFileSync(notADir, '');
    const rec = recordingCore({ idToken: () => fakeJwt(CLAIMS) });
    await runMain({ core: rec.core, env: env(broker.url, { RUNNER_TEMP: notADir }) });
    expect(rec.failed()).toMatch(
      /^hoop: cannot create .*\/file\/hoop-\w+ for the session's files \(RUNNER_TEMP\): E(EXIST|NOTDIR)/,
    );
    expect(rec.failed()).not.toContain(broker.secret);
    expect(rec.state[STATE_SECRET]).toBe(broker.secret);
    expect(decodeSavedSession(rec.state[STATE_SESSION] ?? '')?.dir).toMatch(/\/file\/hoop-[A-Za-z0-9]{6}$/);
  });

  it('fails when a session cannot be wired, after saving state so post revokes it', async () => {
    broker = await startFakeBroker({
      targets: (id) => [postgresTarget(id, 'orders-db'), postgresTarget(id, 'orders_db')],
    });
    const rec = recordingCore({ idToken: () => fakeJwt(CLAIMS) });
    await runMain({ core: rec.core, env: env(broker.url) });
    expect(rec.failed()).toContain(
      'targets orders-db and orders_db would both export HOOP_ORDERS_DB_* variables',
    );
    expect(rec.state[STATE_SECRET]).toBe(broker.secret);
    expect(rec.exported).toEqual({});
    // nothing printed the secret
    for (const c of rec.calls.filter((c) => PRINTING.includes(c.fn)))
      expect(JSON.stringify(c.args)).not.toContain(broker.secret);
  });
});
