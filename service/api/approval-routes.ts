// Approvals over HTTP: list and read held operations, and decide one. Reading needs an approver token
// (approvals.approver_tokens) or an admin token; so does deciding, where an approver token decides as
// its github_login (or `token:<name>`) and is held to the hold's approvers (approvals/rules.ts). Tokens
// are kept as SHA-256 hashes and compared in constant time, every one of them each time.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { ApprovalService } from '../approvals/service.js';
import type { ApprovalDecision } from '../approvals/types.js';
import type { SessionService } from '../sessions/service.js';
import { hashSecret, secretMatches } from '../sessions/secret.js';
import { ApprovalView, DecideApprovalBody, ErrorBody } from './schemas.js';

export interface ApprovalRouteDeps {
  sessions: SessionService;
  approvals: ApprovalService;
  approverTokens: readonly { name: string; token: string; github_login?: string }[];
}

type Decider = { kind: 'admin'; name: string } | { kind: 'approver'; name: string; github_login?: string };

const IdParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
});
const Errors = { 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };

export async function approvalRoutes(fastify: FastifyInstance, deps: ApprovalRouteDeps): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tokens = deps.approverTokens.map((t) => ({ ...t, hash: hashSecret(t.token), token: undefined }));

  const who = async (req: FastifyRequest): Promise<Decider | null> => {
    const presented = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!presented) return null;
    let match: Decider | null = null;
    for (const t of tokens)
      if (secretMatches(presented, t.hash) && match === null)
        match = {
          kind: 'approver',
          name: t.name,
          ...(t.github_login ? { github_login: t.github_login } : {}),
        };
    if (match) return match;
    const caller = await deps.sessions.authorize(presented, null);
    return caller?.kind === 'admin' ? { kind: 'admin', name: caller.name } : null;
  };
  const refuse = (message: string) => ({ error: 'unauthorized', reasons: [{ message }] });

  app.get(
    '/v1/approvals',
    {
      schema: {
        summary: 'Held operations, newest first (approver or admin token)',
        querystring: Type.Object({
          state: Type.Optional(
            Type.Union([
              Type.Literal('pending'),
              Type.Literal('approved'),
              Type.Literal('denied'),
              Type.Literal('expired'),
              Type.Literal('abandoned'),
            ]),
          ),
          session: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
        response: { 200: Type.Object({ approvals: Type.Array(ApprovalView) }), ...Errors },
      },
    },
    async (req, reply) => {
      if (!(await who(req)))
        return reply.code(401).send(refuse('send "Authorization: Bearer <approver or admin token>"'));
      const q = req.query;
      return {
        approvals: await deps.approvals.list({
          ...(q.state ? { state: q.state } : {}),
          ...(q.session ? { session_id: q.session } : {}),
          ...(q.limit ? { limit: q.limit } : {}),
        }),
      };
    },
  );

  app.get(
    '/v1/approvals/:id',
    {
      schema: {
        summary: 'One held operation (approver or admin token)',
        params: IdParams,
        response: { 200: ApprovalView, ...Errors },
      },
    },
    async (req, reply) => {
      if (!(await who(req)))
        return reply.code(401).send(refuse('send "Authorization: Bearer <approver or admin token>"'));
      const a = await deps.approvals.get(req.params.id);
      if (!a)
        return reply
          .code(404)
          .send({ error: 'not_found', reasons: [{ message: `no approval ${req.params.id}` }] });
      return a;
    },
  );

  app.post(
    '/v1/approvals/:id',
    {
      schema: {
        summary: 'Approve or deny a held operation (approver or admin token)',
        params: IdParams,
        body: DecideApprovalBody,
        response: { 200: ApprovalView, ...Errors },
      },
    },
    async (req, reply) => {
      const caller = await who(req);
      if (!caller)
        return reply
          .code(401)
          .send(refuse('deciding needs an approver token (approvals.approver_tokens) or an admin token'));
      const a = await deps.approvals.get(req.params.id);
      if (!a)
        return reply
          .code(404)
          .send({ error: 'not_found', reasons: [{ message: `no approval ${req.params.id}` }] });
      if (req.body.operation_sha256 !== undefined && req.body.operation_sha256 !== a.operation_sha256)
        return reply.code(409).send({
          error: 'operation_changed',
          reasons: [
            {
              message: `approval ${a.id} holds another operation than the one you reviewed (its sha256 differs)`,
            },
          ],
        });
      // An admin is a verified approver; an approver token decides as its GitHub login and counts only
      // where the hold lists it (or lists nobody: then any approver token may decide).
      const anyone = a.approvers.users.length === 0 && a.approvers.teams.length === 0;
      const decision: ApprovalDecision = {
        id: a.id,
        decision: req.body.decision,
        by:
          caller.kind === 'admin' ? `admin:${caller.name}` : (caller.github_login ?? `token:${caller.name}`),
        channel: req.headers['user-agent']?.startsWith('hoop-broker-cli') ? 'cli' : 'api',
        verified_approver: caller.kind === 'admin' || anyone,
        ...(req.body.reason !== undefined ? { reason: req.body.reason } : {}),
      };
      const r = await deps.approvals.decide(decision);
      if (r.ok) return r.approval;
      const status =
        r.code === 'not_found' ? 404 : r.code === 'not_pending' || r.code === 'duplicate' ? 409 : 403;
      return reply.code(status).send({ error: r.code, reasons: [{ message: r.message }] });
    },
  );
}
