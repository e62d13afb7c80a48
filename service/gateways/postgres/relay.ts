// The ready phase of one client connection: every client message is checked against the policy
// before it reaches the database; every upstream message is relayed, raw when nothing needs to
// change, rewritten when masking applies.
//
// Ordering. Upstream answers arrive in the order of the messages the broker forwarded, so a FIFO of
// "what answer is expected next" attributes each response to its statement (for masking plans and
// for the transcript). A denied statement is never answered locally: the broker forwards a sentinel
// statement that fails to parse in its place and replaces the upstream's error with its own. The
// database therefore goes through exactly the states a real error would cause (an aborted
// transaction block stays aborted, an extended-protocol batch is skipped until Sync, an implicit
// transaction is rolled back), and responses keep their order without local buffering.
//
// Size (over 600 lines, on purpose): this is the byte pump of both directions with its backpressure
// and the extended-protocol bookkeeping of what each reply answers; they share one set of state (the
// reply queue, portals, busy flags) that splitting would only spread. The other jobs are beside it:
// relay/statement-gate.ts (judging client SQL), relay/result-masking.ts (rewriting results),
// reply-queue.ts (the protocol model), and the flow (gateways/operation-flow.ts: recording).

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import type { Logger } from 'pino';
import type { Grant } from '../../config/schema.js';
import type { PgOperation } from '../../policy/operation.js';
import type { ClassifiedStatement } from '../../policy/sql/types.js';
import type { OperationFlow } from '../operation-flow.js';
import { type BackendError, fatal, SQLSTATE } from './backend-error.js';
import {
  BackendType,
  errorResponse,
  isFatalError,
  readCommandTag,
  readNoticeFields,
  readRowDescription,
  rowsFromCommandTag,
} from './backend-messages.js';
import type { CatalogResolver } from './catalog/resolver.js';
import type { ClassificationCache } from './classification-cache.js';
import type { GatewayLimits } from './deps.js';
import { decodeBind, decodeDescribeOrClose, decodeExecute } from './frontend-messages.js';
import {
  type FrontendMessage,
  type FrontendReader,
  FrontendType,
  LARGE_FRONTEND_TYPES,
} from './frontend-reader.js';
import type { BufferBudget } from './limits.js';
import {
  type CopyOutState,
  DROP,
  FORWARD,
  type Pending,
  type PortalInfo,
  type RowMasker,
  type StatementRun,
} from './relay/pending.js';
import { ResultMasking } from './relay/result-masking.js';
import { StatementGate, statementOp } from './relay/statement-gate.js';
import { ASYNC, isDisagreement, ReplyQueue } from './reply-queue.js';
import { reportedSettingProblem } from './startup-params.js';

export interface RelayContext {
  logger: Logger;
  grant: Grant;
  targetName: string;
  connId: string;
  catalog: CatalogResolver;
  limits: GatewayLimits;
  /**
   * decide → act → record: settles holds, records denials before they are answered and completed
   * statements in the background (its onRecordFailed must call recordFailed, its onBacklogDrained
   * resumeClient)
   */
  flow: OperationFlow;
  /**
   * the target's `recording: before_forward`: every statement's event is durable before the statement
   * is forwarded (the flow's forwarding); its outcome follows as pg.statement.result
   */
  recordBeforeForward: boolean;
  /** classification with a cache for repeated read statements (shared by the gateway's connections) */
  classifier: ClassificationCache;
  /** bytes of unfinished messages held across the gateway's connections */
  buffers: BufferBudget;
  /** count a refusal by a broker-wide limit (metrics) */
  countLimit(limit: string): void;
}

type Duplex = Socket | TLSSocket;

export class Relay {
  /** what the server will answer next, as PostgreSQL's protocol rules say (reply-queue.ts) */
  private readonly queue = new ReplyQueue<Pending>((p) => this.onDiscarded(p));
  /** prepared statements by name: protocol Parse and SQL PREPARE share one namespace */
  private readonly prepared = new Map<string, ClassifiedStatement>();
  private portals = new Map<string, PortalInfo>();
  /** after a denied extended-protocol message: drop client messages until Sync, as PostgreSQL does */
  private skippingUntilSync = false;
  private clientBusy = false;
  private upstreamBusy = false;
  private upstreamStash: Buffer | null = null;
  /** bytes of a pass-through frame still to forward as they arrive (large DataRow/CopyData) */
  private passRemaining = 0;
  private closed = false;
  private midMessageTimer: NodeJS.Timeout | null = null;
  /**
   * This session ran DDL in the transaction block it is still in. Reading view lineage would then wait
   * for the locks that DDL holds (pg_get_viewdef and describing lock the tables a view reads), so until
   * the block ends the session keeps the lineage it had: under its column masks its own DDL cannot have
   * opened a new way to a masked column (a view over one, a rename, an ATTACH is refused), and other
   * sessions' changes show through result descriptions (see untraced) or after the block.
   */
  private ddlInTransaction = false;
  /** result masking: plans, and the rewriting of rows, COPY output, notices (relay/result-masking.ts) */
  private readonly results: ResultMasking;
  private readonly masking: boolean;
  /** the statement gate: Query, Parse and FunctionCall judged, forwarded or refused (relay/statement-gate.ts) */
  private readonly gate: StatementGate;

  constructor(
    private readonly ctx: RelayContext,
    private readonly client: Duplex,
    private readonly reader: FrontendReader,
    private readonly upstream: Duplex,
    private readonly onEnd: (why: string) => void,
  ) {
    this.results = new ResultMasking(ctx.grant.mask ?? [], {
      catalog: ctx.catalog,
      logger: ctx.logger,
      fail: (err, why) => this.terminate(err, why),
      retrace: async () => this.gate.applyViews(await ctx.catalog.loadViews(true)),
    });
    this.masking = this.results.active;
    this.gate = new StatementGate(ctx, this.results, {
      prepared: this.prepared,
      isClosed: () => this.closed,
      inExtendedBatch: () => this.queue.inExtendedBatch,
      ddlInTransaction: () => this.ddlInTransaction,
      forgetNamedPortals: (keep) => this.forgetNamedPortals(keep),
      forward: (msg) => this.forward(msg),
      inject: (data) => this.inject(data),
      push: (p) => this.push(p),
      newRun: (stmt, protocol, reasons, op) => this.newRun(stmt, protocol, reasons, op),
      handleAgain: (msg) => this.handleFrontend(msg),
      skipUntilSync: () => {
        this.skippingUntilSync = true;
      },
      notifyClient: (data) => this.notifyClient(data),
    });
  }

  start(upstreamLeftover: Buffer): void {
    this.client.on('data', this.onClientData);
    this.upstream.on('data', this.onUpstreamData);
    this.client.on('drain', this.onClientDrain);
    this.upstream.on('drain', this.onUpstreamDrain);
    this.client.resume();
    this.upstream.resume();
    if (upstreamLeftover.length) this.onUpstreamData(upstreamLeftover);
    if (this.reader.buffered > 0) this.processClient();
  }

  /** Close both sides; with an error, the client gets it as a FATAL ErrorResponse first. */
  terminate(err: BackendError | null, why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.flow.flush();
    this.clearMidMessageTimer();
    this.ctx.buffers.release(this);
    this.upstream.destroy();
    if (err && !this.client.destroyed) {
      this.client.uncork();
      this.client.end(errorResponse(err));
      // A client not reading must not keep the socket open: the error was our best effort.
      setTimeout(() => this.client.destroy(), 500).unref();
    } else {
      this.client.destroy();
    }
    this.onEnd(why);
  }

  /**
   * The database closed the connection (after a FATAL error, typically): what it sent before is
   * relayed first, even while a catalog reading holds processing, then the client's side is ended.
   */
  upstreamClosed(): void {
    if (this.closed) return;
    this.upstreamGone = true;
    if (!this.upstreamBusy) this.endAfterUpstream();
  }

  private upstreamGone = false;

  private endAfterUpstream(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.flow.flush();
    this.clearMidMessageTimer();
    this.ctx.buffers.release(this);
    this.client.uncork();
    this.client.end();
    setTimeout(() => this.client.destroy(), 500).unref();
    this.onEnd('upstream closed');
  }

  isClosed(): boolean {
    return this.closed;
  }

  /** Answers still expected from the upstream (a statement may be running there). */
  hasPendingWork(): boolean {
    return this.queue.pending;
  }

  // ───────────────────────────── client → upstream ─────────────────────────────

  private onClientData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    if (!this.holdBuffered()) {
      this.ctx.countLimit('unfinished_message_bytes');
      this.terminate(
        fatal(
          SQLSTATE.outOfMemory,
          `hoop: the broker holds its limit of unfinished message bytes across connections (limits.unfinished_message_bytes, ${Math.round(this.ctx.buffers.max / 1048576)} MiB); the connection was closed`,
        ),
        'unfinished message bytes limit',
      );
      return;
    }
    this.processClient();
  };

  private onUpstreamDrain = (): void => {
    this.resumeClient();
  };

  private processClient(): void {
    if (this.clientBusy || this.closed) return;
    let progressed = false;
    try {
      for (;;) {
        const r = this.reader.readMessage({
          largeTypes: LARGE_FRONTEND_TYPES,
          largeMax: this.ctx.limits.maxQueryMessageBytes,
          otherMax: this.ctx.limits.maxOtherMessageBytes,
        });
        if (r.kind === 'incomplete') break;
        if (r.kind === 'invalid') {
          this.protocolViolation(r.message);
          return;
        }
        progressed = true;
        const wait = this.handleFrontend(r.value);
        if (this.closed) return;
        if (wait) {
          this.clientBusy = true;
          this.client.pause();
          // the client is not stalled while the broker waits (an approval may take minutes)
          this.clearMidMessageTimer();
          wait.then(
            () => {
              this.clientBusy = false;
              if (this.closed) return;
              this.processClient();
              this.resumeClient();
            },
            (err: unknown) => this.internalError(err),
          );
          return;
        }
      }
    } finally {
      if (!this.closed) {
        this.flushForward();
        this.holdBuffered();
      }
    }
    if (this.upstream.writableNeedDrain || this.ctx.flow.backlogFull()) this.client.pause();
    this.armMidMessageTimer(progressed);
  }

  /**
   * A message in progress must arrive whole within the limit of its start: the deadline restarts only
   * when a message was completed (more bytes of the same message do not extend it).
   */
  /** bytes this connection has in the gateway's budget (the common case, 0 before and after, costs nothing) */
  private heldBytes = 0;

  private holdBuffered(): boolean {
    const bytes = this.reader.buffered;
    if (bytes === this.heldBytes) return true;
    if (!this.ctx.buffers.hold(this, bytes)) return false;
    this.heldBytes = bytes;
    return true;
  }

  private armMidMessageTimer(progressed: boolean): void {
    if (this.reader.buffered > 0) {
      if (this.midMessageTimer) {
        if (progressed) this.midMessageTimer.refresh();
      } else {
        this.midMessageTimer = setTimeout(() => {
          this.terminate(
            fatal(
              SQLSTATE.protocolViolation,
              `hoop: incomplete message not finished within ${this.ctx.limits.midMessageTimeoutMs} ms`,
            ),
            'client stalled mid-message',
          );
        }, this.ctx.limits.midMessageTimeoutMs);
        this.midMessageTimer.unref();
      }
    } else {
      this.clearMidMessageTimer();
    }
  }

  private clearMidMessageTimer(): void {
    if (this.midMessageTimer) clearTimeout(this.midMessageTimer);
    this.midMessageTimer = null;
  }

  private protocolViolation(message: string): void {
    this.terminate(fatal(SQLSTATE.protocolViolation, `hoop: ${message}`), `protocol violation: ${message}`);
  }

  private internalError(err: unknown): void {
    this.ctx.logger.error({ err }, 'pg relay: internal error');
    this.terminate(
      fatal(SQLSTATE.internalError, 'hoop: internal error in the broker; the connection was closed'),
      'internal error',
    );
  }

  /** Client bytes to forward, coalesced: consecutive messages of one chunk go out as one write. */
  private outRun: Buffer | null = null;

  private forward(msg: FrontendMessage): void {
    const raw = msg.raw;
    const run = this.outRun;
    if (run && run.buffer === raw.buffer && run.byteOffset + run.length === raw.byteOffset) {
      this.outRun = Buffer.from(run.buffer, run.byteOffset, run.length + raw.length);
    } else {
      if (run) this.upstream.write(run);
      this.outRun = raw;
    }
  }

  /** Write to the upstream something of the broker's own, after whatever client bytes are pending. */
  private inject(data: Buffer): void {
    this.flushForward();
    this.upstream.write(data);
  }

  private flushForward(): void {
    if (this.outRun) {
      this.upstream.write(this.outRun);
      this.outRun = null;
    }
  }

  private push(p: Pending): void {
    this.queue.push(p);
  }

  /** The server read a forwarded message and dropped it (after an error, or failing a COPY): no reply comes. */
  private onDiscarded(p: Pending): void {
    if (p.kind === 'parse') this.revertParse(p);
    // skipped upstream: that portal is still undescribed (a later Execute must describe it again)
    else if (p.kind === 'describe-portal') p.portal.describeSent = false;
    else if (p.kind === 'copy-describe') p.done(null);
  }

  /** Returns a promise when processing must wait (recording a denial) before the next message. */
  private handleFrontend(msg: FrontendMessage): Promise<void> | undefined {
    switch (msg.type) {
      case FrontendType.query:
        if (this.skippingUntilSync) return;
        return this.gate.onQuery(msg);
      case FrontendType.parse:
        if (this.skippingUntilSync) return;
        return this.gate.onParse(msg);
      case FrontendType.bind: {
        if (this.skippingUntilSync) return;
        const b = decodeBind(msg.body);
        if (!b) return this.gate.malformed('invalid Bind message format', false);
        const held = this.gate.bindHold(msg, b.statement);
        if (held) return held;
        const portal: PortalInfo = {
          name: b.portal,
          statement: this.prepared.get(b.statement) ?? null,
          describeSent: false,
          masker: null,
        };
        this.portals.set(b.portal, portal);
        this.forward(msg);
        this.push({ kind: 'bind' });
        return;
      }
      case FrontendType.describe: {
        if (this.skippingUntilSync) return;
        const d = decodeDescribeOrClose(msg.body);
        if (!d) return this.gate.malformed('invalid Describe message format', false);
        if (d.target === 'S') this.push({ kind: 'describe-statement' });
        else {
          const portal = this.portalFor(d.name);
          portal.describeSent = true;
          this.push({ kind: 'describe-portal', portal, injected: false });
        }
        this.forward(msg);
        return;
      }
      case FrontendType.execute: {
        if (this.skippingUntilSync) return;
        const e = decodeExecute(msg.body);
        if (!e) return this.gate.malformed('invalid Execute message format', false);
        const portal = this.portalFor(e.portal);
        if (this.masking && !portal.describeSent) {
          // The client did not ask for the row description; the broker needs it to mask.
          this.inject(serialize.describe({ type: 'P', name: e.portal }));
          portal.describeSent = true;
          this.push({ kind: 'describe-portal', portal, injected: true });
        }
        const stmt = portal.statement;
        if (
          stmt?.kinds.some((k) => k.startsWith('DECLARE') || k.startsWith('CLOSE') || k.startsWith('DISCARD'))
        ) {
          this.forgetNamedPortals(e.portal);
        }
        return this.gate.recordThenForward([statementOp(stmt, 'extended')], () => {
          this.forward(msg);
          this.push({ kind: 'execute', portal, run: this.newRun(stmt, 'extended', []), copyOut: null });
        });
      }
      case FrontendType.close: {
        if (this.skippingUntilSync) return;
        const c = decodeDescribeOrClose(msg.body);
        if (!c) return this.gate.malformed('invalid Close message format', false);
        if (c.target === 'S') {
          this.prepared.delete(c.name);
          this.gate.forgetStatement(c.name);
        } else this.portals.delete(c.name);
        this.forward(msg);
        this.push({ kind: 'close' });
        return;
      }
      case FrontendType.sync:
        this.skippingUntilSync = false;
        this.forward(msg);
        this.push({ kind: 'sync' });
        return;
      case FrontendType.flush:
        if (!this.skippingUntilSync) this.forward(msg);
        return;
      case FrontendType.functionCall:
        if (this.skippingUntilSync) return;
        return this.gate.onFunctionCall(msg);
      case FrontendType.copyData:
      case FrontendType.copyDone:
      case FrontendType.copyFail:
        if (this.skippingUntilSync) return;
        this.forward(msg);
        this.queue.copyMessage(msg.type !== FrontendType.copyData);
        return;
      case FrontendType.terminate:
        this.closed = true;
        this.clearMidMessageTimer();
        this.ctx.buffers.release(this);
        this.ctx.flow.flush();
        this.flushForward();
        this.upstream.end(msg.raw);
        this.client.end();
        this.onEnd('client terminated');
        return;
      default:
        return this.violation(
          `unexpected message type "${String.fromCharCode(msg.type)}" after authentication`,
        );
    }
  }

  private violation(message: string): undefined {
    this.protocolViolation(message);
    return undefined;
  }

  private portalFor(name: string): PortalInfo {
    let p = this.portals.get(name);
    if (!p) {
      // A portal the broker did not see bound (a SQL cursor): nothing is known about it.
      p = { name, statement: null, describeSent: false, masker: null };
      this.portals.set(name, p);
    }
    return p;
  }

  /** SQL DECLARE/CLOSE can replace a named portal behind the protocol's back: forget what we knew. */
  private forgetNamedPortals(keep?: string): void {
    // the common case (a simple query, no cursor open): nothing to forget, nothing to allocate
    if (this.portals.size === 0 || (this.portals.size === 1 && this.portals.has(''))) return;
    const next = new Map<string, PortalInfo>();
    for (const [name, p] of this.portals) if (name === '' || name === keep) next.set(name, p);
    this.portals = next;
  }

  private newRun(
    stmt: ClassifiedStatement | null,
    protocol: 'simple' | 'extended',
    reasons: string[],
    op: PgOperation = statementOp(stmt, protocol),
  ): StatementRun {
    return {
      op,
      stmt,
      protocol: op.kind === 'pg.function_call' ? 'function-call' : protocol,
      reasons,
      recorded: this.ctx.recordBeforeForward,
      startedAt: performance.now(),
      bytes: 0,
      masked: 0,
    };
  }

  /** The recorder caught up (the flow's onBacklogDrained), or the upstream drained: read the client again. */
  resumeClient(): void {
    if (this.clientBusy || this.closed || this.upstream.writableNeedDrain || this.ctx.flow.backlogFull())
      return;
    this.client.resume();
  }

  /** A transcript event could not be recorded (the flow's onRecordFailed): no unrecorded work, so close. */
  recordFailed(err: unknown): void {
    this.ctx.logger.error({ err }, 'pg relay: could not record a transcript event; closing the connection');
    this.terminate(
      fatal(
        SQLSTATE.internalError,
        'hoop: the session transcript could not be recorded; the connection was closed',
      ),
      'recording failed',
    );
  }

  // ───────────────────────────── upstream → client ─────────────────────────────

  private onClientDrain = (): void => {
    if (!this.upstreamBusy && !this.closed) this.upstream.resume();
  };

  private onUpstreamData = (chunk: Buffer): void => {
    if (this.closed) return;
    if (this.upstreamStash) {
      chunk = Buffer.concat([this.upstreamStash, chunk]);
      this.upstreamStash = null;
    }
    if (this.upstreamBusy) {
      this.upstreamStash = chunk;
      return;
    }
    this.processUpstream(chunk, 0);
  };

  private head(): Pending | undefined {
    return this.queue.head;
  }

  /** the row masker for DataRows arriving now, or null when rows pass untouched */
  private currentMasker(): RowMasker | null {
    const h = this.head();
    if (!h) return null;
    if (h.kind === 'simple') return h.masker;
    if (h.kind === 'execute') return h.portal.masker;
    return null;
  }

  private currentRun(): StatementRun | null {
    const h = this.head();
    if (!h) return null;
    if (h.kind === 'simple') return h.run;
    if (h.kind === 'execute') return h.run;
    return null;
  }

  private currentCopyOut(): CopyOutState | null {
    const h = this.head();
    if (!h) return null;
    if (h.kind === 'simple' || h.kind === 'execute') return h.copyOut;
    return null;
  }

  private waitFor: Promise<void> | null = null;

  private processUpstream(buf: Buffer, start: number): void {
    // Pieces to send, in order; one piece (the common case: the chunk as it came) is one write,
    // several go out corked as one writev.
    const outs: Buffer[] = [];
    let pos = start;
    let runStart = pos;
    this.ctx.flow.beginBatch();
    try {
      if (this.passRemaining > 0) {
        const n = Math.min(this.passRemaining, buf.length - pos);
        this.passRemaining -= n;
        pos += n;
        if (this.passRemaining > 0) {
          outs.push(buf.subarray(runStart, pos));
          return;
        }
        if (this.notices.length > 0) {
          outs.push(buf.subarray(runStart, pos), ...this.notices);
          this.notices = [];
          runStart = pos;
        }
      }
      const len = buf.length;
      while (len - pos >= 5) {
        const type = buf[pos]!;
        const end = pos + 1 + buf.readInt32BE(pos + 1);
        // Hot path: rows nobody needs to look at go through untouched, even when split across reads.
        if (
          (type === BackendType.dataRow && this.queue.rowsExpected && !this.rowsNeedMasking()) ||
          (type === BackendType.copyData && this.queue.copyOutActive && !this.currentCopyOut())
        ) {
          const run = this.currentRun();
          if (run) run.bytes += end - pos;
          if (end > len) {
            this.passRemaining = end - len;
            pos = len;
            break;
          }
          pos = end;
          continue;
        }
        if (end > len) break;
        if (type === BackendType.copyData && this.queue.copyOutActive) {
          // a masked COPY TO: every whole CopyData of this chunk at once, into one buffer
          const copyOut = this.currentCopyOut();
          if (copyOut?.masker) {
            const r = this.results.maskCopyRun(copyOut, this.currentRun(), buf, pos, len);
            if (this.closed) return;
            if (r.end > pos) {
              if (r.out !== null) {
                if (pos > runStart) outs.push(buf.subarray(runStart, pos));
                outs.push(r.out as Buffer);
                runStart = r.end;
              }
              pos = r.end;
              continue;
            }
          }
        }
        const out = this.handleBackend(type, buf, pos, end);
        if (this.closed) return;
        if (out !== FORWARD) {
          if (pos > runStart) outs.push(buf.subarray(runStart, pos));
          if (typeof out !== 'number') outs.push(out);
          runStart = end;
        }
        pos = end;
        if (this.waitFor) {
          const wait = this.waitFor;
          this.waitFor = null;
          if (pos > runStart) outs.push(buf.subarray(runStart, pos));
          runStart = pos;
          this.upstreamBusy = true;
          this.upstream.pause();
          const rest = buf.subarray(pos);
          wait.then(
            () => {
              this.upstreamBusy = false;
              if (this.closed) return;
              const more = this.upstreamStash;
              this.upstreamStash = null;
              this.processUpstream(more ? Buffer.concat([rest, more]) : rest, 0);
              if (!this.upstreamBusy && !this.client.writableNeedDrain) this.upstream.resume();
            },
            (err: unknown) => this.maskingFailed(err),
          );
          return;
        }
      }
      if (pos > runStart) outs.push(buf.subarray(runStart, pos));
      if (pos < len) this.upstreamStash = Buffer.from(buf.subarray(pos));
    } finally {
      if (!this.closed) this.send(outs);
      // the statements this chunk completed, recorded once their answers are on their way
      this.ctx.flow.endBatch();
    }
    if (this.upstreamGone && !this.upstreamBusy) this.endAfterUpstream();
    else if (this.client.writableNeedDrain) this.upstream.pause();
  }

  /** Messages of the broker's own for the client, waiting for the end of a frame being passed through. */
  private notices: Buffer[] = [];

  /** A NoticeResponse now, or after the server message being passed through, never inside one. */
  private notifyClient(data: Buffer): void {
    if (this.closed) return;
    if (this.passRemaining > 0) this.notices.push(data);
    else this.client.write(data);
  }

  private send(outs: Buffer[]): void {
    if (outs.length === 1) {
      this.client.write(outs[0]!);
    } else if (outs.length > 4) {
      // a chunk of masked rows: hundreds of pieces, each a stream write of its own when corked;
      // one copy into one buffer costs far less than that
      this.client.write(Buffer.concat(outs));
    } else if (outs.length > 1) {
      this.client.cork();
      for (const b of outs) this.client.write(b);
      this.client.uncork();
    }
  }

  /** true when DataRows must go through maskDataRow: an active plan, or (fail closed) no plan at all */
  private rowsNeedMasking(): boolean {
    return this.masking && this.results.rowsNeedMasking(this.currentMasker());
  }

  private maskingFailed(err: unknown): void {
    this.ctx.logger.error(
      { err },
      'pg relay: could not resolve column origins for masking; closing the connection',
    );
    this.terminate(
      fatal(
        SQLSTATE.internalError,
        'hoop: could not resolve result columns for masking; the connection was closed',
      ),
      'masking failed',
    );
  }

  /** FORWARD: relay the frame as is; DROP: swallow it; a Buffer: send this instead. */
  private handleBackend(type: number, buf: Buffer, pos: number, end: number): number | Buffer {
    const answered = this.queue.reply(
      type,
      type === BackendType.errorResponse && isFatalError(buf, pos + 5, end),
    );
    if (isDisagreement(answered)) return this.desync(answered.disagreement);
    const h = answered === ASYNC ? undefined : answered;
    switch (type) {
      case BackendType.dataRow:
        return this.results.maskDataRow(this.currentMasker(), this.currentRun(), buf, pos, end);
      case BackendType.copyData:
        return this.results.maskCopyData(this.currentCopyOut(), this.currentRun(), buf, pos, end);
      case BackendType.rowDescription:
        return this.onRowDescription(h, buf, pos, end);
      case BackendType.noData:
        if (h?.kind === 'describe-portal') {
          h.portal.masker = null;
          return h.injected ? DROP : FORWARD;
        }
        return h?.kind === 'copy-describe' ? DROP : FORWARD;
      case BackendType.parameterDescription:
      case BackendType.parseComplete:
      case BackendType.closeComplete:
        return h?.kind === 'copy-describe' ? DROP : FORWARD;
      case BackendType.bindComplete:
        return FORWARD;
      case BackendType.commandComplete:
        return this.onCommandComplete(h, buf, pos, end);
      case BackendType.emptyQueryResponse:
      case BackendType.portalSuspended:
        if (h?.kind === 'execute') this.finishRun(h.run, undefined, null);
        return FORWARD;
      case BackendType.errorResponse:
        return this.onErrorResponse(h, buf, pos, end);
      case BackendType.functionCallResponse:
        return h?.kind === 'function-call'
          ? this.results.maskFunctionCallResponse(h.result, h.run, buf, pos, end)
          : FORWARD;
      case BackendType.noticeResponse:
        return this.results.maskNotice(type, buf, pos, end, this.currentRun());
      case BackendType.readyForQuery:
        return this.onReadyForQuery(h, buf, pos, end);
      case BackendType.parameterStatus:
        return this.onParameterStatus(buf, pos, end);
      case BackendType.copyOutResponse:
        return this.onCopyOutResponse(h);
      case BackendType.copyDone:
        return this.results.copyDone(this.currentCopyOut(), this.currentRun(), buf, pos, end);
      case BackendType.copyInResponse:
        return FORWARD;
      case BackendType.notificationResponse:
        return this.results.maskNotification(buf, pos, end);
      default:
        // (the queue accepts nothing else: CopyBoth, BackendKeyData after startup, unknown types)
        return this.desync(`the database sent an unexpected message type "${String.fromCharCode(type)}"`);
    }
  }

  /**
   * The database answered something the protocol model cannot attribute: results could go out under
   * another statement's mask plan, so the connection is closed (and that is recorded), never guessed at.
   */
  private desync(why: string): number {
    this.ctx.logger.error(
      { why },
      'pg relay: the protocol model and the database disagree; closing the connection',
    );
    this.ctx.flow.desynced(why);
    this.terminate(
      fatal(
        SQLSTATE.protocolViolation,
        `hoop: the broker's model of the protocol and the database disagree (${why}); the connection was closed`,
      ),
      'protocol desync',
    );
    return DROP;
  }

  private onRowDescription(h: Pending | undefined, buf: Buffer, pos: number, end: number): number | Buffer {
    if (h?.kind === 'copy-describe') {
      h.fields = readRowDescription(buf, pos + 5, end);
      return DROP;
    }
    if (h?.kind === 'describe-statement') return FORWARD;
    if (!this.masking) return h?.kind === 'describe-portal' && h.injected ? DROP : FORWARD;
    const planned = this.results.describe(buf, pos, end);
    if (planned === null) return DROP;
    const assign = (m: RowMasker): void => {
      if (h?.kind === 'simple') h.masker = m;
      else if (h?.kind === 'describe-portal') h.portal.masker = m;
    };
    if (planned instanceof Promise) this.waitFor = planned.then(assign);
    else assign(planned);
    return h?.kind === 'describe-portal' && h.injected ? DROP : FORWARD;
  }

  private onCopyOutResponse(h: Pending | undefined): number | Buffer {
    if (!this.masking) return FORWARD;
    if (h?.kind === 'simple') {
      const stmt = h.statements[h.index];
      const plan = h.copyPlans.get(h.index);
      h.copyOut = this.results.startCopyOut(stmt, plan);
      return h.copyOut ? FORWARD : DROP;
    }
    // COPY TO via the extended protocol is refused at Parse when masking applies.
    this.terminate(
      fatal(SQLSTATE.featureNotSupported, 'hoop: unexpected COPY output'),
      'unexpected COPY output',
    );
    return DROP;
  }

  private onCommandComplete(h: Pending | undefined, buf: Buffer, pos: number, end: number): number | Buffer {
    const tag = readCommandTag(buf, pos + 5, end);
    if (h?.kind === 'simple') {
      if (h.run) this.finishRun(h.run, rowsFromCommandTag(tag), null);
      h.index++;
      h.masker = null;
      h.copyOut = null;
      h.run =
        h.index < h.statements.length ? this.newRun(h.statements[h.index]!, 'simple', h.reasons ?? []) : null;
      return FORWARD;
    }
    if (h?.kind === 'execute') this.finishRun(h.run, rowsFromCommandTag(tag), null);
    return FORWARD;
  }

  private onErrorResponse(h: Pending | undefined, buf: Buffer, pos: number, end: number): number | Buffer {
    // (the queue has taken the extended-protocol messages off, and the server now discards until Sync)
    if (h?.kind === 'denied-simple' || h?.kind === 'denied-extended') return errorResponse(h.error);
    if (h?.kind === 'copy-describe') {
      h.failed = true;
      return DROP;
    }
    const fields = readNoticeFields(buf, pos + 5, end);
    const sqlstate = fields.find(([c]) => c === 'C')?.[1] ?? '';
    const stmt =
      h?.kind === 'simple'
        ? h.statements[h.index]
        : h?.kind === 'execute'
          ? h.run.stmt
          : h?.kind === 'parse'
            ? this.prepared.get(h.name)
            : undefined;
    if (h?.kind === 'simple') {
      if (h.run) this.finishRun(h.run, undefined, sqlstate);
      h.run = null;
      h.masker = null;
      h.copyOut = null;
      h.index = h.statements.length; // the rest of the message does not run
    } else if (h?.kind === 'function-call') {
      if (h.run) this.finishRun(h.run, undefined, sqlstate);
      h.run = null; // ReadyForQuery follows
    } else if (h?.kind === 'execute') {
      this.finishRun(h.run, undefined, sqlstate);
    } else if (h?.kind === 'parse') {
      this.revertParse(h);
    } else if (h?.kind === 'describe-portal') {
      h.portal.describeSent = false;
    }
    return this.results.maskNoticeFields(BackendType.errorResponse, fields, stmt, this.currentRun());
  }

  private revertParse(h: Extract<Pending, { kind: 'parse' }>): void {
    if (h.name === '') this.prepared.delete('');
    else if (h.previous) this.prepared.set(h.name, h.previous);
    else this.prepared.delete(h.name);
  }

  private onReadyForQuery(h: Pending | undefined, buf: Buffer, pos: number, end: number): number | Buffer {
    // back outside a transaction block: this session's DDL (if any) is committed or gone
    if (end - pos === 6 && buf[pos + 5] === 0x49 /* I */) this.ddlInTransaction = false;
    if (h?.kind === 'copy-describe') {
      this.finishCopyDescribe(h);
      return DROP;
    }
    if (h?.kind === 'function-call' && h.run) this.finishRun(h.run, undefined, null);
    return FORWARD;
  }

  private finishCopyDescribe(h: Extract<Pending, { kind: 'copy-describe' }>): void {
    void this.results.copyPlan(h.info, h.fields, h.failed).then(h.done);
  }

  private onParameterStatus(buf: Buffer, pos: number, end: number): number | Buffer {
    const body = buf.subarray(pos + 5, end);
    const nul = body.indexOf(0);
    const name = body.toString('utf8', 0, nul);
    const value = body.toString('utf8', nul + 1, body.length - 1);
    // The classifier reads statements as PostgreSQL does only with these settings; if they change
    // under us (however that happened), stop rather than misread the next statement.
    const problem = reportedSettingProblem(name, value, this.ctx.grant.access, false);
    if (!problem) return FORWARD;
    this.terminate(fatal(SQLSTATE[problem.sqlstate], problem.message), problem.why);
    return DROP;
  }

  private finishRun(run: StatementRun, rows: number | undefined, sqlstate: string | null): void {
    const stmt = run.stmt;
    const durationMs = Math.round((performance.now() - run.startedAt) * 1000) / 1000;
    if (stmt && (stmt.effect === 'ddl' || stmt.effect === 'admin') && !sqlstate) {
      this.ctx.catalog.invalidate();
      this.ddlInTransaction = true;
    }
    // Not awaited and not even started here: the response goes to the client first, then the event
    // goes to the recorder (when processUpstream ends, or else right after this I/O round). A failure
    // closes the connection.
    const outcome = {
      rows,
      bytes: run.bytes,
      duration_ms: durationMs,
      masked: run.masked,
      error: sqlstate || undefined,
    };
    if (run.recorded) this.ctx.flow.resulted(run.op, outcome);
    else this.ctx.flow.completed(run.op, run.reasons, outcome);
  }
}
