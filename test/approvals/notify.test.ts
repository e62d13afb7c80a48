// The notification channels against a local HTTP receiver: the Slack-compatible message names the
// statement, the job and where to decide; the generic webhook is signed (HMAC-SHA256 over
// "<t>.<body>"), retried with backoff on 5xx, bounded, and a 4xx is not retried.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deliver,
  deliverableUrl,
  notificationChannels,
  slackChannel,
  webhookChannel,
} from '../../service/approvals/notify.js';
import type { PendingApproval } from '../../service/approvals/types.js';

const SECRET = 'webhook-hmac-secret-0123456789';
const approval: PendingApproval = {
  id: 'apr_notify',
  session_id: 'ses_1',
  target: 'orders-db',
  conn_id: 'pgc_1',
  operation_kind: 'pg.statement',
  summary: "UPDATE accounts SET password = '[redacted]' WHERE id = 1",
  operation_sha256: 'cd'.repeat(32),
  rule: 'approve[0].table: accounts',
  reasons: ['UPDATE needs approval'],
  policy: 'migrations',
  approvers: { users: ['alice'], teams: ['acme/dba'], min: 1 },
  job: { repository: 'acme/app', workflow: 'migrate', run_id: '77', actor: 'octocat', pull_request: 5 },
  state: 'pending',
  votes: [],
  requested_at: '2026-12-07T08:00:00Z',
  expires_at: '2026-12-07T08:10:00Z',
};

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}
let server: Server;
let base: string;
const received: Received[] = [];
/** status codes to answer, in turn (then 200) */
let script: number[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      res.statusCode = script.shift() ?? 200;
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const logger = pino({ level: 'silent' });

describe('notification channels', () => {
  it('slack: one message naming the statement, the job, the approvers and how to decide', async () => {
    received.length = 0;
    await slackChannel(`${base}/slack/T000/B000/XXXX`, logger).requested(approval, {
      api: 'https://hoop.example.com/v1/approvals/apr_notify',
    });
    expect(received).toHaveLength(1);
    const { text } = JSON.parse(received[0]!.body) as { text: string };
    expect(text).toContain('apr_notify');
    expect(text).toContain("UPDATE accounts SET password = '[redacted]'");
    expect(text).toContain('acme/app, workflow migrate, run 77, PR #5, by octocat');
    expect(text).toContain('alice, team acme/dba');
    expect(text).toContain('hoop-broker approvals approve apr_notify');
  });

  it('webhook: signed with a timestamp; a receiver can verify it; retried on 5xx', async () => {
    received.length = 0;
    script = [503, 500];
    await webhookChannel(`${base}/hook`, SECRET, logger, { backoffMs: 20 }).requested(approval, {
      api: 'https://hoop.example.com/v1/approvals/apr_notify',
    });
    expect(received).toHaveLength(3);
    const last = received.at(-1)!;
    const sig = String(last.headers['x-hoop-signature']);
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig);
    expect(m).not.toBeNull();
    const expected = createHmac('sha256', SECRET).update(`${m![1]}.${last.body}`).digest('hex');
    expect(m![2]).toBe(expected);
    expect(Math.abs(Number(m![1]) - Date.now() / 1000)).toBeLessThan(60);
    const body = JSON.parse(last.body) as { type: string; approval: PendingApproval; links: { api: string } };
    expect(body.type).toBe('approval.requested');
    expect(body.approval.id).toBe('apr_notify');
    expect(body.links.api).toContain('/v1/approvals/apr_notify');
    expect(last.headers['x-hoop-event']).toBe('approval.requested');
    expect(JSON.stringify(received)).not.toContain(SECRET);
  });

  it('bounded: gives up after the attempts; a 4xx is not retried', async () => {
    received.length = 0;
    script = [500, 500, 500, 500, 500];
    const r = await deliver(`${base}/hook`, '{}', () => ({}), { attempts: 3, backoffMs: 10 });
    expect(r).toEqual({ ok: false, attempts: 3, status: 500 });
    expect(received).toHaveLength(3);
    script = [400];
    received.length = 0;
    expect((await deliver(`${base}/hook`, '{}', () => ({}), { attempts: 3, backoffMs: 10 })).attempts).toBe(
      1,
    );
    script = [];
  });

  it('only https or loopback http; channels from the config with their secrets', () => {
    expect(deliverableUrl('https://hooks.slack.com/services/x')).toBe(true);
    expect(deliverableUrl('http://127.0.0.1:9/x')).toBe(true);
    expect(deliverableUrl('http://hooks.example.com/x')).toBe(false);
    const channels = notificationChannels(
      {
        approvals: {
          notify: [
            { kind: 'slack', url: { env: 'SLACK_URL' } },
            { kind: 'webhook', url: `${base}/hook`, secret: { env: 'HOOK' } },
          ],
        },
      },
      new Map([
        ['approvals.notify[0].url', `${base}/slack`],
        ['approvals.notify[1].secret', SECRET],
      ]),
      logger,
    );
    expect(channels.map((c) => c.name)).toEqual(['slack', 'webhook']);
  });
});
