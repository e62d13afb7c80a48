// Typed client for the broker's HTTP API. node:http(s) rather than fetch because a private CA must be
// trusted for this client only (fetch has no per-request CA). Failures are values, and no failure
// message ever contains the OIDC token or the session secret.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import type {
  CreateSessionBody,
  ErrorBody,
  Reason,
  SessionCreated,
  SessionTarget,
  SessionView,
  Transcript,
} from '../service/api/schemas.js';

export type BrokerFailure =
  /** the request never got an HTTP answer: refused, DNS, TLS, reset, timeout */
  | { kind: 'unreachable'; message: string }
  /** the broker answered with an error status */
  | { kind: 'http'; status: number; error: string; reasons: Reason[] }
  /** the answer was not what the API contract promises */
  | { kind: 'bad-response'; status: number; message: string };

export type BrokerResult<T> = { ok: true; value: T } | { ok: false; failure: BrokerFailure };

export interface RetryPolicy {
  /** total attempts, including the first */
  attempts: number;
  /** delay before the second attempt; doubles each time */
  baseDelayMs: number;
}

export interface BrokerClientOptions {
  /** base URL without a trailing slash */
  baseUrl: string;
  /** extra CA (PEM) to trust for this broker, added to the system roots */
  caPem?: string | undefined;
  /** per-request deadline (default 30 s) */
  timeoutMs?: number;
  userAgent?: string;
  /** the largest response body accepted (default 256 MiB: a long transcript is large) */
  maxResponseBytes?: number;
}

/** The session's state after a revoke; 'gone' when the broker no longer knows it. */
export type RevokedState = 'revoked' | 'expired' | 'active' | 'gone';

export function describeFailure(f: BrokerFailure): string {
  if (f.kind === 'unreachable') return `broker unreachable: ${f.message}`;
  if (f.kind === 'bad-response') return `unexpected broker response (HTTP ${f.status}): ${f.message}`;
  const reasons = f.reasons.map((r) => r.message).filter((m) => m !== '');
  return `HTTP ${f.status} ${f.error}${reasons.length ? `: ${reasons.join('; ')}` : ''}`;
}

/** Failures worth another attempt: no answer, or the broker (or its ingress) being briefly unavailable. */
export function isTransient(f: BrokerFailure): boolean {
  if (f.kind === 'unreachable') return true;
  if (f.kind === 'http' || f.kind === 'bad-response')
    return f.status === 429 || f.status === 502 || f.status === 503 || f.status === 504;
  return false;
}

export async function withRetry<T>(
  policy: RetryPolicy,
  attempt: (n: number) => Promise<BrokerResult<T>>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<BrokerResult<T> & { attempts: number }> {
  let last: BrokerResult<T> | undefined;
  for (let n = 1; n <= policy.attempts; n++) {
    if (n > 1) await sleep(policy.baseDelayMs * 2 ** (n - 2));
    last = await attempt(n);
    if (last.ok || !isTransient(last.failure)) return { ...last, attempts: n };
  }
  return { ...(last as BrokerResult<T>), attempts: policy.attempts };
}

/** Replace every occurrence of a secret (and its URL-encoded form) with ***. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length < 4) continue;
    for (const form of new Set([s, encodeURIComponent(s)])) out = out.split(form).join('***');
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';

function parseReasons(v: unknown): Reason[] {
  if (!Array.isArray(v)) return [];
  return v.filter(isObject).map((r) => {
    const reason: Reason = { message: isString(r.message) ? r.message : '' };
    for (const k of ['policy', 'claim', 'expected', 'actual', 'target'] as const) {
      const value = r[k];
      if (isString(value)) reason[k] = value;
    }
    return reason;
  });
}

function isSessionTarget(v: unknown): v is SessionTarget {
  return (
    isObject(v) &&
    isString(v.name) &&
    isString(v.kind) &&
    (v.access === 'read' || v.access === 'write' || v.access === 'admin') &&
    (v.connection === undefined || isObject(v.connection))
  );
}

export function checkSessionCreated(v: unknown): string | null {
  if (!isObject(v)) return 'body is not an object';
  for (const k of ['id', 'secret', 'expires_at', 'policy'] as const)
    if (!isString(v[k]) || v[k] === '') return `${k} is missing`;
  if (!isObject(v.identity)) return 'identity is missing';
  if (!Array.isArray(v.targets) || !v.targets.every(isSessionTarget))
    return 'targets is not a list of targets';
  if (v.ca_pem !== undefined && !isString(v.ca_pem)) return 'ca_pem is not a string';
  return null;
}

export function checkTranscript(v: unknown): string | null {
  if (!isObject(v)) return 'body is not an object';
  if (!isString(v.session_id)) return 'session_id is missing';
  if (!isString(v.head_hash)) return 'head_hash is missing';
  if (typeof v.chain_verified !== 'boolean') return 'chain_verified is missing';
  if (!Array.isArray(v.events)) return 'events is not a list';
  for (const e of v.events) {
    if (
      !isObject(e) ||
      typeof e.seq !== 'number' ||
      !isString(e.kind) ||
      !isString(e.decision) ||
      !isString(e.at)
    )
      return 'an event lacks seq, at, kind or decision';
    if (!Array.isArray(e.reasons) || !isObject(e.operation))
      return `event ${e.seq} lacks reasons or operation`;
  }
  return null;
}

interface RawResponse {
  status: number;
  body: string;
}

export class BrokerClient {
  readonly #base: URL;
  readonly #opts: Required<Omit<BrokerClientOptions, 'caPem'>> & { caPem: string | undefined };

  constructor(opts: BrokerClientOptions) {
    this.#base = new URL(`${opts.baseUrl.replace(/\/+$/, '')}/`);
    this.#opts = {
      baseUrl: opts.baseUrl,
      caPem: opts.caPem,
      timeoutMs: opts.timeoutMs ?? 30_000,
      userAgent: opts.userAgent ?? 'hoop-action',
      maxResponseBytes: opts.maxResponseBytes ?? 256 * 1024 * 1024,
    };
  }

  /** POST /v1/sessions: exchange the OIDC token for a session. */
  async openSession(body: CreateSessionBody): Promise<BrokerResult<SessionCreated>> {
    const res = await this.#send('POST', 'v1/sessions', { body, secrets: [body.oidc_token] });
    if (!res.ok) return res;
    if (res.value.status !== 201) return { ok: false, failure: this.#errorOf(res.value, [body.oidc_token]) };
    const parsed = this.#json(res.value, [body.oidc_token]);
    if (!parsed.ok) return parsed;
    const problem = checkSessionCreated(parsed.value);
    if (problem) return { ok: false, failure: { kind: 'bad-response', status: 201, message: problem } };
    return { ok: true, value: parsed.value as SessionCreated };
  }

  /** GET /v1/sessions/:id/transcript (works after expiry and revocation too). */
  async transcript(id: string, secret: string): Promise<BrokerResult<Transcript>> {
    const res = await this.#send('GET', `v1/sessions/${encodeURIComponent(id)}/transcript`, {
      bearer: secret,
      secrets: [secret],
    });
    if (!res.ok) return res;
    if (res.value.status !== 200) return { ok: false, failure: this.#errorOf(res.value, [secret]) };
    const parsed = this.#json(res.value, [secret]);
    if (!parsed.ok) return parsed;
    const problem = checkTranscript(parsed.value);
    if (problem) return { ok: false, failure: { kind: 'bad-response', status: 200, message: problem } };
    return { ok: true, value: parsed.value as Transcript };
  }

  /** DELETE /v1/sessions/:id, once. 404 counts as done: there is nothing left to revoke. */
  async revokeOnce(id: string, secret: string): Promise<BrokerResult<RevokedState>> {
    const res = await this.#send('DELETE', `v1/sessions/${encodeURIComponent(id)}`, {
      bearer: secret,
      secrets: [secret],
    });
    if (!res.ok) return res;
    if (res.value.status === 404) return { ok: true, value: 'gone' };
    if (res.value.status !== 200 && res.value.status !== 204)
      return { ok: false, failure: this.#errorOf(res.value, [secret]) };
    if (res.value.status === 204) return { ok: true, value: 'revoked' };
    const parsed = this.#json(res.value, [secret]);
    const state =
      parsed.ok && isObject(parsed.value) ? (parsed.value as Partial<SessionView>).state : undefined;
    return { ok: true, value: state === 'expired' || state === 'active' ? state : 'revoked' };
  }

  /** Revoke with retries (backoff) on transient failures. */
  revoke(
    id: string,
    secret: string,
    retry: RetryPolicy,
  ): Promise<BrokerResult<RevokedState> & { attempts: number }> {
    return withRetry(retry, () => this.revokeOnce(id, secret));
  }

  #errorOf(res: RawResponse, secrets: readonly string[]): BrokerFailure {
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      const text = scrub(res.body.replace(/\s+/g, ' ').trim().slice(0, 300), secrets);
      return { kind: 'http', status: res.status, error: text || 'error', reasons: [] };
    }
    const e = isObject(body) ? (body as Partial<ErrorBody> & { message?: unknown }) : {};
    const error = isString(e.error) ? e.error : isString(e.message) ? e.message : 'error';
    const reasons = parseReasons(e.reasons).map((r) => {
      const clean: Reason = { message: scrub(r.message, secrets) };
      for (const k of ['policy', 'claim', 'expected', 'actual', 'target'] as const) {
        const value = r[k];
        if (value !== undefined) clean[k] = scrub(value, secrets);
      }
      return clean;
    });
    return { kind: 'http', status: res.status, error: scrub(error, secrets), reasons };
  }

  #json(res: RawResponse, secrets: readonly string[]): BrokerResult<unknown> {
    try {
      return { ok: true, value: JSON.parse(res.body) as unknown };
    } catch (e) {
      return {
        ok: false,
        failure: {
          kind: 'bad-response',
          status: res.status,
          message: scrub(`not JSON (${(e as Error).message})`, secrets),
        },
      };
    }
  }

  #send(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    opts: { body?: unknown; bearer?: string; secrets: readonly string[] },
  ): Promise<BrokerResult<RawResponse>> {
    const url = new URL(path, this.#base);
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.#opts.userAgent,
    };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
    const isHttps = url.protocol === 'https:';
    const send = isHttps ? httpsRequest : httpRequest;
    const unreachable = (message: string): BrokerResult<RawResponse> => ({
      ok: false,
      failure: { kind: 'unreachable', message: scrub(message, opts.secrets) },
    });

    return new Promise((resolve) => {
      let settled = false;
      const finish = (r: BrokerResult<RawResponse>) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(r);
      };
      const req = send(url, {
        method,
        headers,
        // The private CA is added to, not substituted for, the public roots.
        ...(isHttps && this.#opts.caPem ? { ca: [...rootCertificates, this.#opts.caPem] } : {}),
      });
      const deadline = setTimeout(() => {
        finish(
          unreachable(`${method} ${url.origin}${url.pathname} timed out after ${this.#opts.timeoutMs} ms`),
        );
        req.destroy();
      }, this.#opts.timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => {
        finish(
          unreachable(
            `${method} ${url.origin}${url.pathname}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '),
          ),
        );
      });
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.#opts.maxResponseBytes) {
            finish({
              ok: false,
              failure: { kind: 'bad-response', status: res.statusCode ?? 0, message: 'response too large' },
            });
            req.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          finish({
            ok: true,
            value: { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') },
          }),
        );
        res.on('error', (e) =>
          finish(unreachable(`${method} ${url.origin}${url.pathname}: response interrupted (${e.message})`)),
        );
      });
      req.end(payload);
    });
  }
}
