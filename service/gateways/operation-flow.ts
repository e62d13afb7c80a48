// decide → act → record, the flow every gateway's operations go through (DESIGN.md "One flow"):
// - a Decision of `hold` goes to an Approver (approve / deny / timeout); until the approvals work
//   lands the default approver refuses, with the reason the gateways gave before;
// - a refusal is recorded durably BEFORE the client hears of it (no unrecorded denial);
// - an allowed operation is recorded when it completes, in the background (nobody waits for the
//   store), with a bounded backlog: above HIGH events not yet durable the gateway stops reading its
//   client until LOW (memory stays bounded when the store is slow); a recording failure ends the
//   connection (no unrecorded work).
// - with `recording: before_forward` (PostgreSQL targets), an allowed statement's event is recorded
//   durably BEFORE it is forwarded (`forwarding`), like a refusal, and its outcome follows in the
//   background (`resulted`: pg.statement.result); a failure to record it ends the connection with the
//   statement unsent.
// Events are built by audit/operation-events.ts, typed by operation kind. One flow per connection.
import type { Settle } from '../audit/recorder.js';
import type { BrokerEvent, ConnectionClosedRecord, ConnectionOpenedRecord } from '../audit/event.js';
import {
  allowedEvent,
  connectionClosedEvent,
  connectionDesyncEvent,
  connectionOpenedEvent,
  deniedEvent,
  type GatewayName,
  pgResultEvent,
  type OperationContext,
  type OperationOutcome,
} from '../audit/operation-events.js';
import type { PendingApproval } from '../approvals/types.js';
import type { AllowDecision, Decision, DenyDecision, HoldDecision } from '../policy/decision.js';
import type { Operation, PgOperation } from '../policy/operation.js';

/** Where a flow's events go (the session's transcript, through the recorder). */
export interface EventSink {
  /** resolves once durable; `immediate`: a statement waits for it (RecordOptions.immediate) */
  record(event: BrokerEvent, opts?: { immediate?: boolean }): Promise<void>;
  /** nobody waits: `done(null, seq)` once durable, `done(err, 0)` if it will not be */
  recordBackground(event: BrokerEvent, done: Settle): void;
}

/** An operation held for approval. */
export interface HoldRequest {
  session_id: string;
  target: string;
  conn_id: string;
  operation: Operation;
  decision: HoldDecision;
  /** aborted when the wait must end without an answer (the session was revoked, the client left) */
  signal: AbortSignal;
  /** SHA-256 (hex) of the exact operation as the client sent it (pg: the message body); default: of its summary */
  operation_sha256?: string;
  /** what is held, as the transcript shows it (redacted); default: from the operation */
  summary?: string;
  /**
   * pg: every statement of the held message, unredacted (never logged or shown): an approval releases the
   * whole message, so whatever approves without a human (reviewed migrations) must match each of them
   */
  statement_sources?: string[];
  /** the hold began (it is stored, and channels were told): the gateway may tell its client where to approve */
  onHeld?(approval: PendingApproval, links: ApprovalLinks): void;
  /** a channel showed the hold on a page (the GitHub check run): the gateway may tell its client that URL */
  onShown?(approval: PendingApproval, shown: { channel: string; url: string }): void;
}

/** Where a hold can be decided. */
export interface ApprovalLinks {
  /** POST here with {decision, reason} */
  api: string;
  /** the CLI command that approves it */
  cli: string;
}

/** What a gateway adds to a hold it passes to settle(). */
export type HoldExtras = Pick<
  HoldRequest,
  'operation_sha256' | 'summary' | 'statement_sources' | 'onHeld' | 'onShown'
>;

export interface ApprovalOutcome {
  decision: 'approve' | 'deny' | 'timeout';
  /** who decided (absent for the built-in refusal and for timeouts) */
  by?: string;
  reason?: string;
  /** the approval that decided it (absent for the built-in refusal) */
  approval_id?: string;
}

/** Decides held operations (the approvals work implements it: GitHub App, API/CLI). */
export interface Approver {
  request(hold: HoldRequest): Promise<ApprovalOutcome>;
}

/** The approver until approvals exist: every hold is refused, saying so. */
export function holdsUnsupported(gateway: string): Approver {
  const reason = `approval holds are not supported by ${gateway}`;
  return { request: () => Promise.resolve({ decision: 'deny', reason }) };
}

/** Transcript events not yet durable, per connection, above which the client is not read (see file comment). */
export const RECORD_BACKLOG_HIGH = 2000;
export const RECORD_BACKLOG_LOW = 500;

export interface FlowOptions {
  sessionId: string;
  target: string;
  connId: string;
  gateway: GatewayName;
  sink: EventSink;
  /** default: holdsUnsupported('this gateway') */
  approver?: Approver;
  /** aborted when the connection ends: a pending approval is abandoned */
  signal?: AbortSignal;
  /** count a decided operation (metrics) */
  count?(decision: 'allow' | 'deny'): void;
  /** recording failed: the gateway must end the connection */
  onRecordFailed(err: unknown): void;
  /** the backlog fell to LOW: the gateway may read its client again */
  onBacklogDrained?(): void;
  backlog?: { high: number; low: number };
}

/** The outcome of perform(): done, or refused with the decision that said so. */
export type Performed =
  | { allowed: true; decision: AllowDecision; outcome: OperationOutcome }
  | { allowed: false; decision: DenyDecision };

export class OperationFlow {
  readonly #o: FlowOptions;
  readonly #ctx: OperationContext;
  readonly #approver: Approver;
  readonly #high: number;
  readonly #low: number;
  #queue: BrokerEvent[] = [];
  #flushScheduled = false;
  /** the gateway is inside a batch (beginBatch): queued events go out at endBatch */
  #batching = false;
  #inFlight = 0;

  constructor(options: FlowOptions) {
    this.#o = options;
    this.#ctx = { target: options.target, conn_id: options.connId };
    this.#approver = options.approver ?? holdsUnsupported('this gateway');
    this.#high = options.backlog?.high ?? RECORD_BACKLOG_HIGH;
    this.#low = options.backlog?.low ?? RECORD_BACKLOG_LOW;
  }

  /**
   * A Decision the gateway can act on: allow and deny as they are; a hold goes to the approver and
   * comes back as an allow (approved) or a deny (refused, timed out, abandoned), with its reasons.
   */
  settle(
    op: Operation,
    decision: Decision,
    extras?: HoldExtras,
  ): AllowDecision | DenyDecision | Promise<AllowDecision | DenyDecision> {
    if (decision.effect !== 'hold') return decision;
    return this.#askApprover(op, decision, extras);
  }

  async #askApprover(
    op: Operation,
    hold: HoldDecision,
    extras?: HoldExtras,
  ): Promise<AllowDecision | DenyDecision> {
    const signal = this.#o.signal ?? new AbortController().signal;
    let outcome: ApprovalOutcome;
    try {
      outcome = await this.#approver.request({
        session_id: this.#o.sessionId,
        target: this.#o.target,
        conn_id: this.#o.connId,
        operation: op,
        decision: hold,
        signal,
        ...extras,
      });
    } catch (err) {
      outcome = { decision: 'deny', reason: `the approval could not be obtained: ${(err as Error).message}` };
    }
    const rule = hold.rule ?? 'hold';
    if (outcome.decision === 'approve')
      return {
        effect: 'allow',
        rule,
        reasons: [...hold.reasons, outcome.reason ?? `approved${outcome.by ? ` by ${outcome.by}` : ''}`],
      };
    const why =
      outcome.reason ??
      (outcome.decision === 'timeout'
        ? 'no approval came in time'
        : `refused${outcome.by ? ` by ${outcome.by}` : ''}`);
    return { effect: 'deny', rule, reasons: [...hold.reasons, why] };
  }

  /**
   * Record a refusal, durably, before the gateway answers the client (events of operations that
   * completed earlier go to the recorder first, keeping the transcript in order). false: recording
   * failed, onRecordFailed was called, and the client must not be answered as if it had been recorded.
   */
  async refuse(op: Operation, decision: Pick<Decision, 'rule' | 'reasons'>): Promise<boolean> {
    this.#o.count?.('deny');
    try {
      this.flush();
      await this.#o.sink.record(deniedEvent(this.#ctx, op, decision));
      return true;
    } catch (err) {
      this.#o.onRecordFailed(err);
      return false;
    }
  }

  /**
   * An allowed operation completed: its event is queued and handed to the recorder after the current
   * batch (or right after this I/O round), never awaited.
   */
  completed(op: Operation, reasons: string[], outcome: OperationOutcome): void {
    this.#o.count?.('allow');
    this.#queue.push(allowedEvent(this.#ctx, op, reasons, outcome));
    if (!this.#batching && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /**
   * recording: before_forward — an allowed operation's event, durable before the gateway forwards it
   * (events queued before it go to the recorder first, keeping the transcript in order). Several
   * statements of one message are recorded together (one commit). false: recording failed,
   * onRecordFailed was called, and nothing may be forwarded.
   */
  async forwarding(ops: readonly { op: Operation; reasons: string[] }[]): Promise<boolean> {
    try {
      this.flush();
      const recorded: Promise<void>[] = [];
      for (const { op, reasons } of ops) {
        this.#o.count?.('allow');
        recorded.push(this.#o.sink.record(allowedEvent(this.#ctx, op, reasons, {}), { immediate: true }));
      }
      await Promise.all(recorded);
      return true;
    } catch (err) {
      this.#o.onRecordFailed(err);
      return false;
    }
  }

  /** The outcome of an operation recorded by forwarding(): queued like completed(). */
  resulted(op: PgOperation, outcome: OperationOutcome): void {
    this.#queue.push(pgResultEvent(this.#ctx, op, outcome));
    if (!this.#batching && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Operations completing from now until endBatch are handed to the recorder together, at endBatch. */
  beginBatch(): void {
    this.#batching = true;
  }

  endBatch(): void {
    this.#batching = false;
    if (this.#queue.length > 0) this.flush();
  }

  /** Hand queued events to the recorder, in order. */
  flush = (): void => {
    this.#flushScheduled = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    for (const ev of queue) {
      this.#inFlight++;
      this.#o.sink.recordBackground(ev, this.#settled);
    }
  };

  #settled = (err: unknown): void => {
    if (err !== null) {
      this.#o.onRecordFailed(err);
      return;
    }
    this.#inFlight--;
    if (this.#inFlight === this.#low) this.#o.onBacklogDrained?.();
  };

  /** Too many events not yet durable: the gateway should stop taking operations until onBacklogDrained. */
  backlogFull(): boolean {
    return this.#inFlight + this.#queue.length > this.#high;
  }

  /**
   * The whole flow for a gateway whose operations are one request and one answer (an ssh exec, a
   * Kubernetes request): settle the decision, refuse (recorded first) or act and record the outcome.
   * A refusal whose recording failed resolves as refused (onRecordFailed has ended the connection).
   */
  async perform(
    op: Operation,
    decision: Decision,
    act: (decision: AllowDecision) => Promise<OperationOutcome>,
  ): Promise<Performed> {
    const settled = await this.settle(op, decision);
    if (settled.effect === 'deny') {
      await this.refuse(op, settled);
      return { allowed: false, decision: settled };
    }
    const outcome = await act(settled);
    this.completed(op, settled.reasons, outcome);
    return { allowed: true, decision: settled, outcome };
  }

  /**
   * The protocol model and the server disagreed (the gateway then closes the connection): queued like
   * a completed operation, so it follows them in the transcript.
   */
  desynced(reason: string): void {
    this.#queue.push(connectionDesyncEvent(this.#o.target, this.#o.connId, reason));
  }

  /** The connection is open: recorded durably before the client is told. */
  connectionOpened(record: ConnectionOpenedRecord): Promise<void> {
    return this.#o.sink.record(connectionOpenedEvent(this.#o.gateway, this.#o.target, record));
  }

  /** The connection closed: recorded in the background; `failed` hears of a failure (to log it). */
  connectionClosed(record: ConnectionClosedRecord, durationMs: number, failed: (err: unknown) => void): void {
    this.#o.sink.recordBackground(
      connectionClosedEvent(this.#o.gateway, this.#o.target, record, durationMs),
      (err) => {
        if (err !== null) failed(err);
      },
    );
  }
}
