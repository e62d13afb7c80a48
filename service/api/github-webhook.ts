// POST /v1/github/webhook: deliveries to the broker's GitHub App. The body's HMAC-SHA256 under the
// App's webhook secret (X-Hub-Signature-256, over the raw bytes) is checked before anything is read.
// `workflow_job` and `workflow_run` with action `completed` revoke the live sessions opened by that run
// (matched on the verified token's repository_id, run_id and run_attempt), so revocation does not rest
// on the action's post step alone. Note: sessions are per job, and a token does not name its job, so a
// `workflow_job` completion revokes every session of the run attempt, also those of jobs still running
// in parallel; subscribe the App to `workflow_run` only when jobs of one run overlap.
// Every signed delivery's X-GitHub-Delivery is claimed once in the store (shared by replicas): a
// delivery seen before is refused (409), so a captured, validly signed delivery cannot be replayed.
// `check_run` (requested_action) and `issue_comment` (`/hoop approve|deny <id>`) decide approval holds
// (approvals/github/webhooks.ts) when the App is configured with its key.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { SessionService } from '../sessions/service.js';
import type { Store } from '../store/store.js';
import type { GitHubApprovalWebhooks } from '../approvals/github/webhooks.js';

/** How long a delivery id is remembered (GitHub redelivers with the same id; signatures never expire). */
export const DELIVERY_MEMORY_MS = 30 * 24 * 3_600_000;
const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;

export interface WebhookDeps {
  sessions: SessionService;
  store: Store;
  logger: Logger;
  /** the App's webhook secret (github_app.webhook_secret) */
  secret: string;
  /** approval decisions from check runs and PR comments (absent: those events are ignored) */
  approvals?: GitHubApprovalWebhooks | undefined;
}

export function signatureMatches(secret: string, body: Buffer, header: string | undefined): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

interface RunPayload {
  action?: string;
  repository?: { id?: number | string; full_name?: string };
  workflow_job?: { run_id?: number | string; run_attempt?: number | string; name?: string };
  workflow_run?: { id?: number | string; run_attempt?: number | string };
}

export async function githubWebhookRoutes(app: FastifyInstance, deps: WebhookDeps): Promise<void> {
  // this scope keeps the raw bytes: the signature is over them, not over a re-serialisation
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: 1024 * 1024 },
    (_req, body, done) => done(null, body),
  );
  app.post('/v1/github/webhook', { schema: { hide: true } }, async (req, reply) => {
    const raw = req.body;
    if (!Buffer.isBuffer(raw))
      return reply.code(415).send({ error: 'expected application/json', reasons: [] });
    const signature = req.headers['x-hub-signature-256'];
    if (!signatureMatches(deps.secret, raw, typeof signature === 'string' ? signature : undefined)) {
      deps.logger.warn(
        { delivery: req.headers['x-github-delivery'] },
        'GitHub webhook with a bad signature refused',
      );
      return reply
        .code(401)
        .send({ error: 'unauthorized', reasons: [{ message: 'X-Hub-Signature-256 does not match' }] });
    }
    const event = String(req.headers['x-github-event'] ?? '');
    const delivery = req.headers['x-github-delivery'];
    if (typeof delivery !== 'string' || !DELIVERY_ID.test(delivery))
      return reply.code(400).send({
        error: 'invalid request',
        reasons: [{ message: 'X-GitHub-Delivery is missing or malformed' }],
      });
    const now = deps.sessions.now;
    if (
      !(await deps.store.claimOnce(
        `github-delivery:${delivery}`,
        new Date(now.getTime() + DELIVERY_MEMORY_MS),
      ))
    ) {
      deps.logger.warn({ delivery, event }, 'GitHub webhook delivery seen before refused');
      return reply.code(409).send({
        error: 'replayed delivery',
        reasons: [{ message: `delivery ${delivery} was received before` }],
      });
    }
    let payload: RunPayload;
    try {
      payload = JSON.parse(raw.toString('utf8')) as RunPayload;
    } catch {
      return reply
        .code(400)
        .send({ error: 'invalid request', reasons: [{ message: 'the body is not JSON' }] });
    }
    if (event === 'ping') return { ok: true };
    if (event === 'check_run' || event === 'issue_comment') {
      if (!deps.approvals)
        return reply.code(202).send({ ignored: true, reason: 'approvals through GitHub are not configured' });
      const answer = await deps.approvals.handle(event, payload, delivery);
      return reply.code(answer.status).send(answer.body);
    }
    const run =
      event === 'workflow_job'
        ? { id: payload.workflow_job?.run_id, attempt: payload.workflow_job?.run_attempt }
        : event === 'workflow_run'
          ? { id: payload.workflow_run?.id, attempt: payload.workflow_run?.run_attempt }
          : null;
    if (
      !run ||
      payload.action !== 'completed' ||
      run.id === undefined ||
      payload.repository?.id === undefined
    )
      return reply.code(202).send({ ignored: true });
    const ids = await deps.store.listActiveByRun(
      String(payload.repository.id),
      String(run.id),
      run.attempt === undefined ? null : String(run.attempt),
      deps.sessions.now,
    );
    for (const id of ids)
      await deps.sessions.revoke(id, { kind: 'admin', name: 'github-app' }, `${event} completed`);
    deps.logger.info(
      {
        delivery: req.headers['x-github-delivery'],
        event,
        repository: payload.repository.full_name,
        run_id: String(run.id),
        revoked: ids.length,
      },
      'GitHub webhook: run completed',
    );
    return { revoked: ids };
  });
}
