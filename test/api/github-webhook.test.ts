// POST /v1/github/webhook: a signed `workflow_job` / `workflow_run` completion revokes that run's live
// sessions (and only those); a bad signature, or no signature, is refused and revokes nothing.
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../service/config/schema.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { githubIssuer, loopbackListen, pgTarget } from '../fixtures/config.js';
import { openSession } from '../fixtures/sessions.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';

const AUD = 'https://hoop.webhook.test';
const SECRET = 'github-app-webhook-secret-42';
let issuer: OidcIssuer;
let broker: TestBroker;

beforeAll(async () => {
  issuer = await startOidcIssuer({ audience: AUD });
  const config: Config = {
    listen: loopbackListen({ postgres: null }),
    issuers: githubIssuer(issuer, AUD),
    targets: [pgTarget({ name: 'db', database: 'x', user: 'x', passwordEnv: 'WH_DB_PW' })],
    policies: [
      { name: 'all', when: { event_name: 'pull_request' }, grants: [{ target: 'db', access: 'read' }] },
    ],
    github_app: { webhook_secret: { env: 'WH_SECRET' } },
  };
  broker = await startBroker({ config, env: { WH_DB_PW: 'unused', WH_SECRET: SECRET } });
});
afterAll(async () => {
  await broker?.close();
  await issuer?.close();
});

async function open(runId: string, attempt = '1'): Promise<{ id: string; secret: string }> {
  return openSession(broker.url, issuer, {
    event_name: 'pull_request',
    run_id: runId,
    run_attempt: attempt,
    repository_id: '123456',
  });
}

async function state(s: { id: string; secret: string }): Promise<string> {
  const res = await fetch(`${broker.url}/v1/sessions/${s.id}`, {
    headers: { authorization: `Bearer ${s.secret}` },
  });
  return ((await res.json()) as { state: string }).state;
}

function deliver(event: string, payload: unknown, secret = SECRET, signature?: string) {
  const body = JSON.stringify(payload);
  const sig = signature ?? `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  return fetch(`${broker.url}/v1/github/webhook`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': crypto.randomUUID(),
      ...(sig ? { 'x-hub-signature-256': sig } : {}),
    },
    body,
  });
}

const jobCompleted = (runId: number, attempt = 1) => ({
  action: 'completed',
  repository: { id: 123456, full_name: 'octo-org/octo-repo' },
  workflow_job: { id: 99, run_id: runId, run_attempt: attempt, name: 'db-check', conclusion: 'success' },
});

describe('GitHub App webhook', () => {
  it('workflow_job completed revokes the sessions of that run attempt only', async () => {
    const a = await open('111');
    const b = await open('111');
    const otherRun = await open('222');
    const otherAttempt = await open('111', '2');
    const res = await deliver('workflow_job', jobCompleted(111));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { revoked: string[] }).revoked.sort()).toEqual([a.id, b.id].sort());
    expect(await state(a)).toBe('revoked');
    expect(await state(b)).toBe('revoked');
    expect(await state(otherRun)).toBe('active');
    expect(await state(otherAttempt)).toBe('active');
    // the transcript says who revoked it and why
    const t = await fetch(`${broker.url}/v1/sessions/${a.id}/transcript`, {
      headers: { authorization: `Bearer ${a.secret}` },
    });
    const last = (
      (await t.json()) as { events: { kind: string; operation: Record<string, unknown> }[] }
    ).events.at(-1)!;
    expect(last).toMatchObject({
      kind: 'session.revoked',
      operation: { by: 'admin:github-app', reason: 'workflow_job completed' },
    });
  });

  it('workflow_run completed revokes every session of the run', async () => {
    const s = await open('333');
    const res = await deliver('workflow_run', {
      action: 'completed',
      repository: { id: 123456 },
      workflow_run: { id: 333, run_attempt: 1 },
    });
    expect(res.status).toBe(200);
    expect(await state(s)).toBe('revoked');
  });

  it('refuses a bad or missing signature, ignores other events and actions', async () => {
    const s = await open('444');
    expect((await deliver('workflow_job', jobCompleted(444), 'wrong-secret')).status).toBe(401);
    expect((await deliver('workflow_job', jobCompleted(444), SECRET, '')).status).toBe(401);
    expect((await deliver('workflow_job', jobCompleted(444), SECRET, 'sha256=00')).status).toBe(401);
    expect(await state(s)).toBe('active');
    expect((await deliver('workflow_job', { ...jobCompleted(444), action: 'in_progress' })).status).toBe(202);
    expect((await deliver('push', { ref: 'refs/heads/main' })).status).toBe(202);
    expect((await deliver('ping', { zen: 'Keep it logically awesome.' })).status).toBe(200);
    expect(await state(s)).toBe('active');
  });
});
