import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerClient, describeFailure, scrub, withRetry } from '../../src/broker-client.js';
import { startFakeBroker } from './fake-broker.js';
import { makeTestPki } from './tls.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  server: Server = createHttpServer(),
): Promise<number> {
  server.on('request', handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return (server.address() as AddressInfo).port;
}

describe('BrokerClient against the API contract', () => {
  it('opens a session, reads the transcript with the secret, revokes', async () => {
    const broker = await startFakeBroker();
    closers.push(() => broker.close());
    const client = new BrokerClient({ baseUrl: broker.url });
    const opened = await client.openSession({
      oidc_token: TOKEN,
      targets: ['orders-db'],
      ttl: '10m',
      ssh_public_key: 'ssh-ed25519 AAAA',
    });
    if (!opened.ok) throw new Error(describeFailure(opened.failure));
    expect(opened.value.id).toBe(broker.sessionId);
    expect(broker.requests[0]).toMatchObject({
      method: 'POST',
      path: '/v1/sessions',
      body: { oidc_token: TOKEN, targets: ['orders-db'], ttl: '10m', ssh_public_key: 'ssh-ed25519 AAAA' },
    });
    const revoked = await client.revoke(opened.value.id, opened.value.secret, {
      attempts: 1,
      baseDelayMs: 0,
    });
    expect(revoked).toEqual({ ok: true, value: 'revoked', attempts: 1 });
    const t = await client.transcript(opened.value.id, opened.value.secret);
    if (!t.ok) throw new Error(describeFailure(t.failure));
    expect(t.value.events.map((e) => e.kind)).toEqual(['session.opened', 'session.revoked']);
    expect(broker.requests.at(-1)?.authorization).toBe(`Bearer ${opened.value.secret}`);
  });

  it('returns the broker reasons of a refusal as a value', async () => {
    const broker = await startFakeBroker({
      refuse: {
        status: 403,
        body: {
          error: 'no matching policy',
          reasons: [
            {
              message: 'event_name does not match',
              policy: 'pr-read',
              claim: 'event_name',
              expected: 'pull_request',
              actual: 'push',
            },
          ],
        },
      },
    });
    closers.push(() => broker.close());
    const out = await new BrokerClient({ baseUrl: broker.url }).openSession({ oidc_token: TOKEN });
    expect(out).toEqual({
      ok: false,
      failure: {
        kind: 'http',
        status: 403,
        error: 'no matching policy',
        reasons: [
          {
            message: 'event_name does not match',
            policy: 'pr-read',
            claim: 'event_name',
            expected: 'pull_request',
            actual: 'push',
          },
        ],
      },
    });
  });

  it('never repeats the token or secret in a failure, even when the server echoes it', async () => {
    const port = await serve((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: `bad token ${JSON.parse(body).oidc_token}`,
            reasons: [{ message: `got ${JSON.parse(body).oidc_token}` }],
          }),
        );
      });
    });
    const out = await new BrokerClient({ baseUrl: `http://127.0.0.1:${port}` }).openSession({
      oidc_token: TOKEN,
    });
    expect(out.ok).toBe(false);
    expect(JSON.stringify(out)).not.toContain(TOKEN);
    expect(!out.ok && describeFailure(out.failure)).toBe('HTTP 400 bad token ***: got ***');
    const text = await serve((_req, res) => res.writeHead(502).end(`<html>upstream said ${TOKEN}</html>`));
    const out2 = await new BrokerClient({ baseUrl: `http://127.0.0.1:${text}` }).transcript('s_1', TOKEN);
    expect(!out2.ok && describeFailure(out2.failure)).toBe('HTTP 502 <html>upstream said ***</html>');
  });

  it('reports an unreachable broker and a timeout', async () => {
    const down = await startFakeBroker();
    await down.close();
    const refused = await new BrokerClient({ baseUrl: down.url }).openSession({ oidc_token: TOKEN });
    expect(!refused.ok && refused.failure).toMatchObject({
      kind: 'unreachable',
      message: expect.stringContaining('ECONNREFUSED'),
    });
    const port = await serve(() => {
      /* never answers */
    });
    const slow = await new BrokerClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 200 }).transcript(
      's_1',
      TOKEN,
    );
    expect(!slow.ok && slow.failure).toEqual({
      kind: 'unreachable',
      message: `GET http://127.0.0.1:${port}/v1/sessions/s_1/transcript timed out after 200 ms`,
    });
  });

  it('rejects answers that break the contract', async () => {
    const port = await serve((_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 's_1',
          secret: 'x',
          expires_at: 'y',
          policy: 'p',
          identity: {},
          targets: [{ name: 't' }],
        }),
      );
    });
    const out = await new BrokerClient({ baseUrl: `http://127.0.0.1:${port}` }).openSession({
      oidc_token: TOKEN,
    });
    expect(!out.ok && out.failure).toEqual({
      kind: 'bad-response',
      status: 201,
      message: 'targets is not a list of targets',
    });
  });

  it('retries a revoke through outages with backoff, and treats 404 as gone', async () => {
    const broker = await startFakeBroker({ failRevokes: 2 });
    closers.push(() => broker.close());
    const client = new BrokerClient({ baseUrl: broker.url });
    const opened = await client.openSession({ oidc_token: TOKEN });
    if (!opened.ok) throw new Error('open');
    const t0 = Date.now();
    const out = await client.revoke(opened.value.id, opened.value.secret, { attempts: 4, baseDelayMs: 50 });
    expect(out).toEqual({ ok: true, value: 'revoked', attempts: 3 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150 - 10);
    expect(broker.requests.filter((r) => r.method === 'DELETE')).toHaveLength(3);
    expect(await client.revoke('s_unknown', opened.value.secret, { attempts: 3, baseDelayMs: 1 })).toEqual({
      ok: true,
      value: 'gone',
      attempts: 1,
    });
    // 401 is not transient: one attempt only
    expect(
      await client.revoke(opened.value.id, 'wrong-secret', { attempts: 3, baseDelayMs: 1 }),
    ).toMatchObject({ ok: false, attempts: 1 });
  });

  it('trusts a private CA given as ca-cert, and only then', async () => {
    const pki = makeTestPki();
    const port = await serve(
      (_req, res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'session not found', reasons: [] }));
      },
      createHttpsServer({ cert: pki.certPem, key: pki.keyPem }),
    );
    const trusted = await new BrokerClient({
      baseUrl: `https://127.0.0.1:${port}`,
      caPem: pki.caPem,
    }).transcript('s_1', TOKEN);
    expect(!trusted.ok && trusted.failure).toMatchObject({ kind: 'http', status: 404 });
    const untrusted = await new BrokerClient({ baseUrl: `https://127.0.0.1:${port}` }).transcript(
      's_1',
      TOKEN,
    );
    expect(!untrusted.ok && untrusted.failure).toMatchObject({
      kind: 'unreachable',
      message: expect.stringMatching(/certificate/i),
    });
  });
});

describe('helpers', () => {
  it('scrub replaces raw and URL-encoded secrets', () => {
    expect(scrub('a s3cr+t b s3cr%2Bt', ['s3cr+t'])).toBe('a *** b ***');
  });
  it('withRetry stops on success and on permanent failures', async () => {
    const delays: number[] = [];
    const sleep = async (ms: number) => {
      delays.push(ms);
    };
    let n = 0;
    const out = await withRetry(
      { attempts: 5, baseDelayMs: 100 },
      async () =>
        ++n < 4 ? { ok: false, failure: { kind: 'unreachable', message: 'x' } } : { ok: true, value: n },
      sleep,
    );
    expect(out).toEqual({ ok: true, value: 4, attempts: 4 });
    expect(delays).toEqual([100, 200, 400]);
  });
});
