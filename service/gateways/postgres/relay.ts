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

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import type { Logger } from 'pino';
import { pgDeniedKind, pgText } from '../../audit/operation-events.js';
import type { Detector, Grant, MaskRule } from '../../config/schema.js';
import type { Decision, DenyDecision } from '../../policy/decision.js';
import type { PgFunctionCallOperation, PgOperation, PgStatementOperation } from '../../policy/operation.js';
import {
  columnMaskRules,
  CopyOutMasker,
  copyMaskSupport,
  guardEchoedValues,
  isKnownBuiltin,
  maskCell,
  maskNoticeText,
  planMask,
  redactSql,
  tableIsRule,
  trackPrepared,
} from '../../policy/sql/index.js';
import type {
  CellAction,
  ClassifiedStatement,
  ClassifyResult,
  ColumnOrigin,
  CopyInfo,
  MaskPlan,
} from '../../policy/sql/types.js';
import { type BackendError, error as backendError, fatal, SQLSTATE } from './backend-error.js';
import {
  BackendType,
  dataRow,
  errorResponse,
  isFatalError,
  fieldsMessage,
  type RowField,
  readCommandTag,
  readDataRow,
  readNoticeFields,
  readRowDescription,
  rowsFromCommandTag,
} from './backend-messages.js';
import {
  CATALOG_TTL_MS,
  type CatalogResolver,
  type FunctionInfo,
  knowsRelation,
  type TargetViews,
  type UserObjects,
  type ViewLineage,
} from './catalog.js';
import { deniedThroughViews, viewMaskRules } from '../../policy/mask/views.js';
import type { CachedClassification, CacheEntry, ClassificationCache } from './classification-cache.js';
import type { OperationFlow } from '../operation-flow.js';
import type { GatewayLimits } from './deps.js';
import {
  decodeBind,
  decodeDescribeOrClose,
  decodeExecute,
  decodeFunctionCall,
  type FunctionCallMessage,
  decodeParse,
  decodeQuery,
} from './frontend-messages.js';
import {
  type FrontendMessage,
  type FrontendReader,
  FrontendType,
  LARGE_FRONTEND_TYPES,
} from './frontend-reader.js';
import { ASYNC, isDisagreement, ReplyQueue } from './reply-queue.js';
import { reportedSettingProblem } from './startup-params.js';

/** Text that fails to parse on every PostgreSQL version: the stand-in for a denied statement. */
const SENTINEL_SQL = 'hoop statement denied';

interface PortalInfo {
  name: string;
  statement: ClassifiedStatement | null;
  /** a Describe of this portal has been sent upstream since its Bind */
  describeSent: boolean;
  /** the masking plan, once its RowDescription has arrived */
  masker: RowMasker | null;
}

interface RowMasker {
  plan: MaskPlan;
  /** plan.active: rows must be rewritten */
  active: boolean;
}

/** One statement being executed, for the transcript. */
interface StatementRun {
  /** what the transcript records it as */
  op: PgOperation;
  stmt: ClassifiedStatement | null;
  protocol: 'simple' | 'extended' | 'function-call';
  reasons: string[];
  startedAt: number;
  bytes: number;
  masked: number;
}

interface CopyOutState {
  /** null: the plan is inactive, CopyData passes untouched */
  masker: CopyOutMasker | null;
}

type Pending =
  | {
      kind: 'simple';
      statements: ClassifiedStatement[];
      index: number;
      run: StatementRun | null;
      masker: RowMasker | null;
      /** COPY TO plans by statement index (from the injected describe, before the Query is forwarded) */
      copyPlans: Map<number, MaskPlan>;
      copyOut: CopyOutState | null;
    }
  | { kind: 'parse'; name: string; previous: ClassifiedStatement | undefined }
  | { kind: 'bind' }
  | { kind: 'describe-statement' }
  | { kind: 'describe-portal'; portal: PortalInfo; injected: boolean }
  | { kind: 'execute'; portal: PortalInfo; run: StatementRun; copyOut: CopyOutState | null }
  | { kind: 'close' }
  | { kind: 'sync' }
  /** a FunctionCall: its result (one value) is masked like a computed column of its type */
  | { kind: 'function-call'; run: StatementRun | null; result: CellAction }
  | { kind: 'denied-simple'; error: BackendError }
  | { kind: 'denied-extended'; error: BackendError }
  | {
      kind: 'copy-describe';
      info: CopyInfo;
      fields: RowField[] | null;
      failed: boolean;
      /** called once the plan is known (null: the columns could not be described) */
      done: (plan: MaskPlan | null) => void;
    };

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
  /** classification with a cache for repeated read statements (shared by the gateway's connections) */
  classifier: ClassificationCache;
}

type Duplex = Socket | TLSSocket;

const FORWARD = 0;
const DROP = 1;
const PASS: CellAction = { kind: 'pass' };
/** userObjectUse: the catalog must be read first */
const LOAD_CATALOG = Symbol('load catalog');
/** userObjectUse: the catalog must be read in a reading that starts after the statement */
const RELOAD_CATALOG = Symbol('reload catalog');

/** Why a statement under `read` may run a user's function through a name the allow-list trusts, if it may. */
function userObjectReason(stmt: ClassifiedStatement, objects: UserObjects): string | undefined {
  const implicit = objects.implicitCasts[0];
  if (implicit !== undefined)
    return `access read: the database has an implicit cast through a user-defined function (${implicit}), which any expression may run, so no statement can be proven read-only`;
  for (const fn of stmt.functions) {
    if (!fn.includes('.') && objects.functions.has(fn))
      return `access read: a user-defined function is also named ${fn}, so the unqualified call cannot be proven to run the built-in; write pg_catalog.${fn}(…)`;
  }
  for (const op of stmt.operators) {
    const dot = op.lastIndexOf('.');
    const schema = dot < 0 ? null : op.slice(0, dot);
    const name = dot < 0 ? op : op.slice(dot + 1);
    if (schema !== 'pg_catalog' && objects.operators.has(name))
      return schema === null
        ? `access read: a user-defined operator is also named ${name}, so it cannot be proven to run the built-in; write OPERATOR(pg_catalog.${name})`
        : `access read: operator ${op} is user-defined`;
  }
  for (const type of stmt.casts) {
    const name = type.slice(type.lastIndexOf('.') + 1);
    if (objects.castTargets.has(name))
      return `access read: converting a value to ${name} may run a user-defined function (through a cast or a domain's CHECK constraint), so a cast to ${type} cannot be proven read-only`;
  }
  return undefined;
}

/**
 * Why a statement under column masks or table deny rules (at write or admin access; `read` has its own,
 * stricter check) may run a user's code, which can read a masked column or a denied table out of the
 * policy's sight, if it may: a call of a
 * function users defined (in any schema but pg_catalog), a user operator, a cast to a user cast's target
 * or such a domain, or any statement while a user's implicit cast exists.
 */
function maskedUserCodeReason(stmt: ClassifiedStatement, objects: UserObjects): string | undefined {
  const implicit = objects.implicitCasts[0];
  const out = "which can read masked columns and denied tables out of the policy's sight";
  if (implicit !== undefined)
    return `mask: the database has an implicit cast through a user-defined function (${implicit}), any expression may run it, ${out}`;
  for (const fn of stmt.functions) {
    const dot = fn.lastIndexOf('.');
    if (fn.slice(0, Math.max(dot, 0)) !== 'pg_catalog' && objects.functions.has(fn.slice(dot + 1)))
      return `mask: ${fn} may run a user-defined function, ${out}`;
  }
  for (const op of stmt.operators) {
    const dot = op.lastIndexOf('.');
    if (op.slice(0, Math.max(dot, 0)) !== 'pg_catalog' && objects.operators.has(op.slice(dot + 1)))
      return `mask: operator ${op} may run a user-defined function, ${out}`;
  }
  for (const type of stmt.casts) {
    if (objects.castTargets.has(type.slice(type.lastIndexOf('.') + 1)))
      return `mask: a cast to ${type} may run a user-defined function, ${out}`;
  }
  return undefined;
}

/** A session's grant under a target's traced views (see viewRulesReady). */
interface EffectiveGrant {
  /** the grant with the mask rules its column rules imply for view columns */
  grant: Grant;
  /** views passing a masked column on that no rule can name: statements naming them are refused */
  unnameable: ViewLineage[];
}

/** One object per (grant, lineage), so every connection of a session shares its cached decisions. */
const effectiveGrants = new WeakMap<TargetViews, WeakMap<Grant, EffectiveGrant>>();
function effectiveGrant(grant: Grant, views: TargetViews): EffectiveGrant {
  let byGrant = effectiveGrants.get(views);
  if (!byGrant) {
    byGrant = new WeakMap();
    effectiveGrants.set(views, byGrant);
  }
  let g = byGrant.get(grant);
  if (!g) {
    const derived = viewMaskRules(grant.mask ?? [], views.views);
    const deniedTables = (grant.deny ?? []).flatMap((r) => ('table' in r ? r.table : []));
    const deniedViews = deniedThroughViews(deniedTables, views.views);
    let effective = grant;
    if (derived.rules.length > 0)
      effective = { ...effective, mask: [...(grant.mask ?? []), ...derived.rules] };
    if (deniedViews.length > 0)
      effective = { ...effective, deny: [...(grant.deny ?? []), { table: deniedViews }] };
    g = { grant: effective, unnameable: derived.unnameable };
    byGrant.set(grant, g);
  }
  return g;
}

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
  /** the grant's mask rules, plus those derived for views over masked columns (viewRulesReady) */
  private maskRules: MaskRule[];
  /** the grant decisions are made under: the session's, with the derived view rules in its mask */
  private grant: Grant;
  /** the grant has column rules, so views must be traced before statements are decided */
  private readonly columnMasking: boolean;
  /**
   * the grant has column masks or table deny rules: reading data out of the classifier's sight (a
   * user's function, a view over a masked column or a denied table) matters, so views are traced
   */
  private readonly outOfSight: boolean;
  /** views are traced: for outOfSight, and under `read` (a view whose definition is not read-only) */
  private readonly tracesViews: boolean;
  /** the catalog's view lineage the derived rules were made from */
  private appliedViews: TargetViews | null = null;
  /** the message last handled again after a reading of the lineage that started after it (see unknownRelations) */
  private tracedFor: FrontendMessage | null = null;
  /** the same for a reading of what users defined (see userObjectUse) */
  private userObjectsFor: FrontendMessage | null = null;
  /**
   * This session ran DDL in the transaction block it is still in. Reading view lineage would then wait
   * for the locks that DDL holds (pg_get_viewdef and describing lock the tables a view reads), so until
   * the block ends the session keeps the lineage it had: under its column masks its own DDL cannot have
   * opened a new way to a masked column (a view over one, a rename, an ATTACH is refused), and other
   * sessions' changes show through result descriptions (see untraced) or after the block.
   */
  private ddlInTransaction = false;
  /** views over masked columns that no rule can name (see EffectiveGrant) */
  private unnameableViews: ViewLineage[] = [];
  private readonly detectors: Detector[];
  private readonly masking: boolean;
  private readonly planCache = new Map<string, RowMasker>();
  /** the last RowDescription body whose plan was in the cache, and that plan */
  private lastRowDescription: Buffer | null = null;
  private lastRowMasker: RowMasker | null = null;
  private planCacheGeneration = -1;
  private planCacheSince = 0;
  private readonly describeName: string;

  constructor(
    private readonly ctx: RelayContext,
    private readonly client: Duplex,
    private readonly reader: FrontendReader,
    private readonly upstream: Duplex,
    private readonly onEnd: (why: string) => void,
  ) {
    this.maskRules = ctx.grant.mask ?? [];
    this.grant = ctx.grant;
    this.columnMasking = this.maskRules.some((r) => 'column' in r);
    this.outOfSight = this.columnMasking || (ctx.grant.deny ?? []).some((r) => 'table' in r);
    this.tracesViews = this.outOfSight || ctx.grant.access === 'read';
    this.detectors = this.maskRules.flatMap((r) => ('detector' in r ? [r.detector] : []));
    this.masking = this.maskRules.length > 0;
    this.describeName = `hoop_describe_${ctx.connId}`;
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
    this.processClient();
  };

  private onUpstreamDrain = (): void => {
    this.resumeClient();
  };

  private processClient(): void {
    if (this.clientBusy || this.closed) return;
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
        const wait = this.handleFrontend(r.value);
        if (this.closed) return;
        if (wait) {
          this.clientBusy = true;
          this.client.pause();
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
      if (!this.closed) this.flushForward();
    }
    if (this.upstream.writableNeedDrain || this.ctx.flow.backlogFull()) this.client.pause();
    this.armMidMessageTimer();
  }

  private armMidMessageTimer(): void {
    if (this.reader.buffered > 0) {
      if (this.midMessageTimer) this.midMessageTimer.refresh();
      else {
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
        return this.onQuery(msg);
      case FrontendType.parse:
        return this.onParse(msg);
      case FrontendType.bind: {
        if (this.skippingUntilSync) return;
        const b = decodeBind(msg.body);
        if (!b) return this.malformed('invalid Bind message format', false);
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
        if (!d) return this.malformed('invalid Describe message format', false);
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
        if (!e) return this.malformed('invalid Execute message format', false);
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
        this.forward(msg);
        this.push({ kind: 'execute', portal, run: this.newRun(stmt, 'extended', []), copyOut: null });
        return;
      }
      case FrontendType.close: {
        if (this.skippingUntilSync) return;
        const c = decodeDescribeOrClose(msg.body);
        if (!c) return this.malformed('invalid Close message format', false);
        if (c.target === 'S') this.prepared.delete(c.name);
        else this.portals.delete(c.name);
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
        return this.onFunctionCall(msg);
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

  /**
   * A message whose frame is fine but whose content is not: PostgreSQL answers "invalid message format"
   * with a plain ERROR and the connection stays usable, so does the broker (through the sentinel).
   */
  private malformed(message: string, simple: boolean, functionCall = false): Promise<void> {
    const op: PgOperation = functionCall
      ? { kind: 'pg.function_call', oid: null, function: null, statement: null }
      : { kind: 'pg.statement', protocol: simple ? 'simple' : 'extended', statement: null };
    const err = backendError(SQLSTATE.protocolViolation, `hoop: ${message}`);
    return this.sendDenial(op, { rule: 'protocol', reasons: [message] }, err, simple);
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
      startedAt: performance.now(),
      bytes: 0,
      masked: 0,
    };
  }

  private classify(text: string): CachedClassification {
    return this.ctx.classifier.classify(text, this.prepared);
  }

  private decide(entry: CacheEntry | null, stmt: ClassifiedStatement): Decision {
    return this.ctx.classifier.decide(entry, this.grant, stmt);
  }

  private onQuery(msg: FrontendMessage): Promise<void> | undefined {
    const text = decodeQuery(msg.body);
    if (this.skippingUntilSync) return;
    if (text === null)
      return this.malformed(
        'invalid Query message format (the text must be one NUL-terminated string)',
        true,
      );
    if (!this.viewRulesReady()) return this.afterViews(msg, true);
    this.forgetNamedPortals();
    const { result: cls, entry } = this.classify(text);
    if (!cls.ok) return this.denyUnparsable(text, cls, true);
    if (this.unknownRelations(cls.statements, msg)) return this.afterViews(msg, true, true);
    const unnameable = this.namesUnnameableView(cls.statements);
    if (unnameable)
      return this.deny(unnameable.stmt, unnameable.decision, true, SQLSTATE.insufficientPrivilege);
    for (const stmt of cls.statements) {
      const d = this.decide(entry, stmt);
      if (d.effect !== 'allow' && !(d.effect === 'hold' && this.approvedFor === msg))
        return this.refuse(msg, statementOp(stmt, 'simple'), d, true, SQLSTATE.insufficientPrivilege);
    }
    const shadowed = this.userObjectUse(cls.statements, msg);
    if (shadowed === LOAD_CATALOG || shadowed === RELOAD_CATALOG)
      return this.afterUserObjects(msg, true, shadowed === RELOAD_CATALOG);
    if (shadowed) return this.deny(shadowed.stmt, shadowed.decision, true, SQLSTATE.insufficientPrivilege);
    const copies = this.masking
      ? cls.statements.flatMap((s, i) => (s.copy?.direction === 'to' ? [i] : []))
      : [];
    if (copies.length === 0) {
      this.forwardQuery(msg, cls.statements, new Map());
      return;
    }
    return this.describeCopiesThenForward(msg, cls.statements, copies);
  }

  private forwardQuery(
    msg: FrontendMessage,
    statements: ClassifiedStatement[],
    copyPlans: Map<number, MaskPlan>,
  ): void {
    for (const s of statements) trackPrepared(this.prepared, s);
    this.forward(msg);
    this.push({
      kind: 'simple',
      statements,
      index: 0,
      run: this.newRun(statements[0] ?? null, 'simple', []),
      masker: null,
      copyPlans,
      copyOut: null,
    });
  }

  /**
   * COPY … TO STDOUT with masking: learn the output columns' origins in-band first (same search_path,
   * same transaction), then either forward the COPY with a plan or refuse it before it starts.
   */
  private async describeCopiesThenForward(
    msg: FrontendMessage,
    statements: ClassifiedStatement[],
    copies: number[],
  ): Promise<void> {
    // The describe is a batch of the broker's own ending in Sync: inside the client's unsynced
    // extended-protocol batch, that Sync would end the server's discarding after an error (running a
    // Query the server would have ignored) or commit the batch's implicit transaction early.
    if (this.queue.inExtendedBatch) {
      return this.deny(
        statements[copies[0]!]!,
        {
          effect: 'deny',
          rule: 'mask',
          reasons: [
            'a masked COPY … TO STDOUT must not be sent inside an unfinished extended-protocol batch (send Sync first)',
          ],
        },
        true,
        SQLSTATE.featureNotSupported,
      );
    }
    const plans = new Map<number, MaskPlan>();
    const described = copies.map((i) =>
      this.injectCopyDescribe(statements[i]!.copy!).then((plan) => ({ i, plan })),
    );
    for (const { i, plan } of await Promise.all(described)) {
      const stmt = statements[i]!;
      if (!plan) {
        return this.deny(
          stmt,
          {
            effect: 'deny',
            rule: 'mask',
            reasons: ['the columns of this COPY could not be described, so its output cannot be masked'],
          },
          true,
          SQLSTATE.featureNotSupported,
        );
      }
      const support = copyMaskSupport(stmt.copy!.format, plan);
      if (!support.ok)
        return this.deny(
          stmt,
          { effect: 'deny', rule: 'mask', reasons: [support.reason] },
          true,
          SQLSTATE.featureNotSupported,
        );
      plans.set(i, plan);
    }
    if (this.closed) return;
    this.forwardQuery(msg, statements, plans);
  }

  private injectCopyDescribe(info: CopyInfo): Promise<MaskPlan | null> {
    const sql = copyDescribeSql(info);
    if (sql === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.inject(
        Buffer.concat([
          serialize.parse({ name: this.describeName, text: sql, types: [] }),
          serialize.describe({ type: 'S', name: this.describeName }),
          serialize.close({ type: 'S', name: this.describeName }),
          serialize.sync(),
        ]),
      );
      this.push({ kind: 'copy-describe', info, fields: null, failed: false, done: resolve });
    });
  }

  private onParse(msg: FrontendMessage): Promise<void> | undefined {
    if (this.skippingUntilSync) return;
    const p = decodeParse(msg.body);
    if (!p) return this.malformed('invalid Parse message format', false);
    if (!this.viewRulesReady()) return this.afterViews(msg, false);
    const { result: cls, entry } = this.classify(p.text);
    if (!cls.ok) return this.denyUnparsable(p.text, cls, false, p.name);
    if (this.unknownRelations(cls.statements, msg)) return this.afterViews(msg, false, true);
    const unnameable = this.namesUnnameableView(cls.statements);
    if (unnameable)
      return this.deny(
        unnameable.stmt,
        unnameable.decision,
        false,
        SQLSTATE.insufficientPrivilege,
        undefined,
        p.name,
      );
    for (const stmt of cls.statements) {
      const d = this.decide(entry, stmt);
      if (d.effect !== 'allow' && !(d.effect === 'hold' && this.approvedFor === msg))
        return this.refuse(
          msg,
          statementOp(stmt, 'extended'),
          d,
          false,
          SQLSTATE.insufficientPrivilege,
          p.name,
        );
      if (this.masking && stmt.copy?.direction === 'to') {
        return this.deny(
          stmt,
          {
            effect: 'deny',
            rule: 'mask',
            reasons: ['COPY … TO STDOUT is masked only in the simple query protocol'],
          },
          false,
          SQLSTATE.featureNotSupported,
          undefined,
          p.name,
        );
      }
    }
    const shadowed = this.userObjectUse(cls.statements, msg);
    if (shadowed === LOAD_CATALOG || shadowed === RELOAD_CATALOG)
      return this.afterUserObjects(msg, false, shadowed === RELOAD_CATALOG);
    if (shadowed)
      return this.deny(
        shadowed.stmt,
        shadowed.decision,
        false,
        SQLSTATE.insufficientPrivilege,
        undefined,
        p.name,
      );
    const previous = this.prepared.get(p.name);
    const stmt = cls.statements[0];
    if (stmt) this.prepared.set(p.name, stmt);
    else this.prepared.delete(p.name);
    for (const s of cls.statements) trackPrepared(this.prepared, s);
    this.forward(msg);
    this.push({ kind: 'parse', name: p.name, previous });
    return;
  }

  /**
   * FunctionCall names a function by OID: the broker reads its schema and name from the catalog (by OID,
   * so no search_path matters) and decides on `SELECT schema.name($1, …)`, the call in SQL, with the same
   * function rules; a function it cannot find or classify is denied. Answered like a simple query
   * (FunctionCallResponse or ErrorResponse, then ReadyForQuery), so a denial keeps the connection usable.
   */
  private onFunctionCall(msg: FrontendMessage): Promise<void> | undefined {
    const fc = decodeFunctionCall(msg.body);
    if (!fc) return this.malformed('invalid FunctionCall message format', true, true);
    const known = this.ctx.catalog.cachedFunction(fc.oid);
    if (known !== undefined) return this.decideFunctionCall(msg, fc, known);
    return this.ctx.catalog.loadFunction(fc.oid).then(
      (info) => {
        if (this.closed) return;
        return this.decideFunctionCall(msg, fc, info);
      },
      (err: unknown) => {
        this.ctx.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'pg relay: catalog lookup for a FunctionCall failed',
        );
        if (this.closed) return;
        return this.denyFunctionCall(
          fc.oid,
          `function OID ${fc.oid}`,
          'the function could not be looked up in the catalog, so the call cannot be classified',
        );
      },
    );
  }

  private decideFunctionCall(
    msg: FrontendMessage,
    fc: FunctionCallMessage,
    info: FunctionInfo | null,
  ): Promise<void> | undefined {
    if (!info)
      return this.denyFunctionCall(fc.oid, `function OID ${fc.oid}`, `no function has OID ${fc.oid}`);
    const args = Array.from({ length: fc.nArgs }, (_, i) => `$${i + 1}`).join(', ');
    const sql = `SELECT ${quoteIdent(info.schema)}.${quoteIdent(info.name)}(${args})`;
    const { result: cls, entry } = this.classify(sql);
    const stmt = cls.ok && cls.statements.length === 1 ? cls.statements[0]! : null;
    if (!stmt) return this.denyFunctionCall(fc.oid, sql, 'the call could not be classified');
    const op: PgFunctionCallOperation = {
      kind: 'pg.function_call',
      oid: fc.oid,
      function: { schema: info.schema, name: info.name },
      statement: stmt,
    };
    const d = this.decide(entry, stmt);
    if (d.effect !== 'allow' && !(d.effect === 'hold' && this.approvedFor === msg))
      return this.refuse(msg, op, d, true, SQLSTATE.insufficientPrivilege);
    if (this.outOfSight && info.schema !== 'pg_catalog') {
      // (under read, only allow-listed built-ins got this far)
      const reason = `mask: ${info.schema}.${info.name} may be a user-defined function, which can read masked columns and denied tables out of the policy's sight`;
      const deny: Decision = { effect: 'deny', rule: 'mask: bypass', reasons: [reason] };
      return this.refuse(msg, op, deny, true, SQLSTATE.insufficientPrivilege);
    }
    const origin: ColumnOrigin = {
      name: info.name,
      table: null,
      column: null,
      typeOid: info.returnType,
      format: fc.resultFormat,
    };
    const result = this.masking ? planMask(this.maskRules, [origin]).actions[0]! : PASS;
    this.forward(msg);
    this.push({ kind: 'function-call', run: this.newRun(stmt, 'simple', [], op), result });
    return;
  }

  private denyFunctionCall(oid: number, text: string, reason: string): Promise<void> {
    return this.denyOp(
      { kind: 'pg.function_call', oid, function: null, statement: null },
      { effect: 'deny', rule: 'protocol: FunctionCall', reasons: [`${reason} (${text})`] },
      true,
      SQLSTATE.insufficientPrivilege,
    );
  }

  /** FunctionCallResponse: Int32 length (-1 NULL) and the value; masked by the call's plan. */
  private onFunctionCallResponse(
    h: Extract<Pending, { kind: 'function-call' }>,
    buf: Buffer,
    pos: number,
    end: number,
  ): number | Buffer {
    if (h.run) h.run.bytes += end - pos;
    if (h.result.kind === 'pass') return FORWARD;
    if (end - pos < 9) return FORWARD; // malformed from the server: its own problem, passed as sent
    const len = buf.readInt32BE(pos + 5);
    const value = len < 0 ? null : buf.subarray(pos + 9, Math.min(end, pos + 9 + len));
    const r = maskCell(h.result, value, this.detectors);
    if (!r.masked) return FORWARD;
    if (h.run) h.run.masked++;
    const v = r.value;
    const out = Buffer.allocUnsafe(9 + (v?.length ?? 0));
    out[0] = BackendType.functionCallResponse;
    out.writeInt32BE(8 + (v?.length ?? 0), 1);
    out.writeInt32BE(v === null ? -1 : v.length, 5);
    v?.copy(out, 9);
    return out;
  }

  /**
   * Under `read`, functions, operators and casts are allowed by their names. A user's CREATE FUNCTION,
   * CREATE OPERATOR or CREATE CAST can make such a name run the user's code instead of the built-in
   * the allow-list vouches for: an unqualified call or an operator with a name a user also defined, a
   * cast to a type a user's cast targets, and (through an implicit cast) any expression at all. Those
   * are denied (pg_catalog.name(…) and OPERATOR(pg_catalog.op) name the built-in and are fine).
   * LOAD_CATALOG: what users defined is not known yet.
   */
  private userObjectUse(
    statements: ClassifiedStatement[],
    msg: FrontendMessage,
  ): { stmt: ClassifiedStatement; decision: Decision } | typeof LOAD_CATALOG | typeof RELOAD_CATALOG | null {
    const read = this.ctx.grant.access === 'read';
    if (!read && !this.outOfSight) return null;
    // Under masks at write access, a call the allow-lists do not know may be a function created
    // moments ago, outside the broker: it is judged by a reading that starts after the statement.
    if (!read && this.userObjectsFor !== msg) {
      for (const stmt of statements)
        for (const fn of stmt.functions) {
          const dot = fn.lastIndexOf('.');
          if (!isKnownBuiltin(dot < 0 ? null : fn.slice(0, dot), fn.slice(dot + 1))) return RELOAD_CATALOG;
        }
    }
    let objects: UserObjects | undefined;
    for (const stmt of statements) {
      const refersToAnything =
        stmt.tables.length > 0 ||
        stmt.functions.length > 0 ||
        stmt.operators.length > 0 ||
        stmt.casts.length > 0;
      if (!refersToAnything) continue;
      objects ??= this.ctx.catalog.cachedUserObjects();
      if (objects === undefined) return LOAD_CATALOG;
      if (read) {
        const reason = userObjectReason(stmt, objects);
        if (reason) return { stmt, decision: { effect: 'deny', rule: 'access: read', reasons: [reason] } };
      } else {
        const reason = maskedUserCodeReason(stmt, objects);
        if (reason) return { stmt, decision: { effect: 'deny', rule: 'mask: bypass', reasons: [reason] } };
      }
    }
    return null;
  }

  /**
   * With column masks, views over masked columns get derived rules (policy/mask/views.ts) from the
   * catalog's view lineage; false when that lineage must be read first.
   */
  private viewRulesReady(): boolean {
    if (!this.tracesViews) return true;
    const views = this.ctx.catalog.cachedViews();
    if (views === undefined) return this.ddlInTransaction && this.appliedViews !== null;
    this.applyViews(views);
    return true;
  }

  private applyViews(views: TargetViews): void {
    if (views === this.appliedViews) return;
    this.appliedViews = views;
    const effective = effectiveGrant(this.ctx.grant, views);
    this.grant = effective.grant;
    this.unnameableViews = effective.unnameable;
    this.maskRules = this.grant.mask ?? [];
    this.planCacheGeneration = -1; // plans were made under the previous rules
  }

  /**
   * Does the statement name a relation the traced catalog does not know (created since it was read,
   * outside the broker; it may be a view over a masked column)? Then it waits for a reading that starts
   * after it, once: a name that reading does not know either (a typo; a relation of another database)
   * goes on to the database, which answers for it.
   */
  private unknownRelations(statements: ClassifiedStatement[], msg: FrontendMessage): boolean {
    const tv = this.appliedViews;
    if (!this.tracesViews || tv === null || this.tracedFor === msg || this.ddlInTransaction) return false;
    for (const stmt of statements) for (const t of stmt.tables) if (!knowsRelation(tv, t)) return true;
    return false;
  }

  /**
   * A statement naming a view over a masked column whose name no mask rule can spell, or (under `read`) a
   * view whose definition is not read-only: refused.
   */
  private namesUnnameableView(
    statements: ClassifiedStatement[],
  ): { stmt: ClassifiedStatement; decision: Decision } | null {
    const unproven = this.ctx.grant.access === 'read' ? (this.appliedViews?.notReadOnly ?? []) : [];
    for (const stmt of unproven.length > 0 ? statements : []) {
      for (const t of stmt.tables) {
        const v = unproven.find((u) => t === u.relname || t === u.view || t.endsWith(`.${u.relname}`));
        if (v) {
          const reason = `access read: reading view ${v.view} runs its definition, which is not read-only: ${v.why}`;
          return { stmt, decision: { effect: 'deny', rule: 'access: read', reasons: [reason] } };
        }
      }
    }
    if (this.unnameableViews.length === 0) return null;
    for (const stmt of statements) {
      for (const t of stmt.tables) {
        const v = this.unnameableViews.find(
          (u) => t === u.relname || t === u.view || t.endsWith(`.${u.relname}`),
        );
        if (v) {
          const reason = `mask: view ${v.view} passes a masked column on, and a '.' in its names leaves no mask rule able to name its columns`;
          return { stmt, decision: { effect: 'deny', rule: 'mask', reasons: [reason] } };
        }
      }
    }
    return null;
  }

  /**
   * Trace the target's views (`refresh`: in a reading that starts now, because the message names a
   * relation the last one did not know), then handle the message again; denied if the catalog is
   * unreadable.
   */
  private afterViews(msg: FrontendMessage, simple: boolean, refresh = false): Promise<void> {
    return this.afterCatalog(
      this.ctx.catalog.loadViews(refresh),
      msg,
      simple,
      (tv) => {
        this.applyViews(tv);
        if (refresh) this.tracedFor = msg;
      },
      this.columnMasking
        ? { rule: 'mask', reason: 'mask: the catalog could not be read to trace views over masked columns' }
        : {
            rule: 'policy',
            reason: 'policy: the catalog could not be read to trace the views statements may read',
          },
      'pg relay: tracing views failed',
    );
  }

  /** Read what users defined in the catalog, then handle the message again (denied if unreadable). */
  private afterUserObjects(msg: FrontendMessage, simple: boolean, refresh = false): Promise<void> {
    const read = this.ctx.grant.access === 'read';
    return this.afterCatalog(
      this.ctx.catalog.loadUserObjects(refresh),
      msg,
      simple,
      () => {
        if (refresh) this.userObjectsFor = msg;
      },
      read
        ? {
            rule: 'access: read',
            reason:
              'access read: the catalog could not be read to check that the functions, operators and casts used are the built-ins',
          }
        : {
            rule: 'mask: bypass',
            reason:
              "mask: the catalog could not be read to check that no function, operator or cast used is a user's",
          },
      'pg relay: reading user-defined functions, operators and casts failed',
    );
  }

  /**
   * Handle the message again once the catalog `reading` is in (`loaded` takes it first); when the
   * catalog could not be read, the statement is denied with `failure` (fail closed) and `log` is logged.
   */
  private afterCatalog<T>(
    reading: Promise<T>,
    msg: FrontendMessage,
    simple: boolean,
    loaded: (value: T) => void,
    failure: { rule: string; reason: string },
    log: string,
  ): Promise<void> {
    return reading.then(
      (value) => {
        if (this.closed) return undefined;
        loaded(value);
        return this.handleFrontend(msg);
      },
      (err: unknown) => {
        this.ctx.logger.warn({ err: err instanceof Error ? err.message : String(err) }, log);
        if (this.closed) return undefined;
        const deny = { effect: 'deny' as const, rule: failure.rule, reasons: [failure.reason] };
        if (simple) return this.deny(null, deny, true, SQLSTATE.insufficientPrivilege, 'QUERY');
        const p = decodeParse(msg.body);
        return this.deny(null, deny, false, SQLSTATE.insufficientPrivilege, 'PARSE', p?.name);
      },
    );
  }

  private denyUnparsable(
    text: string,
    cls: Extract<ClassifyResult, { ok: false }>,
    simple: boolean,
    parseName?: string,
  ): Promise<void> {
    const err = backendError(
      SQLSTATE.syntaxError,
      `hoop: statement could not be parsed, so it is denied: ${cls.error}`,
      {
        ...(cls.position !== undefined ? { position: cls.position } : {}),
      },
    );
    const op: PgStatementOperation = {
      kind: 'pg.statement',
      protocol: simple ? 'simple' : 'extended',
      statement: null,
      text: redactSql(text),
    };
    const reasons = [`the statement could not be parsed: ${cls.error}`];
    return this.sendDenial(op, { rule: 'parser', reasons }, err, simple, parseName);
  }

  /** Refuse a statement (or the message it came in, `label`, when there is none). */
  private deny(
    stmt: ClassifiedStatement | null,
    d: Decision,
    simple: boolean,
    code: string,
    label?: 'QUERY' | 'PARSE',
    parseName?: string,
  ): Promise<void> {
    const op = statementOp(stmt, simple ? 'simple' : 'extended');
    if (label !== undefined && op.kind === 'pg.statement') op.label = label;
    return this.refuse(null, op, d, simple, code, parseName);
  }

  /**
   * Refuse an operation the policy did not allow; a hold goes to the approver first (the flow), and
   * an approved one handles `msg` again, this time letting its hold pass (approvedFor).
   */
  private refuse(
    msg: FrontendMessage | null,
    op: PgOperation,
    d: Decision,
    simple: boolean,
    code: string,
    parseName?: string,
  ): Promise<void> {
    if (d.effect !== 'hold') return this.denyOp(op, d, simple, code, parseName);
    return Promise.resolve(this.ctx.flow.settle(op, d)).then((settled) => {
      if (this.closed) return undefined;
      if (settled.effect === 'deny') return this.denyOp(op, settled, simple, code, parseName);
      if (msg === null) return this.denyOp(op, { ...settled, effect: 'deny' }, simple, code, parseName);
      this.approvedFor = msg;
      return this.handleFrontend(msg);
    });
  }

  private denyOp(
    op: PgOperation,
    d: Decision,
    simple: boolean,
    code: string,
    parseName?: string,
  ): Promise<void> {
    const kind = pgDeniedKind(op);
    const rule = d.rule ?? 'policy';
    const err = backendError(code, `hoop: ${kind} denied by policy rule "${rule}"`, {
      detail: [...d.reasons, `statement: ${truncate(pgText(op), 200)}`].join('; '),
    });
    return this.sendDenial(op, { rule, reasons: d.reasons }, err, simple, parseName);
  }

  /** Audit first, then let the upstream fail a sentinel in the statement's place (see file comment). */
  private async sendDenial(
    op: PgOperation,
    decision: Pick<DenyDecision, 'rule' | 'reasons'>,
    err: BackendError,
    simple: boolean,
    parseName?: string,
  ): Promise<void> {
    if (!(await this.ctx.flow.refuse(op, decision))) return;
    if (this.closed) return;
    if (simple) {
      this.inject(serialize.query(SENTINEL_SQL));
    } else {
      const name = parseName ?? '';
      // The unnamed statement is dropped by a failed Parse; a named one that existed survives.
      if (name === '') this.prepared.delete('');
      this.inject(serialize.parse({ name, text: SENTINEL_SQL, types: [] }));
      this.skippingUntilSync = true;
    }
    this.push(simple ? { kind: 'denied-simple', error: err } : { kind: 'denied-extended', error: err });
  }

  /** The message whose held decision an approver approved: handled again, its hold passes. */
  private approvedFor: FrontendMessage | null = null;

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

  private send(outs: Buffer[]): void {
    if (outs.length === 1) {
      this.client.write(outs[0]!);
    } else if (outs.length > 1) {
      this.client.cork();
      for (const b of outs) this.client.write(b);
      this.client.uncork();
    }
  }

  /** true when DataRows must go through maskDataRow: an active plan, or (fail closed) no plan at all */
  private rowsNeedMasking(): boolean {
    if (!this.masking) return false;
    const m = this.currentMasker();
    return m === null || m.active;
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
        return this.maskDataRow(buf, pos, end);
      case BackendType.copyData:
        return this.maskCopyData(buf, pos, end);
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
        return h?.kind === 'function-call' ? this.onFunctionCallResponse(h, buf, pos, end) : FORWARD;
      case BackendType.noticeResponse:
        return this.maskNotice(type, buf, pos, end);
      case BackendType.readyForQuery:
        return this.onReadyForQuery(h, buf, pos, end);
      case BackendType.parameterStatus:
        return this.onParameterStatus(buf, pos, end);
      case BackendType.copyOutResponse:
        return this.onCopyOutResponse(h);
      case BackendType.copyDone:
        return this.onCopyDone(buf, pos, end);
      case BackendType.copyInResponse:
        return FORWARD;
      case BackendType.notificationResponse:
        return this.maskNotification(buf, pos, end);
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
    const assign = (m: RowMasker): void => {
      if (h?.kind === 'simple') h.masker = m;
      else if (h?.kind === 'describe-portal') h.portal.masker = m;
    };
    // The same description as last time (an application repeating its statements): the same plan,
    // without decoding the message or making its key.
    const last = this.lastRowDescription;
    if (
      last !== null &&
      last.length === end - pos - 5 &&
      buf.compare(last, 0, last.length, pos + 5, end) === 0 &&
      this.planCacheFresh()
    ) {
      assign(this.lastRowMasker!);
      return h?.kind === 'describe-portal' && h.injected ? DROP : FORWARD;
    }
    const key = buf.toString('latin1', pos + 5, end);
    const cached = this.cachedPlan(key);
    if (cached) {
      assign(cached);
      this.lastRowDescription = Buffer.from(buf.subarray(pos + 5, end));
      this.lastRowMasker = cached;
    } else {
      const fields = readRowDescription(buf, pos + 5, end);
      if (!fields) {
        this.terminate(
          fatal(SQLSTATE.protocolViolation, 'hoop: malformed RowDescription from the database'),
          'bad RowDescription',
        );
        return DROP;
      }
      const planned = this.planFor(key, fields);
      if (planned) assign(planned);
      else {
        this.waitFor = this.ctx.catalog.load(fields.map((f) => f.tableOid)).then(async () => {
          // a view or child the traced lineage lacks (created outside the broker since, and reached by
          // a name it knew: another schema on the search_path): trace again before planning
          if (this.untraced(fields)) this.applyViews(await this.ctx.catalog.loadViews(true));
          const m = this.planFor(key, fields);
          if (!m) throw new Error('column origins still unknown after loading the catalog');
          assign(m);
        });
      }
    }
    return h?.kind === 'describe-portal' && h.injected ? DROP : FORWARD;
  }

  /** A mask plan from the cache, or computed when every table OID is in the catalog cache; null: load first. */
  private cachedPlan(key: string): RowMasker | undefined {
    this.planCacheFresh();
    return this.planCache.get(key);
  }

  /**
   * Plans follow the catalog: dropped after DDL through the broker, and re-made once the catalog
   * entries they came from may have gone stale (a rename made outside the broker). False when the
   * cache was just emptied.
   */
  private planCacheFresh(): boolean {
    const catalog = this.ctx.catalog;
    const now = performance.now();
    if (this.planCacheGeneration !== catalog.generation || now - this.planCacheSince > CATALOG_TTL_MS) {
      this.planCache.clear();
      this.planCacheGeneration = catalog.generation;
      this.planCacheSince = now;
      this.lastRowDescription = null;
      this.lastRowMasker = null;
      return false;
    }
    return true;
  }

  private planFor(key: string, fields: RowField[]): RowMasker | null {
    const catalog = this.ctx.catalog;
    const hit = this.cachedPlan(key);
    if (hit) return hit;
    if (!catalog.knows(fields.map((f) => f.tableOid)) || this.untraced(fields)) return null;
    const origins: ColumnOrigin[] = fields.map((f) => {
      const t = f.tableOid ? catalog.cached(f.tableOid) : null;
      const col = t && f.columnNumber > 0 ? t.columns.get(f.columnNumber) : undefined;
      return {
        name: f.name,
        table: col ? t!.table : null,
        column: col ? col.name : null,
        typeOid: f.typeOid,
        format: f.format,
      };
    });
    const plan = planMask(this.maskRules, origins);
    const m: RowMasker = { plan, active: plan.active };
    if (this.planCache.size > 1000) this.planCache.clear();
    this.planCache.set(key, m);
    return m;
  }

  /**
   * With column masks: does a result column come from a view or child the applied lineage has not
   * traced? Its derived rules are then unknown (call after the fields' tables are in the catalog cache).
   */
  private untraced(fields: RowField[]): boolean {
    if (!this.columnMasking) return false;
    for (const f of fields) {
      if (f.tableOid === 0) continue;
      const t = this.ctx.catalog.cached(f.tableOid);
      if (t?.passesOn && !this.appliedViews?.traced.has(f.tableOid)) return true;
    }
    return false;
  }

  /** Does the statement read a table (or a view) a column rule names? */
  private readsMaskedTable(stmt: ClassifiedStatement): boolean {
    if (!this.columnMasking) return false;
    const rules = columnMaskRules(this.maskRules);
    return stmt.tables.some((t) => rules.some((r) => tableIsRule(t, r)));
  }

  private maskDataRow(buf: Buffer, pos: number, end: number): number | Buffer {
    const m = this.currentMasker();
    const run = this.currentRun();
    if (!m && this.masking) {
      // Rows without a known description while masking applies: never let them out unmasked.
      this.ctx.logger.error('pg relay: DataRow without a mask plan; closing the connection');
      this.terminate(
        fatal(
          SQLSTATE.internalError,
          'hoop: result rows could not be matched to a mask plan; the connection was closed',
        ),
        'no mask plan',
      );
      return DROP;
    }
    if (!m?.active) {
      if (run) run.bytes += end - pos;
      return FORWARD;
    }
    const cells = readDataRow(buf, pos + 5, end);
    if (!cells) {
      this.terminate(
        fatal(SQLSTATE.protocolViolation, 'hoop: malformed DataRow from the database'),
        'bad DataRow',
      );
      return DROP;
    }
    const actions = m.plan.actions;
    let changed = 0;
    for (let i = 0; i < cells.length; i++) {
      const action: CellAction | undefined = actions[i];
      if (!action || action.kind === 'pass') continue;
      const r = maskCell(action, cells[i] ?? null, this.detectors);
      if (r.masked) {
        cells[i] = r.value;
        changed++;
      }
    }
    if (changed === 0) {
      if (run) run.bytes += end - pos;
      return FORWARD;
    }
    const out = dataRow(cells);
    if (run) {
      run.bytes += out.length;
      run.masked += changed;
    }
    return out;
  }

  private onCopyOutResponse(h: Pending | undefined): number | Buffer {
    if (!this.masking) return FORWARD;
    if (h?.kind === 'simple') {
      const stmt = h.statements[h.index];
      const plan = h.copyPlans.get(h.index);
      if (!stmt?.copy || !plan) {
        // Masking applies and we cannot tell which columns are which: do not let the data out.
        this.terminate(
          fatal(
            SQLSTATE.featureNotSupported,
            'hoop: COPY output cannot be masked (column origins unknown); the connection was closed',
          ),
          'unmaskable COPY',
        );
        return DROP;
      }
      h.copyOut = { masker: plan.active ? new CopyOutMasker(stmt.copy, plan.actions, this.detectors) : null };
      return FORWARD;
    }
    // COPY TO via the extended protocol is refused at Parse when masking applies.
    this.terminate(
      fatal(SQLSTATE.featureNotSupported, 'hoop: unexpected COPY output'),
      'unexpected COPY output',
    );
    return DROP;
  }

  private maskCopyData(buf: Buffer, pos: number, end: number): number | Buffer {
    const masker = this.currentCopyOut()?.masker;
    const run = this.currentRun();
    if (!masker) {
      if (run) run.bytes += end - pos;
      return FORWARD;
    }
    let r: { line: Buffer; masked: number };
    try {
      r = masker.push(buf.subarray(pos + 5, end));
    } catch (err) {
      return this.copyMaskFailed(err);
    }
    if (r.line.length === 0) return DROP;
    const out = copyDataFrame(r.line);
    if (run) {
      run.bytes += out.length;
      run.masked += r.masked;
    }
    return out;
  }

  private copyMaskFailed(err: unknown): number {
    this.ctx.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      'pg relay: COPY output could not be masked',
    );
    this.terminate(
      fatal(SQLSTATE.featureNotSupported, 'hoop: COPY output could not be masked; the connection was closed'),
      'COPY masking failed',
    );
    return DROP;
  }

  /** End of COPY data: a last row without a newline (PostgreSQL never sends one) is masked too. */
  private onCopyDone(buf: Buffer, pos: number, end: number): number | Buffer {
    const state = this.currentCopyOut();
    if (!state?.masker) return FORWARD;
    let r: { line: Buffer; masked: number };
    try {
      r = state.masker.finish();
    } catch (err) {
      return this.copyMaskFailed(err);
    }
    state.masker = null;
    if (r.line.length === 0) return FORWARD;
    const run = this.currentRun();
    if (run) run.masked += r.masked;
    return Buffer.concat([copyDataFrame(r.line), buf.subarray(pos, end)]);
  }

  private onCommandComplete(h: Pending | undefined, buf: Buffer, pos: number, end: number): number | Buffer {
    const tag = readCommandTag(buf, pos + 5, end);
    if (h?.kind === 'simple') {
      if (h.run) this.finishRun(h.run, rowsFromCommandTag(tag), null);
      h.index++;
      h.masker = null;
      h.copyOut = null;
      h.run = h.index < h.statements.length ? this.newRun(h.statements[h.index]!, 'simple', []) : null;
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
    return this.maskNoticeFields(BackendType.errorResponse, fields, stmt);
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
    const fields = h.fields;
    if (h.failed || !fields) {
      h.done(null);
      return;
    }
    const oids = fields.map((f) => f.tableOid);
    if (this.ctx.catalog.knows(oids) && !this.untraced(fields)) {
      h.done(this.copyPlanFromKnown(h.info, fields));
      return;
    }
    this.ctx.catalog
      .load(oids)
      .then(async () => {
        // a view the lineage has not traced (see onRowDescription): traced first
        if (this.untraced(fields)) this.applyViews(await this.ctx.catalog.loadViews(true));
        if (this.untraced(fields)) throw new Error('a view read by COPY could not be traced');
      })
      .then(
        () => h.done(this.copyPlanFromKnown(h.info, fields)),
        (err: unknown) => {
          this.ctx.logger.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'pg relay: catalog lookup for COPY failed',
          );
          h.done(null);
        },
      );
  }

  private copyPlanFromKnown(info: CopyInfo, fields: RowField[]): MaskPlan {
    const catalog = this.ctx.catalog;
    const origins: ColumnOrigin[] = [];
    for (const f of fields) {
      const t = f.tableOid ? catalog.cached(f.tableOid) : null;
      const col = t && f.columnNumber > 0 ? t.columns.get(f.columnNumber) : undefined;
      // `COPY table TO` without a column list leaves out generated columns; the describe used `*`.
      if (!info.query && !info.columns && col?.generated) continue;
      origins.push({
        name: f.name,
        table: col ? t!.table : null,
        column: col ? col.name : null,
        typeOid: f.typeOid,
        format: 0,
      });
    }
    return planMask(this.maskRules, origins);
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

  /** A NOTIFY payload is text from another session, of any origin: the detectors scan it. */
  private maskNotification(buf: Buffer, pos: number, end: number): number | Buffer {
    if (!this.masking || this.detectors.length === 0) return FORWARD;
    // Int32 pid, String channel, String payload
    const channelEnd = buf.indexOf(0, pos + 9);
    const payloadEnd = channelEnd < 0 ? -1 : buf.indexOf(0, channelEnd + 1);
    if (channelEnd < 0 || payloadEnd < 0 || payloadEnd >= end) {
      // not what PostgreSQL sends: unscannable, so not passed on
      this.terminate(
        fatal(SQLSTATE.protocolViolation, 'hoop: malformed NotificationResponse from the database'),
        'malformed NotificationResponse',
      );
      return DROP;
    }
    const payload = buf.toString('utf8', channelEnd + 1, payloadEnd);
    const masked = maskNoticeText(payload, this.maskRules, this.detectors);
    if (masked === payload) return FORWARD;
    const head = buf.subarray(pos + 5, channelEnd + 1); // pid and channel, unchanged
    const body = Buffer.from(`${masked}\0`, 'utf8');
    const out = Buffer.allocUnsafe(5 + head.length + body.length);
    out[0] = BackendType.notificationResponse;
    out.writeInt32BE(4 + head.length + body.length, 1);
    head.copy(out, 5);
    body.copy(out, 5 + head.length);
    return out;
  }

  private maskNotice(type: number, buf: Buffer, pos: number, end: number): number | Buffer {
    if (!this.masking) return FORWARD;
    return this.maskNoticeFields(type, readNoticeFields(buf, pos + 5, end), this.currentRun()?.stmt);
  }

  /**
   * Error/notice texts can quote values (a unique violation's DETAIL, a cast's MESSAGE): mask them too;
   * for a statement reading a table with masked columns, also whatever it quotes that the statement
   * does not (guardEchoedValues).
   */
  private maskNoticeFields(
    type: number,
    fields: Array<[string, string]>,
    stmt: ClassifiedStatement | null | undefined,
  ): number | Buffer {
    if (!this.masking) return FORWARD;
    const sqlstate = fields.find(([c]) => c === 'C')?.[1] ?? '';
    const guarded = stmt ? this.readsMaskedTable(stmt) : false;
    let changed = 0;
    const out = fields.map(([code, value]): [string, string] => {
      if (!NOTICE_TEXT_FIELDS.has(code)) return [code, value];
      let masked = maskNoticeText(value, this.maskRules, this.detectors);
      if (guarded && ECHO_FIELDS.has(code)) masked = guardEchoedValues(code, masked, sqlstate, stmt!.source);
      if (masked !== value) changed++;
      return [code, masked];
    });
    if (changed === 0) return FORWARD;
    const run = this.currentRun();
    if (run) run.masked += changed;
    return fieldsMessage(type, out);
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
    this.ctx.flow.completed(run.op, run.reasons, {
      rows,
      bytes: run.bytes,
      duration_ms: durationMs,
      masked: run.masked,
      error: sqlstate || undefined,
    });
  }
}

/** The operation a statement is (COPY is one of its own); a null statement: an unreadable message. */
function statementOp(stmt: ClassifiedStatement | null, protocol: 'simple' | 'extended'): PgOperation {
  if (stmt?.copy) return { kind: 'pg.copy', protocol, statement: stmt, direction: stmt.copy.direction };
  return { kind: 'pg.statement', protocol, statement: stmt };
}

function copyDataFrame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = BackendType.copyData;
  out.writeInt32BE(4 + payload.length, 1);
  payload.copy(out, 5);
  return out;
}
const NOTICE_TEXT_FIELDS = new Set(['M', 'D', 'H', 'W', 'q']);
/** the fields guardEchoedValues looks at: message, detail, hint, context */
const ECHO_FIELDS = new Set(['M', 'D', 'H', 'W']);

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The query whose description gives a COPY's columns in COPY's order. */
export function copyDescribeSql(info: CopyInfo): string | null {
  if (info.query) return info.queryText ?? null;
  if (!info.table) return null;
  const table = info.table
    .split('.')
    .map((p) => quoteIdent(p))
    .join('.');
  const cols = info.columns?.length ? info.columns.map(quoteIdent).join(', ') : '*';
  return `SELECT ${cols} FROM ${table}`;
}
