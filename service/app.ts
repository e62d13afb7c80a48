// The Fastify app: external plugins (OpenAPI, rate limit) → app hooks (metrics, errors) → routes.

import rateLimit, { type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { auditRoutes } from './api/audit-routes.js';
import { githubWebhookRoutes } from './api/github-webhook.js';
import type { GitHubApprovalWebhooks } from './approvals/github/webhooks.js';
import { viewerRoutes } from './web/routes.js';
import { sessionRoutes } from './api/routes.js';
import { approvalRoutes } from './api/approval-routes.js';
import type { ApprovalService } from './approvals/service.js';
import type { BrokerMetrics } from './metrics.js';
import type { SessionService } from './sessions/service.js';
import type { Store } from './store/store.js';

export interface AppDeps {
  sessions: SessionService;
  store: Store;
  metrics: BrokerMetrics;
  logger: Logger;
  rateLimitPerMinute: number;
  /** count the rate limit in the shared store (replicas), not per process */
  rateLimitStore?: FastifyRateLimitStoreCtor | undefined;
  /** github_app.webhook_secret: serve POST /v1/github/webhook */
  githubWebhookSecret?: string | undefined;
  /** held operations: GET/POST /v1/approvals (absent: not served) */
  approvals?: ApprovalService;
  approverTokens?: readonly { name: string; token: string; github_login?: string }[];
  /** check_run / issue_comment deliveries that decide approval holds (github_app with app_id and key) */
  githubApprovals?: GitHubApprovalWebhooks | undefined;
  /** true while the broker shuts down gracefully: /readyz answers 503 so traffic moves elsewhere */
  draining?: () => boolean;
  /** the public half of the checkpoint signing key, served at /v1/audit/checkpoint-key */
  checkpointKey?: { keyId: string; publicKeyPem: string };
  https?: { key: string; cert: string } | undefined;
  version?: string;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: 256 * 1024,
    return503OnClosing: true,
    ...(deps.https ? { https: deps.https } : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: true } },
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'hoop broker API',
        version: deps.version ?? '0.1.0',
        description:
          'Exchange a GitHub Actions OIDC token for a scoped, recorded, short-lived gateway session.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(rateLimit, {
    ...(deps.rateLimitStore ? { store: deps.rateLimitStore } : {}),
    global: false,
    errorResponseBuilder: (_req, ctx) => ({
      statusCode: 429,
      error: 'rate limited',
      reasons: [
        {
          message: `at most ${ctx.max} requests per minute from one address; retry in ${Math.ceil(ctx.ttl / 1000)} s`,
        },
      ],
    }),
  });

  app.addHook('onResponse', async (req, reply) => {
    deps.metrics.httpDuration.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) {
      return reply.code(400).send({
        error: 'invalid request',
        reasons: err.validation.map((v) => ({
          message: `${err.validationContext ?? 'request'}${v.instancePath || ''}: ${v.message ?? 'is invalid'}`,
        })),
      });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 429) return reply.code(429).send(err);
    if (status < 500) {
      return reply.code(status).send({
        error: err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'request body too large' : 'bad request',
        reasons: [{ message: err.message }],
      });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal error', reasons: [] });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({
      error: 'not found',
      reasons: [{ message: `${req.method} ${req.url.split('?')[0]} is not an API route` }],
    }),
  );

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    if (deps.draining?.()) return reply.code(503).send({ status: 'draining', store: deps.store.kind });
    try {
      await deps.store.ping();
      return { status: 'ready', store: deps.store.kind };
    } catch {
      return reply.code(503).send({ status: 'unavailable', store: deps.store.kind });
    }
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(async (scope) => sessionRoutes(scope, deps));
  await app.register(async (scope) => auditRoutes(scope, deps));
  const approvals = deps.approvals;
  if (approvals)
    await app.register(async (scope) =>
      approvalRoutes(scope, {
        sessions: deps.sessions,
        approvals,
        approverTokens: deps.approverTokens ?? [],
      }),
    );
  await app.register(async (scope) => viewerRoutes(scope));
  const webhookSecret = deps.githubWebhookSecret;
  if (webhookSecret)
    await app.register(async (scope) =>
      githubWebhookRoutes(scope, {
        ...deps,
        logger: deps.logger,
        secret: webhookSecret,
        approvals: deps.githubApprovals,
      }),
    );
  return app;
}
