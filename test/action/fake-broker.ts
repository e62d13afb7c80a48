// A scripted broker for the action's failure paths (denials, outages, expiry), speaking the HTTP API
// contract of service/api/schemas.ts. The real broker is exercised by e2e.test.ts.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  CreateSessionBody,
  ErrorBody,
  SessionCreated,
  SessionTarget,
  Transcript,
} from '../../service/api/schemas.js';
import { chainEvent, type NewEvent, type TranscriptEvent } from '../../service/audit/event.js';

export interface FakeRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

export interface FakeBrokerOptions {
  /** answer POST /v1/sessions with this error instead of a session */
  refuse?: { status: number; body: ErrorBody };
  /** targets of the opened session (default: one postgres target) */
  targets?: (sessionId: string) => SessionTarget[];
  caPem?: string;
  /** events recorded after session.opened */
  events?: NewEvent[];
  /** status for GET transcript (e.g. 401 for a session the broker no longer accepts) */
  transcriptStatus?: number;
  /** state reported by the transcript and DELETE */
  state?: 'active' | 'expired' | 'revoked';
  /** fail the first N DELETEs with 503 */
  failRevokes?: number;
}

export interface FakeBroker {
  url: string;
  port: number;
  requests: FakeRequest[];
  secret: string;
  sessionId: string;
  /** the transcript it serves */
  transcript(): Transcript;
  /** stop answering (connections refused from now on) */
  stop(): Promise<void>;
  close(): Promise<void>;
}

export function postgresTarget(
  sessionId: string,
  name = 'orders-db',
  access: 'read' | 'write' = 'read',
): Extract<SessionTarget, { kind: 'postgres' }> {
  return {
    name,
    kind: 'postgres',
    access,
    connection: {
      host: '127.0.0.1',
      port: 6432,
      database: name,
      user: sessionId,
      sslmode: 'verify-full',
      url: `postgres://${sessionId}@127.0.0.1:6432/${name}?sslmode=verify-full`,
    },
  };
}

export async function startFakeBroker(opts: FakeBrokerOptions = {}): Promise<FakeBroker> {
  const requests: FakeRequest[] = [];
  const sessionId = `s_${randomBytes(8).toString('hex')}`;
  // base64url with a `-`/`_` now and then: the action must URL-encode it in DATABASE_URL.
  const secret = `hoop_${randomBytes(24).toString('base64url')}`;
  let revokesLeftToFail = opts.failRevokes ?? 0;
  const events: TranscriptEvent[] = [];
  let state: 'active' | 'expired' | 'revoked' = opts.state ?? 'active';
  const t0 = new Date('2025-06-01T12:00:00.000Z');

  const record = (ev: NewEvent) => {
    const prev = events.at(-1) ?? null;
    events.push(chainEvent(prev, sessionId, ev, new Date(t0.getTime() + events.length * 1000)));
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const body = raw ? (JSON.parse(raw) as unknown) : null;
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
    const authorized = req.headers.authorization === `Bearer ${secret}`;

    if (req.method === 'POST' && path === '/v1/sessions') {
      if (opts.refuse) return send(res, opts.refuse.status, opts.refuse.body);
      const b = body as CreateSessionBody;
      const targets = opts.targets?.(sessionId) ?? [postgresTarget(sessionId)];
      record({
        target: null,
        kind: 'session.opened',
        operation: { policy: 'pull-requests-read-only', ttl: b.ttl ?? null },
        decision: 'allow',
        reasons: ['policy pull-requests-read-only matched'],
      });
      for (const ev of opts.events ?? []) record(ev);
      const created: SessionCreated = {
        id: sessionId,
        secret,
        expires_at: '2025-06-01T12:15:00.000Z',
        identity: {
          repository: 'octo-org/octo-repo',
          repository_id: '123456',
          ref: 'refs/pull/7/merge',
          sha: 'f0e1d2c3b4a5968778695a4b3c2d1e0f12345678',
          run_id: '9876543210',
          run_attempt: '1',
          actor: 'octocat',
          workflow: 'CI',
          event_name: 'pull_request',
        },
        policy: 'pull-requests-read-only',
        targets,
        ...(opts.caPem ? { ca_pem: opts.caPem } : {}),
      };
      return send(res, 201, created);
    }
    const m = /^\/v1\/sessions\/([^/]+)(\/transcript)?$/.exec(path);
    if (!m || m[1] !== sessionId) return send(res, 404, { error: 'session not found', reasons: [] });
    if (!authorized)
      return send(res, 401, { error: 'unauthorized', reasons: [{ message: 'bad session secret' }] });
    if (req.method === 'GET' && m[2]) {
      if (opts.transcriptStatus && opts.transcriptStatus !== 200)
        return send(res, opts.transcriptStatus, {
          error: 'unavailable',
          reasons: [{ message: 'scripted failure' }],
        });
      return send(res, 200, transcript());
    }
    if (req.method === 'DELETE' && !m[2]) {
      if (revokesLeftToFail > 0) {
        revokesLeftToFail--;
        return send(res, 503, { error: 'unavailable', reasons: [] });
      }
      if (state === 'active') {
        state = 'revoked';
        record({
          target: null,
          kind: 'session.revoked',
          operation: { by: 'session' },
          decision: 'info',
          reasons: ['revoked by session'],
        });
      }
      return send(res, 200, { id: sessionId, state });
    }
    return send(res, 404, { error: 'not found', reasons: [] });
  };

  const transcript = (): Transcript => ({
    session_id: sessionId,
    state,
    events,
    head_hash: events.at(-1)?.hash ?? '',
    chain_verified: true,
  });

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => send(res, 500, { error: e.message, reasons: [] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  let stopped = false;
  const stop = () =>
    new Promise<void>((resolve) => {
      if (stopped) return resolve();
      stopped = true;
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    secret,
    sessionId,
    transcript,
    stop,
    close: stop,
  };
}
