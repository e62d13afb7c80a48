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
  PgStatementResultRecord,
  SshOperationRecord,
  SshRecordingRef,
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
  /** ssh: the signal that ended the command, when it did not exit */
  signal?: string;
  /** ssh: bytes from the client (stdin, uploads) and to it (output, downloads) */
  bytes_in?: number;
  bytes_out?: number;
  /** ssh: the terminal recording of a shell or command */
  recording?: SshRecordingRef;
  /** k8s: the API server's HTTP status */
  status?: number;
  /** k8s exec/attach/port-forward and streams (watch, logs -f): what the connection carried */
  stream?: K8sStreamOutcome;
}

/** An upgraded or streaming Kubernetes request, as the gateway saw it pass. */
export interface K8sStreamOutcome {
  /** exec/attach output as asciicast v2 (when the grant records output; capped) */
  asciicast?: string;
  asciicast_truncated?: boolean;
  /** why the stream ended when the client did not end it (revoked, port denied, …) */
  ended?: string;
  /** exec: the Status message when the command failed for another reason than its exit code */
  error?: string;
  protocol?: string;
  stderr_bytes?: number;
  stdin_bytes?: number;
  stdout_bytes?: number;
  transport?: 'http' | 'websocket' | 'spdy';
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
    case 'ssh.request':
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
          operation: k8sRecord(ctx, op, undefined, outcome),
          decision: 'allow',
          reasons,
        },
        outcome,
      );
  }
}

/**
 * The outcome of a PostgreSQL operation whose pg.statement event was recorded before it was forwarded
 * (recording: before_forward): what allowedEvent would have added, as its own event.
 */
export function pgResultEvent(
  ctx: OperationContext,
  op: PgOperation,
  outcome: OperationOutcome,
): BrokerEvent {
  const operation: PgStatementResultRecord =
    outcome.error !== undefined
      ? {
          conn_id: ctx.conn_id,
          error: outcome.error,
          protocol: pgProtocol(op),
          statement_kind: op.statement?.kind ?? pgLabel(op),
        }
      : { conn_id: ctx.conn_id, protocol: pgProtocol(op), statement_kind: op.statement?.kind ?? pgLabel(op) };
  return withCounts(
    { target: ctx.target, kind: 'pg.statement.result', operation, decision: 'info', reasons: [] },
    outcome,
  );
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
    case 'ssh.request':
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
        operation: k8sRecord(ctx, op, rule, {}),
        decision: 'deny',
        reasons: decision.reasons,
      };
  }
}

export type GatewayName = 'pg' | 'ssh' | 'k8s';

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
  if (outcome.masked !== undefined) event.masked = outcome.masked;
  return event;
}

function sshRecord(
  ctx: OperationContext,
  op: SshOperation,
  rule: string | undefined,
  outcome: OperationOutcome,
): SshOperationRecord {
  // keys in sorted order (see the file comment)
  const r = {} as SshOperationRecord;
  if (outcome.bytes_in !== undefined) r.bytes_in = outcome.bytes_in;
  if (outcome.bytes_out !== undefined) r.bytes_out = outcome.bytes_out;
  if (op.kind === 'ssh.exec') r.command = op.command;
  r.conn_id = ctx.conn_id;
  if (op.kind === 'ssh.forward') r.direction = op.direction;
  if (outcome.error !== undefined) r.error = outcome.error;
  if (outcome.exit_code !== undefined) r.exit_code = outcome.exit_code;
  if (op.kind === 'ssh.forward') r.host = op.host;
  if (op.kind === 'ssh.sftp' && op.mode !== undefined) r.mode = op.mode;
  if (op.kind === 'ssh.request' && op.name !== undefined) r.name = op.name;
  if (op.kind === 'ssh.sftp') {
    r.op = op.op;
    r.path = op.path;
  }
  if (op.kind === 'ssh.forward') r.port = op.port;
  if (outcome.recording !== undefined) r.recording = outcome.recording;
  if (op.kind === 'ssh.request') r.request = op.request;
  if (rule !== undefined) r.rule = rule;
  if (outcome.signal !== undefined) r.signal = outcome.signal;
  if (op.kind === 'ssh.sftp' && op.target_path !== undefined) r.target_path = op.target_path;
  if (op.kind === 'ssh.shell' && op.term !== undefined) r.term = op.term;
  r.type = op.kind;
  return r;
}

function k8sRecord(
  ctx: OperationContext,
  op: K8sRequestOperation,
  rule: string | undefined,
  outcome: OperationOutcome,
): K8sRequestRecord {
  // keys in sorted order (canonical JSON without sorting)
  const r: K8sRequestRecord = { api_group: op.apiGroup };
  if (op.apiVersion !== undefined) r.api_version = op.apiVersion;
  const st = outcome.stream;
  if (st?.asciicast !== undefined) r.asciicast = st.asciicast;
  if (st?.asciicast_truncated) r.asciicast_truncated = true;
  if (op.command !== undefined) r.command = op.command;
  r.conn_id = ctx.conn_id;
  if (op.container !== undefined) r.container = op.container;
  if (st?.ended !== undefined) r.ended = st.ended;
  if (st?.error !== undefined) r.error = st.error;
  if (outcome.exit_code !== undefined) r.exit_code = outcome.exit_code;
  if (op.name !== undefined) r.name = op.name;
  if (op.namespace !== undefined) r.namespace = op.namespace;
  r.path = op.path;
  if (op.ports !== undefined) r.ports = op.ports;
  if (st?.protocol !== undefined) r.protocol = st.protocol;
  if (op.resource !== undefined) r.resource = op.resource;
  if (rule !== undefined) r.rule = rule;
  if (outcome.status !== undefined) r.status = outcome.status;
  if (st?.stderr_bytes !== undefined) r.stderr_bytes = st.stderr_bytes;
  if (st?.stdin_bytes !== undefined) r.stdin_bytes = st.stdin_bytes;
  if (st?.stdout_bytes !== undefined) r.stdout_bytes = st.stdout_bytes;
  if (op.subresource !== undefined) r.subresource = op.subresource;
  if (st?.transport !== undefined) r.transport = st.transport;
  if (op.tty !== undefined) r.tty = op.tty;
  r.verb = op.verb;
  return r;
}
