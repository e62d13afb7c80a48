// The explain report, built from a real token verified against a real test issuer over HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Policy, Target } from '../../service/config/schema.js';
import { IssuerRegistry } from '../../service/identity/verify.js';
import { explainToken } from '../../service/identity/explain.js';
import { buildExplainResult } from '../../service/policy/explain.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';

const AUDIENCE = 'https://hoop.example.com';
let issuer: OidcIssuer;
beforeAll(async () => {
  issuer = await startOidcIssuer({ audience: AUDIENCE });
});
afterAll(async () => {
  await issuer?.close();
});

const targets: Target[] = [
  {
    name: 'orders-db',
    kind: 'postgres',
    host: 'db.internal.example',
    port: 5432,
    database: 'orders',
    user: 'ci_migrator',
    password: { env: 'ORDERS_DB_PASSWORD' },
  },
];
const policies: Policy[] = [
  {
    name: 'prod-migrations',
    when: { repository_id: 123456, environment: 'production', ref: 'refs/heads/main' },
    ttl: '15m',
    grants: [{ target: 'orders-db', access: 'write', deny: [{ statement: ['DROP'] }] }],
  },
  {
    name: 'pull-requests-read-only',
    when: { repository_id: '123456', event_name: 'pull_request' },
    grants: [{ target: 'orders-db', access: 'read', mask: [{ column: 'customers.email' }] }],
  },
];
const config = () => ({
  issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUDIENCE }],
  policies,
  targets,
});

describe('explain', () => {
  it('names the matching policy with its grants, and every failed condition of the others', async () => {
    const token = await issuer.mint({
      event_name: 'pull_request',
      sub: 'repo:octo-org/octo-repo:pull_request',
      ref: 'refs/pull/7/merge',
    });
    const out = await explainToken(config(), token, new Date());
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(out.value).toEqual({
      issuer: 'github',
      identity: expect.objectContaining({
        repository: 'octo-org/octo-repo',
        repository_id: '123456',
        event_name: 'pull_request',
        sub: 'repo:octo-org/octo-repo:pull_request',
        iss: issuer.issuer,
      }),
      matched_policy: 'pull-requests-read-only',
      policies: [
        {
          name: 'prod-migrations',
          matched: false,
          failures: [
            {
              policy: 'prod-migrations',
              claim: 'environment',
              expected: 'production',
              actual: '(absent)',
              message: 'policy "prod-migrations": claim "environment": the token has no such claim (absent)',
            },
            {
              policy: 'prod-migrations',
              claim: 'ref',
              expected: 'refs/heads/main',
              actual: 'refs/pull/7/merge',
              message:
                'policy "prod-migrations": claim "ref": "refs/pull/7/merge" does not equal "refs/heads/main"',
            },
          ],
        },
        {
          name: 'pull-requests-read-only',
          matched: true,
          failures: [],
          grants: [{ target: 'orders-db', access: 'read' }],
        },
      ],
    });
  });

  it('never leaks target hosts, users, credentials or the token', async () => {
    const token = await issuer.mint({ environment: 'production' });
    const out = await explainToken(config(), token, new Date());
    const text = JSON.stringify(out);
    for (const secret of ['db.internal.example', 'ci_migrator', 'ORDERS_DB_PASSWORD', token.split('.')[2]!]) {
      expect(text).not.toContain(secret);
    }
    expect(out.ok && out.value.matched_policy).toBe('prod-migrations');
  });

  it('reports an unverifiable token as a 401 body with reasons', async () => {
    const token = await issuer.mint({ aud: 'https://elsewhere.example' });
    const out = await explainToken(config(), token, new Date());
    expect(out).toEqual({
      ok: false,
      failure: 'invalid',
      body: {
        error: 'invalid OIDC token',
        reasons: [
          {
            message: 'the token\'s audience is not the one configured for issuer "github"',
            claim: 'aud',
            expected: AUDIENCE,
            actual: 'https://elsewhere.example',
          },
        ],
      },
    });
  });

  it('builds the same report from an already verified token', async () => {
    const registry = new IssuerRegistry(config().issuers);
    const verified = await registry.verifyToken(await issuer.mint(), new Date());
    if (!verified.ok) throw new Error('token should verify');
    const report = buildExplainResult(verified, policies);
    expect(report.matched_policy).toBeNull();
    expect(report.policies.map((p) => [p.name, p.failures.map((f) => f.claim)])).toEqual([
      ['prod-migrations', ['environment']],
      ['pull-requests-read-only', ['event_name']],
    ]);
  });
});
