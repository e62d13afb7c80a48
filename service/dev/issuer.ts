// A LOCAL DEVELOPMENT OIDC issuer: mints tokens shaped like GitHub Actions' job tokens, for trying the
// broker on one machine (npm run demo, `hoop-broker dev issuer` / `dev token`). It listens on loopback
// only, serves OpenID discovery and a JWKS like any issuer, and mints on POST /token without asking who
// is calling. A broker trusts its tokens only when its config names this issuer's URL (plain http is
// accepted for loopback issuers only); production configs name GitHub's issuer and refuse them.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { githubShapedClaims } from './claims.js';

/** Marks every token this issuer mints, so a reader of a transcript or a log knows it is not GitHub's. */
export const DEV_TOKEN_CLAIM = 'hoop_dev_token';

export interface DevIssuer {
  /** the `iss` of its tokens and the URL a broker config names: http://127.0.0.1:PORT */
  issuer: string;
  port: number;
  mint(
    claims: Record<string, unknown>,
    opts?: { audience?: string; expiresInSeconds?: number },
  ): Promise<string>;
  close(): Promise<void>;
}

export interface DevIssuerOptions {
  /** loopback address to listen on (default 127.0.0.1); anything else is refused */
  host?: string;
  port?: number;
  /** the audience of minted tokens when a request names none */
  audience?: string;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export async function startDevIssuer(opts: DevIssuerOptions = {}): Promise<DevIssuer> {
  const host = opts.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host))
    throw new Error(
      `the development issuer listens on loopback only (127.0.0.1, ::1, localhost), not ${host}`,
    );
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const kid = `hoop-dev-${randomUUID().slice(0, 8)}`;
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  let issuer = '';

  const mint: DevIssuer['mint'] = async (claims, mintOpts = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const audience = mintOpts.audience ?? opts.audience ?? 'https://hoop.example.com';
    const body = githubShapedClaims(claims, { now, issuer, audience });
    body[DEV_TOKEN_CLAIM] = true;
    body.exp = now + (mintOpts.expiresInSeconds ?? 300);
    return new SignJWT(body).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(privateKey);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => answer(res, 500, { error: 'could not mint the token' }));
  });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === '/.well-known/openid-configuration')
      return answer(res, 200, {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks`,
        subject_types_supported: ['public', 'pairwise'],
        response_types_supported: ['id_token'],
        id_token_signing_alg_values_supported: ['RS256'],
        claims_supported: [
          'sub',
          'aud',
          'exp',
          'iat',
          'iss',
          'jti',
          'nbf',
          'repository',
          'ref',
          DEV_TOKEN_CLAIM,
        ],
      });
    if (req.method === 'GET' && path === '/.well-known/jwks') return answer(res, 200, { keys: [jwk] });
    if (req.method === 'POST' && path === '/token') {
      const raw = await readBody(req, 64 * 1024);
      let parsed: unknown;
      try {
        parsed = raw ? JSON.parse(raw) : {};
      } catch {
        return answer(res, 400, { error: 'body is not JSON' });
      }
      const { claims, audience } = (parsed ?? {}) as { claims?: unknown; audience?: unknown };
      if (claims !== undefined && (claims === null || typeof claims !== 'object' || Array.isArray(claims)))
        return answer(res, 400, { error: 'claims must be a JSON object' });
      if (audience !== undefined && typeof audience !== 'string')
        return answer(res, 400, { error: 'audience must be a string' });
      const token = await mint((claims ?? {}) as Record<string, unknown>, audience ? { audience } : {});
      return answer(res, 200, { token });
    }
    return answer(res, 404, { error: 'not found' });
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    issuer,
    port,
    mint,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Ask a running development issuer for a token (what `hoop-broker dev token` does). */
export async function requestDevToken(
  issuerUrl: string,
  claims: Record<string, unknown>,
  audience?: string,
): Promise<string> {
  const url = new URL(issuerUrl);
  if (!LOOPBACK.has(url.hostname.replace(/^\[|\]$/g, '')))
    throw new Error(`development tokens come from a loopback issuer only, not ${url.hostname}`);
  const res = await fetch(new URL('/token', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ claims, ...(audience ? { audience } : {}) }),
  });
  const body = (await res.json()) as { token?: string; error?: string };
  if (res.status !== 200 || !body.token)
    throw new Error(`the issuer answered HTTP ${res.status}: ${body.error ?? ''}`);
  return body.token;
}
