// GET a small JSON document (OpenID discovery, JWKS) over node:http(s).
// Not global fetch: we need a per-issuer CA (GHES private CAs), a hard size cap and no redirects.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface FetchJsonOptions {
  /** PEM CA bundle to trust instead of the system roots (https only) */
  ca?: string | undefined;
  timeoutMs: number;
  maxBytes: number;
}

/** Thrown for any failure to obtain the document; the message names the URL and what went wrong. */
export class FetchJsonError extends Error {
  override readonly name = 'FetchJsonError';
}

export function fetchJson(url: URL, opts: FetchJsonOptions): Promise<unknown> {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return Promise.reject(new FetchJsonError(`${url.href}: only http(s) URLs can be fetched`));
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    // One deadline for the whole exchange (connect, headers, body), not just socket idleness.
    const deadline = setTimeout(() => fail(`no answer within ${opts.timeoutMs} ms`), opts.timeoutMs);
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      req.destroy();
      reject(new FetchJsonError(`${url.href}: ${message}`));
    };
    const onResponse = (res: IncomingMessage): void => {
      // Redirects are refused: the configured/discovered location is the only one we trust.
      if (res.statusCode !== 200) {
        res.resume();
        fail(`expected HTTP 200, got ${res.statusCode}`);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > opts.maxBytes) {
          fail(`response is larger than ${opts.maxBytes} bytes`);
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => fail(err.message));
      res.on('end', () => {
        if (settled) return;
        try {
          const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          settled = true;
          clearTimeout(deadline);
          resolve(value);
        } catch {
          fail('response is not valid JSON');
        }
      });
    };
    const options = { method: 'GET', headers: { accept: 'application/json' } };
    const req =
      url.protocol === 'https:'
        ? httpsRequest(url, opts.ca ? { ...options, ca: opts.ca } : options, onResponse)
        : httpRequest(url, options, onResponse);
    req.on('error', (err) => fail(err.message));
    req.end();
  });
}
