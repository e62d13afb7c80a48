// The App client against the OpenAPI-checked stand-in: a JWT signed with the App's key buys an
// installation token, which is cached (one exchange for many calls) and used for the calls; the
// installation is looked up per repository when not configured; failures name route and status.
import { jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { GitHubApiError, GitHubAppClient } from '../../../service/approvals/github/client.js';
import { type GitHubApiStandIn, startGitHubApi } from '../../fixtures/github-api.js';
import { APP_ID, APP_PRIVATE_KEY, APP_PUBLIC_KEY } from './app-key.js';

const TOKENS = 'POST /app/installations/{installation_id}/access_tokens';
const INSTALLATION = 'GET /repos/{owner}/{repo}/installation';
const PERMISSION = 'GET /repos/{owner}/{repo}/collaborators/{username}/permission';

let api: GitHubApiStandIn | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

const future = () => new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');

describe('GitHubAppClient', () => {
  it('signs a JWT with the App key, exchanges it once for an installation token, and uses that token', async () => {
    api = await startGitHubApi({
      operations: [TOKENS, INSTALLATION, PERMISSION],
      respond: (r) => {
        if (r.operation === TOKENS)
          return { status: 201, body: { token: 'ghs_installation_token_1', expires_at: future() } };
        if (r.operation === INSTALLATION) return { status: 200, body: { id: 77, app_id: APP_ID } };
        return undefined;
      },
    });
    const client = new GitHubAppClient({ appId: APP_ID, privateKey: APP_PRIVATE_KEY, apiUrl: api.url });
    for (let i = 0; i < 3; i++) await client.request('octo/app', PERMISSION, { username: 'alice' });
    expect(api.violations).toEqual([]);
    const ops = api.requests.map((r) => r.operation);
    expect(ops.filter((o) => o === INSTALLATION)).toHaveLength(1);
    expect(ops.filter((o) => o === TOKENS)).toHaveLength(1);
    const exchange = api.requests.find((r) => r.operation === TOKENS)!;
    expect(exchange.params.installation_id).toBe('77');
    const jwt = /^bearer (.+)$/i.exec(String(exchange.headers.authorization))![1]!;
    const { payload, protectedHeader } = await jwtVerify(jwt, APP_PUBLIC_KEY);
    expect(protectedHeader.alg).toBe('RS256');
    expect(String(payload.iss)).toBe(String(APP_ID));
    const calls = api.requests.filter((r) => r.operation === PERMISSION);
    expect(calls).toHaveLength(3);
    for (const c of calls) {
      expect(c.headers.authorization).toBe('token ghs_installation_token_1');
      expect(c.params).toEqual({ owner: 'octo', repo: 'app', username: 'alice' });
    }
  });

  it('uses the configured installation without looking it up', async () => {
    api = await startGitHubApi({
      operations: [TOKENS, PERMISSION],
      respond: (r) =>
        r.operation === TOKENS ? { status: 201, body: { token: 'ghs_t2', expires_at: future() } } : undefined,
    });
    const client = new GitHubAppClient({
      appId: String(APP_ID),
      privateKey: APP_PRIVATE_KEY,
      apiUrl: api.url,
      installationId: 9,
    });
    await client.request('octo/app', PERMISSION, { username: 'bob' });
    expect(api.requests.map((r) => r.operation)).toEqual([TOKENS, PERMISSION]);
    expect(api.requests[0]!.params.installation_id).toBe('9');
    expect(api.violations).toEqual([]);
  });

  it('fails with the route and status, without the token, and retries the exchange next time', async () => {
    let refuse = true;
    api = await startGitHubApi({
      operations: [TOKENS, PERMISSION],
      respond: (r) => {
        if (r.operation === TOKENS)
          return refuse
            ? { status: 401, body: { message: 'A JSON web token could not be decoded' } }
            : { status: 201, body: { token: 'ghs_secret_value', expires_at: future() } };
        if (r.operation === PERMISSION) return { status: 404, body: { message: 'Not Found' } };
        return undefined;
      },
    });
    const client = new GitHubAppClient({
      appId: APP_ID,
      privateKey: APP_PRIVATE_KEY,
      apiUrl: api.url,
      installationId: 5,
    });
    const first = await client.request('octo/app', PERMISSION, { username: 'x' }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(GitHubApiError);
    expect((first as GitHubApiError).status).toBe(401);
    expect((first as Error).message).toContain('A JSON web token could not be decoded');
    refuse = false;
    const second = await client.request('octo/app', PERMISSION, { username: 'x' }).catch((e: unknown) => e);
    expect((second as GitHubApiError).status).toBe(404);
    expect((second as Error).message).toContain(PERMISSION);
    expect((second as Error).message).not.toContain('ghs_secret_value');
  });
});
