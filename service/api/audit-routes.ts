// Audit routes (admin token): the export stream for backfill (`hoop-broker audit export`), and, with
// signed checkpoints, the public key that verifies them.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { formatRecord } from '../audit/export-format.js';
import { batchRecords } from '../audit/exporter.js';
import type { SessionService } from '../sessions/service.js';
import { EXPORT_START, type ExportPosition, type Store } from '../store/store.js';
import { ErrorBody } from './schemas.js';

export interface AuditRouteDeps {
  sessions: SessionService;
  store: Store;
  checkpointKey?: { keyId: string; publicKeyPem: string } | undefined;
}

export const CheckpointKeyView = Type.Object({
  alg: Type.Literal('Ed25519'),
  key_id: Type.String(),
  public_key_pem: Type.String(),
});

export const CheckpointView = Type.Object({
  seq: Type.Integer(),
  at: Type.String(),
  /** the signed text: canonical JSON {v, seq, at, prev, key_id, sessions: [[id, head_seq, head_hash]], pruned} */
  body: Type.String(),
  /** base64 Ed25519 signature over body */
  signature: Type.String(),
  key_id: Type.String(),
});
export type CheckpointView = Static<typeof CheckpointView>;

const ExportQuery = Type.Object({
  after: Type.Optional(Type.String({ maxLength: 2000, pattern: '^[A-Za-z0-9_-]*$' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  format: Type.Optional(Type.Union([Type.Literal('jsonl'), Type.Literal('ocsf')])),
});

export const ExportPage = Type.Object({
  /** records in the chosen format, each one JSON object (what a sink would receive as one line) */
  records: Type.Array(Type.Record(Type.String(), Type.Unknown())),
  /** pass as `after` for the next page */
  next: Type.String(),
  /** nothing more is ready to export now */
  drained: Type.Boolean(),
});

function bearer(req: FastifyRequest): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
}

export function encodePosition(p: ExportPosition): string {
  return Buffer.from(JSON.stringify(p)).toString('base64url');
}

export function decodePosition(text: string | undefined): ExportPosition | null {
  if (!text) return EXPORT_START;
  try {
    const p = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as ExportPosition;
    const ok =
      Array.isArray(p.chunks) &&
      p.chunks.length === 3 &&
      /^\d+$/.test(String(p.chunks[0])) &&
      typeof p.chunks[1] === 'string' &&
      Number.isInteger(p.chunks[2]) &&
      Array.isArray(p.denials) &&
      p.denials.length === 2 &&
      /^\d+$/.test(String(p.denials[0])) &&
      /^\d+$/.test(String(p.denials[1]));
    return ok ? p : null;
  } catch {
    return null;
  }
}

export async function auditRoutes(app: FastifyInstance, deps: AuditRouteDeps): Promise<void> {
  app.get(
    '/v1/audit/checkpoint-key',
    {
      schema: {
        summary: 'The public key that verifies signed checkpoints (no authentication)',
        response: { 200: CheckpointKeyView, 404: ErrorBody },
      },
    },
    async (_req, reply) => {
      const k = deps.checkpointKey;
      if (!k)
        return reply.code(404).send({ error: 'not found', reasons: [{ message: 'checkpoints are off' }] });
      return { alg: 'Ed25519' as const, key_id: k.keyId, public_key_pem: k.publicKeyPem };
    },
  );

  app.get(
    '/v1/audit/checkpoints',
    {
      schema: {
        summary: 'Signed checkpoints over every session chain head, ascending (admin token)',
        querystring: Type.Object({
          after: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
        }),
        response: { 200: Type.Object({ checkpoints: Type.Array(CheckpointView) }), 401: ErrorBody },
        security: [{ bearer: [] }],
      },
    },
    async (req, reply) => {
      const caller = await deps.sessions.authorize(bearer(req), null);
      if (caller?.kind !== 'admin')
        return reply
          .code(401)
          .send({ error: 'unauthorized', reasons: [{ message: 'checkpoints need an admin token' }] });
      const q = req.query as { after?: number; limit?: number };
      const rows = await deps.store.listCheckpoints(q.after ?? 0, q.limit ?? 100);
      return { checkpoints: rows.map((r) => ({ ...r, at: r.at.toISOString() })) };
    },
  );

  app.get(
    '/v1/audit/export',
    {
      schema: {
        summary: 'Audit records after a position, for backfill (admin token)',
        querystring: ExportQuery,
        response: { 200: ExportPage, 400: ErrorBody, 401: ErrorBody },
        security: [{ bearer: [] }],
      },
    },
    async (req, reply) => {
      const caller = await deps.sessions.authorize(bearer(req), null);
      if (caller?.kind !== 'admin')
        return reply
          .code(401)
          .send({ error: 'unauthorized', reasons: [{ message: 'the audit export needs an admin token' }] });
      const q = req.query as { after?: string; limit?: number; format?: 'jsonl' | 'ocsf' };
      const after = decodePosition(q.after);
      if (!after)
        return reply.code(400).send({
          error: 'invalid request',
          reasons: [{ message: 'after is not a position this broker gave out' }],
        });
      const batch = await deps.store.readExport(after, q.limit ?? 200);
      const records = batchRecords(batch).map(
        (r) => JSON.parse(formatRecord(r, q.format ?? 'jsonl')) as Record<string, unknown>,
      );
      return { records, next: encodePosition(batch.position), drained: batch.drained };
    },
  );
}
