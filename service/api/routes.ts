// HTTP routes under /v1: a schema on every route; denials are ErrorBody values with reasons.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { Refusal, SessionService } from '../sessions/service.js';
import type { Store } from '../store/store.js';
import {
  CreateSessionBody,
  ErrorBody,
  ExplainBody,
  ExplainResult,
  SessionCreated,
  SessionView,
  Transcript,
} from './schemas.js';

const SessionParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' }),
});
const Errors = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  429: ErrorBody,
  503: ErrorBody,
};

/** A refused request's HTTP status. */
const STATUS: Record<Refusal, 400 | 401 | 403 | 404 | 429 | 503> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  'not-found': 404,
  limited: 429,
  unavailable: 503,
};

export interface RouteDeps {
  sessions: SessionService;
  store: Store;
  rateLimitPerMinute: number;
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

const unauthorized = (reply: FastifyReply, what: string) =>
  reply
    .code(401)
    .header('www-authenticate', 'Bearer realm="hoop"')
    .send({
      error: 'unauthorized',
      reasons: [{ message: `${what}: send "Authorization: Bearer <session secret or admin token>"` }],
    });

export async function sessionRoutes(fastify: FastifyInstance, deps: RouteDeps): Promise<void> {
  // Request parts are typed from each route's schema (the TypeBox type provider).
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { sessions } = deps;
  const rateLimit = { max: deps.rateLimitPerMinute, timeWindow: 60_000 };

  app.post(
    '/v1/sessions',
    {
      config: { rateLimit },
      schema: {
        summary: 'Exchange a GitHub OIDC token for a scoped, short-lived gateway session',
        body: CreateSessionBody,
        response: { 201: SessionCreated, ...Errors },
      },
    },
    async (req, reply) => {
      const out = await sessions.open({ ...req.body, client: req.ip });
      reply.header('cache-control', 'no-store');
      if (!out.ok) return reply.code(STATUS[out.refusal]).send(out.body);
      return reply.code(201).send(out.value);
    },
  );

  app.post(
    '/v1/explain',
    {
      config: { rateLimit },
      schema: {
        summary: 'Explain which policy a token matches and why every other one does not; opens nothing',
        body: ExplainBody,
        response: { 200: ExplainResult, ...Errors },
      },
    },
    async (req, reply) => {
      const out = await sessions.explain(req.body.oidc_token);
      if (!out.ok) return reply.code(STATUS[out.refusal]).send(out.body);
      return out.value;
    },
  );

  app.get(
    '/v1/sessions',
    {
      schema: {
        summary: 'List sessions (admin token)',
        querystring: Type.Object({
          active: Type.Optional(Type.Boolean()),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
        response: { 200: Type.Object({ sessions: Type.Array(SessionView) }), ...Errors },
      },
    },
    async (req, reply) => {
      const caller = await sessions.authorize(bearer(req), null);
      if (caller?.kind !== 'admin') return unauthorized(reply, 'listing sessions needs an admin token');
      const q = req.query;
      return {
        sessions: await sessions.list({
          ...(q.active !== undefined ? { active: q.active } : {}),
          ...(q.limit ? { limit: q.limit } : {}),
        }),
      };
    },
  );

  app.get(
    '/v1/sessions/:id',
    {
      schema: {
        summary: 'A session (its secret or an admin token)',
        params: SessionParams,
        response: { 200: SessionView, ...Errors },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!(await sessions.authorize(bearer(req), id))) return unauthorized(reply, 'this session');
      const view = await sessions.view(id);
      if (!view) return reply.code(404).send({ error: 'session not found', reasons: [] });
      return view;
    },
  );

  app.get(
    '/v1/sessions/:id/transcript',
    {
      schema: {
        summary:
          "A session's hash-chained transcript; readable with its secret after expiry or revocation too",
        params: SessionParams,
        response: { 200: Transcript, ...Errors },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!(await sessions.authorize(bearer(req), id))) return unauthorized(reply, 'this transcript');
      const t = await sessions.transcript(id);
      if (!t) return reply.code(404).send({ error: 'session not found', reasons: [] });
      return t;
    },
  );

  app.delete(
    '/v1/sessions/:id',
    {
      schema: {
        summary: 'Revoke a session: closes its live connections',
        params: SessionParams,
        response: { 200: SessionView, ...Errors },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const caller = await sessions.authorize(bearer(req), id);
      if (!caller) return unauthorized(reply, 'revoking this session');
      const out = await sessions.revoke(id, caller);
      if (!out.ok) return reply.code(STATUS[out.refusal]).send(out.body);
      return out.value;
    },
  );

  app.get(
    '/v1/denials',
    {
      schema: {
        summary: 'Recent refused session requests (admin token)',
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }),
      },
    },
    async (req, reply) => {
      const caller = await sessions.authorize(bearer(req), null);
      if (caller?.kind !== 'admin') return unauthorized(reply, 'denials need an admin token');
      const rows = await deps.store.listDenials(req.query.limit ?? 100);
      return { denials: rows.map((d) => ({ ...d, at: d.at.toISOString() })) };
    },
  );
}
