// The OIDC attack suite: every token goes through IssuerRegistry.verifyToken against real test
// issuers serving discovery and JWKS over HTTP on loopback.
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Issuer } from '../../service/config/schema.js';
import {
  IssuerRegistry,
  type IssuerRegistryOptions,
  type VerifyResult,
} from '../../service/identity/verify.js';
import { b64url, generateSigningKey, type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';

const AUDIENCE = 'https://hoop.example.com';

let github: OidcIssuer; // the configured issuer
let stranger: OidcIssuer; // a real issuer nobody configured
let ghes: OidcIssuer; // GHES form: https://HOST/_services/token
let ecIssuer: OidcIssuer; // signs ES256

beforeAll(async () => {
  [github, stranger, ghes, ecIssuer] = await Promise.all([
    startOidcIssuer({ audience: AUDIENCE }),
    startOidcIssuer({ audience: AUDIENCE }),
    startOidcIssuer({ audience: AUDIENCE, pathPrefix: '/_services/token' }),
    startOidcIssuer({ audience: AUDIENCE, keyAlgs: ['ES256'] }),
  ]);
});
afterAll(async () => {
  await Promise.all([github, stranger, ghes, ecIssuer].map((i) => i?.close()));
});

const githubIssuer = (): Issuer => ({ name: 'github', issuer: github.issuer, audience: AUDIENCE });

/** A registry of its own, so JWKS request counts start from a known state. */
function registry(issuers: Issuer[] = [githubIssuer()], opts: IssuerRegistryOptions = {}): IssuerRegistry {
  return new IssuerRegistry(issuers, opts);
}

/** The status the routes answer for each failure (a 401 refuses the token; a 503 leaves it unproven). */
const HTTP = { invalid: 401, unavailable: 503 } as const;

function refusal(result: VerifyResult): { status: number; messages: string } {
  if (result.ok) throw new Error(`expected a refusal, got a verified token from ${result.issuer}`);
  expect(result.error).toBeTypeOf('string');
  expect(result.reasons.length).toBeGreaterThan(0);
  return { status: HTTP[result.failure], messages: result.reasons.map((r) => r.message).join('\n') };
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

function hmacToken(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: Buffer | string,
): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The refusal came before any JWKS fetch: the issuer served nothing to this fresh registry. */
async function refusedOffline(
  token: string,
  reg = registry(),
): Promise<{ status: number; messages: string }> {
  const before = github.requestCount + github.discoveryCount;
  const result = refusal(await reg.verifyToken(token, new Date()));
  expect(github.requestCount + github.discoveryCount).toBe(before);
  return result;
}

describe('valid tokens', () => {
  it('accepts a GitHub Actions token and returns its claims, issuer name, single-use key and expiry', async () => {
    const token = await github.mint();
    const result = await registry().verifyToken(token, new Date());
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.issuer).toBe('github');
    expect(result.claims.repository).toBe('octo-org/octo-repo');
    expect(result.claims.repository_id).toBe('123456');
    expect(result.claims.sub).toBe('repo:octo-org/octo-repo:ref:refs/heads/main');
    expect(result.tokenKey).toBe(`${github.issuer}#jti:${String(payloadOf(token).jti)}`);
    expect(result.expiresAt.getTime()).toBe((payloadOf(token).exp as number) * 1000);
  });

  it('keys a token without jti by the SHA-256 of the raw token', async () => {
    const token = await github.mint({ jti: undefined });
    const result = await registry().verifyToken(token, new Date());
    expect(result.ok && result.tokenKey).toBe(
      `${github.issuer}#sha256:${createHash('sha256').update(token).digest('hex')}`,
    );
  });

  it('verifies every token anew (no result cache) and reuses the cached JWKS', async () => {
    const reg = registry();
    const token = await github.mint();
    const before = github.requestCount;
    expect((await reg.verifyToken(token, new Date())).ok).toBe(true);
    expect((await reg.verifyToken(token, new Date())).ok).toBe(true);
    expect(github.requestCount - before).toBe(1);
  });

  it('accepts an array aud that contains the configured audience', async () => {
    const token = await github.mint({ aud: ['https://other.example', AUDIENCE] });
    expect((await registry().verifyToken(token, new Date())).ok).toBe(true);
  });

  it('accepts a token that expired within the clock-skew allowance', async () => {
    const token = await github.mint({}, { expiresIn: -10 });
    expect((await registry().verifyToken(token, new Date())).ok).toBe(true);
  });

  it('finds keys of a GHES issuer (https://HOST/_services/token) through discovery', async () => {
    const reg = registry([{ name: 'ghes', issuer: ghes.issuer, audience: AUDIENCE }]);
    const result = await reg.verifyToken(await ghes.mint(), new Date());
    expect(result.ok && result.issuer).toBe('ghes');
    expect(ghes.discoveryCount).toBeGreaterThanOrEqual(1);
    expect(ghes.requestCount).toBeGreaterThanOrEqual(1);
  });

  it('uses an explicit jwks_uri without discovery', async () => {
    const before = github.discoveryCount;
    const reg = registry([{ ...githubIssuer(), jwks_uri: github.jwksUri }]);
    expect((await reg.verifyToken(await github.mint(), new Date())).ok).toBe(true);
    expect(github.discoveryCount).toBe(before);
  });

  it('accepts ES256 when the issuer allows it, and refuses it when it does not', async () => {
    const allowed = registry([
      { name: 'ec', issuer: ecIssuer.issuer, audience: AUDIENCE, algorithms: ['ES256'] },
    ]);
    const token = await ecIssuer.mint();
    expect((await allowed.verifyToken(token, new Date())).ok).toBe(true);

    const rsOnly = registry([{ name: 'ec', issuer: ecIssuer.issuer, audience: AUDIENCE }]);
    const { messages } = refusal(await rsOnly.verifyToken(token, new Date()));
    expect(messages).toBe('alg "ES256" is not allowed for issuer "ec"');
  });
});

describe('attack suite: each refused with a precise reason', () => {
  it('alg none with an empty signature', async () => {
    const payload = payloadOf(await github.mint());
    const token = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.`;
    const { status, messages } = await refusedOffline(token);
    expect(status).toBe(401);
    expect(messages).toBe('the JWT has no signature (an unsecured JWT is never accepted)');
  });

  it('alg none with a signature part anyway', async () => {
    const real = await github.mint();
    const [, payload, signature] = real.split('.');
    const token = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${payload}.${signature}`;
    expect((await refusedOffline(token)).messages).toBe('alg "none" (an unsigned token) is never accepted');
    const upper = `${b64url(JSON.stringify({ alg: 'NONE' }))}.${payload}.${signature}`;
    expect((await refusedOffline(upper)).messages).toBe('alg "none" (an unsigned token) is never accepted');
  });

  it('HS256 signed with the RSA public key as PEM bytes', async () => {
    const payload = payloadOf(await github.mint());
    const pem = github.currentKey.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    for (const secret of [pem, pem.trim(), Buffer.from(pem)]) {
      const token = hmacToken({ alg: 'HS256', typ: 'JWT', kid: github.currentKey.kid }, payload, secret);
      const { messages } = await refusedOffline(token);
      expect(messages).toContain('alg "HS256" is refused: HMAC algorithms are never accepted');
    }
  });

  it('HS256 signed with bytes derived from the RSA public JWK', async () => {
    const payload = payloadOf(await github.mint());
    const jwk = github.currentKey.publicJwk;
    const secrets = [
      JSON.stringify(jwk),
      JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n }),
      Buffer.from(String(jwk.n), 'base64url'),
      github.currentKey.publicKey.export({ format: 'der', type: 'spki' }),
    ];
    for (const secret of secrets) {
      const token = hmacToken({ alg: 'HS256', kid: github.currentKey.kid }, payload, secret);
      expect((await refusedOffline(token)).messages).toContain('HMAC algorithms are never accepted');
    }
    const hs512 = hmacToken({ alg: 'HS512' }, payload, JSON.stringify(jwk));
    expect((await refusedOffline(hs512)).messages).toContain('alg "HS512" is refused');
  });

  it('an algorithm outside the RS/PS/ES families', async () => {
    const [, payload, signature] = (await github.mint()).split('.');
    const token = `${b64url(JSON.stringify({ alg: 'EdDSA' }))}.${payload}.${signature}`;
    expect((await refusedOffline(token)).messages).toBe(
      'alg "EdDSA" is refused: only RS*, PS* and ES* signatures are accepted',
    );
  });

  it('wrong iss (signed by the configured issuer, but claiming another)', async () => {
    const token = await github.mint({ iss: 'https://evil.example.com' });
    const result = await registry().verifyToken(token, new Date());
    const { messages } = refusal(result);
    expect(messages).toBe(
      `issuer "https://evil.example.com" is not configured; configured issuers: github (${github.issuer})`,
    );
    expect(!result.ok && result.reasons[0]).toMatchObject({
      claim: 'iss',
      actual: 'https://evil.example.com',
    });
  });

  it('a valid token from a real issuer that is not configured', async () => {
    const token = await stranger.mint();
    const { messages } = refusal(await registry().verifyToken(token, new Date()));
    expect(messages).toContain(`issuer "${stranger.issuer}" is not configured`);
    expect(stranger.requestCount + stranger.discoveryCount).toBe(0);
  });

  it('checks the signature with the keys of the issuer named by iss only', async () => {
    // Both issuers configured; the token claims the GHES issuer but is signed with github's key and kid.
    const reg = registry([githubIssuer(), { name: 'ghes', issuer: ghes.issuer, audience: AUDIENCE }]);
    expect((await reg.verifyToken(await github.mint(), new Date())).ok).toBe(true);
    const forged = await github.mint({ iss: ghes.issuer });
    const { messages } = refusal(await reg.verifyToken(forged, new Date()));
    expect(messages).toContain(
      `no key in the JWKS of issuer "ghes" matches the token (kid "${github.currentKey.kid}"`,
    );
  });

  it('wrong aud', async () => {
    const result = await registry().verifyToken(
      await github.mint({ aud: 'https://github.com/octo-org' }),
      new Date(),
    );
    const { messages } = refusal(result);
    expect(messages).toBe('the token\'s audience is not the one configured for issuer "github"');
    expect(!result.ok && result.reasons[0]).toEqual({
      message: 'the token\'s audience is not the one configured for issuer "github"',
      claim: 'aud',
      expected: AUDIENCE,
      actual: 'https://github.com/octo-org',
    });
  });

  it('an array aud without the configured audience, and a missing aud', async () => {
    const arrayAud = await github.mint({ aud: ['https://a.example', 'https://b.example'] });
    const result = await registry().verifyToken(arrayAud, new Date());
    expect(!result.ok && result.reasons[0]?.actual).toBe('["https://a.example","https://b.example"]');
    const noAud = await github.mint({ aud: undefined });
    expect((await refusedOffline(noAud)).messages).toBe(
      `the token has no "aud" claim; issuer "github" requires audience "${AUDIENCE}"`,
    );
  });

  it('expired (beyond the skew), before any JWKS fetch', async () => {
    const now = new Date();
    const token = await github.mint({}, { expiresIn: -120, now });
    const { messages } = await refusedOffline(token);
    expect(messages).toBe('the token expired 120 s ago (clock skew allowance 30 s)');
  });

  it('expired, with a configured skew of 5 minutes, is accepted; with 0 it is not', async () => {
    const token = await github.mint({}, { expiresIn: -120 });
    expect(
      (await registry([githubIssuer()], { clockSkewMs: 300_000 }).verifyToken(token, new Date())).ok,
    ).toBe(true);
    const fresh = await github.mint({}, { expiresIn: -1 });
    expect((await registry([githubIssuer()], { clockSkewMs: 0 }).verifyToken(fresh, new Date())).ok).toBe(
      false,
    );
  });

  it('nbf in the future', async () => {
    const now = new Date();
    const nowSec = Math.floor(now.getTime() / 1000);
    const result = await registry().verifyToken(await github.mint({ nbf: nowSec + 120 }, { now }), now);
    expect(refusal(result).messages).toBe(
      'the token is not valid yet: nbf is 120 s in the future (clock skew allowance 30 s)',
    );
    expect(!result.ok && result.reasons[0]).toMatchObject({
      claim: 'nbf',
      actual: new Date((nowSec + 120) * 1000).toISOString(),
    });
  });

  it('iat in the future', async () => {
    const now = new Date();
    const nowSec = Math.floor(now.getTime() / 1000);
    const token = await github.mint({ iat: nowSec + 600, nbf: nowSec - 60, exp: nowSec + 900 }, { now });
    expect((await refusedOffline(token)).messages).toBe(
      'the token claims to be issued 600 s in the future (clock skew allowance 30 s)',
    );
  });

  it('reports every failed registered claim at once', async () => {
    const now = new Date();
    const token = await github.mint({ aud: 'https://wrong.example' }, { expiresIn: -3600, now });
    const result = await registry().verifyToken(token, now);
    expect(!result.ok && result.reasons.map((r) => r.claim)).toEqual(['aud', 'exp']);
  });

  it('missing exp or iat', async () => {
    expect((await refusedOffline(await github.mint({ exp: undefined }))).messages).toBe(
      'the token has no numeric "exp" claim',
    );
    expect(
      (await refusedOffline(await github.mint({ iat: '1700000000' as unknown as number }))).messages,
    ).toBe('the token has no numeric "iat" claim');
  });

  it('RS256 signed by a different key that reuses the published kid', async () => {
    const impostor = await generateSigningKey('RS256', github.currentKey.kid);
    const token = await github.mint({}, { key: impostor.privateKey });
    const { messages } = refusal(await registry().verifyToken(token, new Date()));
    expect(messages).toBe(
      'the signature does not verify with issuer "github"\'s key: the token was altered or signed by another key',
    );
  });

  it('a payload altered after signing', async () => {
    const token = await github.mint();
    const [header, , signature] = token.split('.');
    const altered = `${header}.${b64url(JSON.stringify({ ...payloadOf(token), repository_id: '999' }))}.${signature}`;
    expect(refusal(await registry().verifyToken(altered, new Date())).messages).toContain(
      'the signature does not verify',
    );
  });

  it('crit header', async () => {
    const token = await github.mint({ header: { crit: ['exp'], exp: 1 } });
    expect((await refusedOffline(token)).messages).toBe(
      'the JWT header has "crit": no critical JWS extensions are supported',
    );
  });

  it('token over the size limit, refused before any JWKS fetch', async () => {
    const big = await github.mint({ padding: 'x'.repeat(20_000) });
    const { messages } = await refusedOffline(big);
    expect(messages).toBe(`the token is ${Buffer.byteLength(big)} bytes; the limit is 16384 bytes`);
    // A configured smaller limit applies too.
    const small = await github.mint();
    const reg = IssuerRegistry.fromConfig({ issuers: [githubIssuer()], limits: { max_token_bytes: 512 } });
    expect((await refusedOffline(small, reg)).messages).toBe(
      `the token is ${Buffer.byteLength(small)} bytes; the limit is 512 bytes`,
    );
    // Multi-byte characters count as bytes, not characters.
    expect((await refusedOffline('é'.repeat(9000))).messages).toBe(
      'the token is 18000 bytes; the limit is 16384 bytes',
    );
  });

  it('garbage, empty, header-only, and non-JSON parts', async () => {
    const real = await github.mint();
    const [header, payload, signature] = real.split('.') as [string, string, string];
    const cases: [string, string][] = [
      ['', 'the token is empty'],
      ['not a jwt', 'the token is not a JWT: expected 3 base64url parts separated by ".", found 1'],
      ['a.b.c.d', 'the token is not a JWT: expected 3 base64url parts separated by ".", found 4'],
      ['a.b.c.d.e', 'the token is an encrypted JWT (JWE); only signed JWTs (JWS) are accepted'],
      [header, 'the token is not a JWT: expected 3 base64url parts separated by ".", found 1'],
      [
        `${header}.`,
        'the token is not a JWT: expected 3 base64url parts separated by ".", found 2 (no signature part: truncated?)',
      ],
      [`${header}..${signature}`, 'the JWT payload is empty'],
      [`.${payload}.${signature}`, 'the JWT header is empty'],
      [`${header}.${b64url('not json')}.${signature}`, 'the JWT payload is not JSON'],
      [`${header}.${b64url('[1,2]')}.${signature}`, 'the JWT payload is not a JSON object'],
      [`${b64url('{"alg":')}.${payload}.${signature}`, 'the JWT header is not JSON'],
      [
        `${header}.${payload}.${signature}!`,
        'the JWT signature is not base64url (it contains other characters)',
      ],
      [`Bearer ${real}`, 'the token starts with "Bearer "; send the JWT alone'],
      [`${real}\n`, 'the token has leading or trailing whitespace'],
      [`${b64url('{"typ":"JWT"}')}.${payload}.${signature}`, 'the JWT header has no "alg"'],
    ];
    for (const [token, message] of cases) {
      expect((await refusedOffline(token)).messages, JSON.stringify(token.slice(0, 40))).toBe(message);
    }
  });

  it('a non-string token', async () => {
    const result = await registry().verifyToken(42 as unknown as string, new Date());
    expect(refusal(result).messages).toBe('the token must be a string');
  });

  it('truncated: the signature cut short', async () => {
    const token = await github.mint();
    // 10 characters off a 342-character RS256 signature still decodes, to 249 bytes instead of 256.
    const cut = token.slice(0, -10);
    expect(refusal(await registry().verifyToken(cut, new Date())).messages).toBe(
      'the signature is 249 bytes but a RS256 signature with issuer "github"\'s key is 256 bytes: the token was truncated or altered',
    );
    // 9 characters off leaves a base64 length no byte string has.
    expect((await refusedOffline(token.slice(0, -9))).messages).toBe(
      'the JWT signature is not valid base64url (its length is impossible: truncated?)',
    );
  });

  it('never echoes the token in a reason', async () => {
    const token = await github.mint({ aud: 'https://wrong.example' }, { expiresIn: -3600 });
    const result = await registry().verifyToken(token, new Date());
    const text = JSON.stringify(result);
    for (const part of token.split('.')) expect(text).not.toContain(part);
  });
});

describe('JWKS: unknown kid, rotation, cooldown, outages', () => {
  it('refuses an unknown kid, accepts a rotated real key after the cooldown, and limits refetches', async () => {
    const issuer = await startOidcIssuer({ audience: AUDIENCE });
    try {
      let clock = 1_000_000;
      const reg = registry([{ name: 'github', issuer: issuer.issuer, audience: AUDIENCE }], {
        clock: () => clock,
      });
      expect((await reg.verifyToken(await issuer.mint(), new Date())).ok).toBe(true);
      expect(issuer.requestCount).toBe(1);

      // Unknown kid within the cooldown: refused, no refetch.
      const unknown = await issuer.mint({}, { kid: 'no-such-kid' });
      const first = refusal(await reg.verifyToken(unknown, new Date()));
      expect(first.messages).toBe(
        'no key in the JWKS of issuer "github" matches the token (kid "no-such-kid", alg RS256); the JWKS was fetched less than 60 s ago, so it was not refetched',
      );
      expect(issuer.requestCount).toBe(1);

      // The issuer rotates; within the cooldown the new key is not known yet.
      const oldKid = issuer.currentKey.kid;
      await issuer.rotate();
      const rotated = await issuer.mint();
      expect(refusal(await reg.verifyToken(rotated, new Date())).messages).toContain('was not refetched');
      expect(issuer.requestCount).toBe(1);

      // After the cooldown the unknown kid triggers one refetch and the new real key is accepted.
      clock += 60_000;
      expect((await reg.verifyToken(rotated, new Date())).ok).toBe(true);
      expect(issuer.requestCount).toBe(2);
      // The old key is still published, so its tokens still verify.
      expect((await reg.verifyToken(await issuer.mint({}, { signWithKid: oldKid }), new Date())).ok).toBe(
        true,
      );

      // A flood of made-up kids inside the cooldown: all refused, no fetch at all.
      const flood = (n: number) =>
        Promise.all(
          Array.from({ length: n }, async () =>
            reg.verifyToken(await issuer.mint({}, { kid: randomUUID() }), new Date()),
          ),
        );
      const firstFlood = await flood(50);
      expect(firstFlood.every((r) => !r.ok && r.failure === 'invalid')).toBe(true);
      expect(issuer.requestCount).toBe(2);

      // The next window: a concurrent flood causes exactly one refetch.
      clock += 60_000;
      const secondFlood = await flood(50);
      expect(secondFlood.every((r) => !r.ok)).toBe(true);
      expect(issuer.requestCount).toBe(3);
      const refetchedReason = secondFlood.filter(
        (r) => !r.ok && r.reasons[0]?.message.endsWith('the JWKS was refetched and still has no such key'),
      );
      expect(refetchedReason).toHaveLength(1);

      // Still within that window: nothing more.
      clock += 59_000;
      await flood(20);
      expect(issuer.requestCount).toBe(3);
    } finally {
      await issuer.close();
    }
  });

  it('refetches stale keys after the cache age, and keeps stale keys through a short outage', async () => {
    const issuer = await startOidcIssuer({ audience: AUDIENCE });
    try {
      let clock = 5_000_000;
      const reg = registry([{ name: 'github', issuer: issuer.issuer, audience: AUDIENCE }], {
        clock: () => clock,
      });
      expect((await reg.verifyToken(await issuer.mint(), new Date())).ok).toBe(true);
      clock += 10 * 60_000;
      expect((await reg.verifyToken(await issuer.mint(), new Date())).ok).toBe(true);
      expect(issuer.requestCount).toBe(2);

      issuer.failJwksWith(500);
      clock += 10 * 60_000;
      expect((await reg.verifyToken(await issuer.mint(), new Date())).ok).toBe(true); // stale-if-error
      expect(issuer.requestCount).toBe(3);
      clock += 2 * 60 * 60_000;
      const result = await reg.verifyToken(await issuer.mint(), new Date());
      expect(result.ok).toBe(false);
      expect(!result.ok && HTTP[result.failure]).toBe(503);
      expect(!result.ok && result.reasons[0]?.message).toBe(
        `the signing keys of issuer "github" could not be fetched: ${issuer.jwksUri}: expected HTTP 200, got 500`,
      );
    } finally {
      await issuer.close();
    }
  });

  it('answers 503 when the issuer cannot be reached, and backs off between attempts', async () => {
    const issuer = await startOidcIssuer({ audience: AUDIENCE });
    let clock = 9_000_000;
    const reg = registry([{ name: 'github', issuer: issuer.issuer, audience: AUDIENCE }], {
      clock: () => clock,
    });
    issuer.failJwksWith(503);
    const token = await issuer.mint();
    const first = await reg.verifyToken(token, new Date());
    expect(!first.ok && HTTP[first.failure]).toBe(503);
    expect(issuer.requestCount).toBe(1);
    await reg.verifyToken(token, new Date());
    expect(issuer.requestCount).toBe(1); // within retryAfterFailure: no new attempt
    clock += 5_000;
    issuer.failJwksWith(null);
    expect((await reg.verifyToken(token, new Date())).ok).toBe(true);
    expect(issuer.requestCount).toBe(2);
    await issuer.close();

    // A dead issuer: connection refused, still a clean 503.
    const dead = registry([{ name: 'github', issuer: issuer.issuer, audience: AUDIENCE }]);
    const result = await dead.verifyToken(token, new Date());
    expect(!result.ok && HTTP[result.failure]).toBe(503);
    expect(!result.ok && result.reasons[0]?.message).toContain(
      'the signing keys of issuer "github" could not be fetched',
    );
  });

  it('refuses a discovery document that names another issuer', async () => {
    const reg = registry([{ name: 'liar', issuer: `${github.issuer}/`, audience: AUDIENCE }]);
    const token = await github.mint({ iss: `${github.issuer}/` });
    const result = await reg.verifyToken(token, new Date());
    expect(!result.ok && HTTP[result.failure]).toBe(503);
    expect(!result.ok && result.reasons[0]?.message).toContain(
      `discovery names issuer "${github.issuer}", expected "${github.issuer}/"`,
    );
  });

  it('ignores private and symmetric keys served in a JWKS', async () => {
    const issuer = await startOidcIssuer({ audience: AUDIENCE });
    try {
      const leaked = await generateSigningKey('RS256', 'leaked');
      const privateJwk = leaked.privateKey.export({ format: 'jwk' });
      issuer.publishRawJwk({ ...privateJwk, kid: 'leaked', alg: 'RS256', use: 'sig' });
      issuer.publishRawJwk({ kty: 'oct', kid: 'shared', alg: 'HS256', k: b64url('not-a-secret') });
      const reg = registry([{ name: 'github', issuer: issuer.issuer, audience: AUDIENCE }]);
      expect((await reg.verifyToken(await issuer.mint(), new Date())).ok).toBe(true);

      // Anyone who read the JWKS holds this private key: its tokens must not verify.
      const signedWithLeaked = await issuer.mint({}, { key: leaked.privateKey, kid: 'leaked' });
      expect(refusal(await reg.verifyToken(signedWithLeaked, new Date())).messages).toContain(
        'no key in the JWKS of issuer "github" matches the token (kid "leaked", alg RS256)',
      );
      const hmac = hmacToken({ alg: 'HS256', kid: 'shared' }, payloadOf(await issuer.mint()), 'not-a-secret');
      expect(refusal(await reg.verifyToken(hmac, new Date())).messages).toContain(
        'HMAC algorithms are never accepted',
      );
    } finally {
      await issuer.close();
    }
  });
});

describe('reasons stay bounded', () => {
  it('shows an absurd kid shortened and without control characters', async () => {
    const token = await github.mint({}, { kid: `evil\n${'k'.repeat(1000)}` });
    const result = await registry().verifyToken(token, new Date());
    const message = refusal(result).messages;
    expect(message).toContain(`kid "evil?${'k'.repeat(95)}… (1005 chars)"`);
    expect(message).not.toContain('\n');
    expect(message.length).toBeLessThan(400);
  });
});
