// The transcript events of gateway operations, built in this one place from the Operation (what was
// asked), the Decision (what the policy said) and the outcome (what happened). Pure. Keys are written
// in sorted order: one event per statement makes this the gateways' hot path, and canonical JSON
// (audit/event.ts) then needs no sorting.
import type { Decision } from '../policy/decision.js';
import type { K8sRequestOperation, Operation, PgOperation, SshOperation } from '../policy/operation.js';
import type {
  BrokerEvent,
  ConnectionClosedRecord,
  ConnectionOpenedRecord,
  K8sRequestRecord,
  PgDeniedRecord,
  PgStatementRecord,
  SshOperationRecord,
} from './event.js';

/** Where an operation happened: the session's target and the gateway connection. */
export interface OperationContext {
  target: string | null;
  conn_id: string;
}

/** What an allowed operation did (counts only: result data is never recorded). */
export interface OperationOutcome {
  rows?: number;
  bytes?: number;
  duration_ms?: number;
  masked?: number;
  /** how it failed where it ran (pg: the SQLSTATE) */
  error?: string;
  /** ssh: the command's exit status */
  exit_code?: number;
  /** k8s: the API server's HTTP status */
  status?: number;
}

/** the statement kind a FunctionCall is reported as when refused */
export const FUNCTION_CALL_KIND = 'FUNCTION CALL';

/** An allowed operation's event, once it completed. */
export function allowedEvent(
  ctx: OperationContext,
  op: Operation,
  reasons: string[],
  outcome: OperationOutcome,
): BrokerEvent {
  switch (op.kind) {
    case 'pg.statement':
    case 'pg.copy':
    case 'pg.function_call': {
      const operation: PgStatementRecord =
        outcome.error !== undefined
          ? {
              conn_id: ctx.conn_id,
              error: outcome.error,
              protocol: pgProtocol(op),
              statement: pgText(op),
              statement_kind: op.statement?.kind ?? pgLabel(op),
            }
          : {
              conn_id: ctx.conn_id,
              protocol: pgProtocol(op),
              statement: pgText(op),
              statement_kind: op.statement?.kind ?? pgLabel(op),
            };
      const event: BrokerEvent = {
        target: ctx.target,
        kind: 'pg.statement',
        operation,
        decision: 'allow',
        reasons,
      };
      if (outcome.rows !== undefined) event.rows = outcome.rows;
      if (outcome.bytes !== undefined) event.bytes = outcome.bytes;
      if (outcome.duration_ms !== undefined) event.duration_ms = outcome.duration_ms;
      if (outcome.masked !== undefined) event.masked = outcome.masked;
      return event;
    }
    case 'ssh.exec':
    case 'ssh.shell':
    case 'ssh.sftp':
    case 'ssh.forward':
      return withCounts(
        {
          target: ctx.target,
          kind: op.kind,
          operation: sshRecord(ctx, op, undefined, outcome),
          decision: 'allow',
          reasons,
        },
        outcome,
      );
    case 'k8s.request':
      return withCounts(
        {
          target: ctx.target,
          kind: 'k8s.request',
          operation: k8sRecord(ctx, op, undefined, outcome.status),
          decision: 'allow',
          reasons,
        },
        outcome,
      );
  }
}

/** A refused operation's event (recorded before the client hears of it). */
export function deniedEvent(
  ctx: OperationContext,
  op: Operation,
  decision: Pick<Decision, 'rule' | 'reasons'>,
): BrokerEvent {
  const rule = decision.rule ?? 'policy';
  switch (op.kind) {
    case 'pg.statement':
    case 'pg.copy':
    case 'pg.function_call': {
      const operation: PgDeniedRecord = {
        conn_id: ctx.conn_id,
        protocol: pgProtocol(op),
        rule,
        statement: pgText(op),
        statement_kind: pgDeniedKind(op),
      };
      return {
        target: ctx.target,
        kind: 'pg.denied',
        operation,
        decision: 'deny',
        reasons: decision.reasons,
      };
    }
    case 'ssh.exec':
    case 'ssh.shell':
    case 'ssh.sftp':
    case 'ssh.forward':
      return {
        target: ctx.target,
        kind: 'ssh.denied',
        operation: sshRecord(ctx, op, rule, {}),
        decision: 'deny',
        reasons: decision.reasons,
      };
    case 'k8s.request':
      return {
        target: ctx.target,
        kind: 'k8s.denied',
        operation: k8sRecord(ctx, op, rule, undefined),
        decision: 'deny',
        reasons: decision.reasons,
      };
  }
}

export type GatewayName = 'pg' | 'ssh';

/** A client connection is open (authenticated, authorized, upstream reached). */
export function connectionOpenedEvent(
  gateway: GatewayName,
  target: string | null,
  operation: ConnectionOpenedRecord,
): BrokerEvent {
  return {
    target,
    kind: gateway === 'pg' ? 'pg.connection.opened' : 'ssh.connection.opened',
    operation,
    decision: 'allow',
    reasons: [],
  };
}

/** The gateway could not attribute what the server sent, and closes the connection rather than guess. */
export function connectionDesyncEvent(target: string | null, conn_id: string, reason: string): BrokerEvent {
  return {
    target,
    kind: 'pg.connection.desync',
    operation: { conn_id, reason },
    decision: 'deny',
    reasons: [reason],
  };
}

export function connectionClosedEvent(
  gateway: GatewayName,
  target: string | null,
  operation: ConnectionClosedRecord,
  durationMs: number,
): BrokerEvent {
  return {
    target,
    kind: gateway === 'pg' ? 'pg.connection.closed' : 'ssh.connection.closed',
    operation,
    decision: 'info',
    reasons: [],
    duration_ms: durationMs,
  };
}

/** What a refused PostgreSQL operation is called (transcript statement_kind, error message). */
export function pgDeniedKind(op: PgOperation): string {
  return op.kind === 'pg.function_call' ? FUNCTION_CALL_KIND : (op.statement?.kind ?? pgLabel(op));
}

function pgProtocol(op: PgOperation): PgStatementRecord['protocol'] {
  return op.kind === 'pg.function_call' ? 'function-call' : op.protocol;
}

/** A PostgreSQL operation's statement text as recorded (redacted). */
export function pgText(op: PgOperation): string {
  if (op.statement) return op.statement.text;
  return op.kind === 'pg.statement' ? (op.text ?? '') : '';
}

function pgLabel(op: PgOperation): string {
  return op.kind === 'pg.statement' ? (op.label ?? 'UNKNOWN') : 'UNKNOWN';
}

function withCounts(event: BrokerEvent, outcome: OperationOutcome): BrokerEvent {
  if (outcome.rows !== undefined) event.rows = outcome.rows;
  if (outcome.bytes !== undefined) event.bytes = outcome.bytes;
  if (outcome.duration_ms !== undefined) event.duration_ms = outcome.duration_ms;
  return event;
}

function sshRecord(
  ctx: OperationContext,
  op: SshOperation,
  rule: string | undefined,
  outcome: OperationOutcome,
): SshOperationRecord {
  const r: SshOperationRecord = { conn_id: ctx.conn_id, type: op.kind };
  switch (op.kind) {
    case 'ssh.exec':
      r.command = op.command;
      break;
    case 'ssh.shell':
      if (op.term !== undefined) r.term = op.term;
      break;
    case 'ssh.sftp':
      r.op = op.op;
      r.path = op.path;
      if (op.target_path !== undefined) r.target_path = op.target_path;
      if (op.mode !== undefined) r.mode = op.mode;
      break;
    case 'ssh.forward':
      r.direction = op.direction;
      r.host = op.host;
      r.port = op.port;
      break;
  }
  if (outcome.error !== undefined) r.error = outcome.error;
  if (outcome.exit_code !== undefined) r.exit_code = outcome.exit_code;
  if (rule !== undefined) r.rule = rule;
  return r;
}

function k8sRecord(
  ctx: OperationContext,
  op: K8sRequestOperation,
  rule: string | undefined,
  status: number | undefined,
): K8sRequestRecord {
  const r: K8sRequestRecord = { api_group: op.apiGroup, conn_id: ctx.conn_id, path: op.path, verb: op.verb };
  if (op.apiVersion !== undefined) r.api_version = op.apiVersion;
  if (op.name !== undefined) r.name = op.name;
  if (op.namespace !== undefined) r.namespace = op.namespace;
  if (op.resource !== undefined) r.resource = op.resource;
  if (rule !== undefined) r.rule = rule;
  if (status !== undefined) r.status = status;
  if (op.subresource !== undefined) r.subresource = op.subresource;
  return r;
}
