// The statement gate, the relay's client side for SQL: every Query, Parse and FunctionCall is judged
// (policy/decide.ts, with the catalog facts it needs read first) before it reaches the
// database; an allowed one is forwarded with what its answers need (its run for the transcript, its
// COPY plans), a refused one is recorded (the flow) and answered by letting the database fail a
// sentinel in its place (see relay.ts), so the server goes through the states a real error causes.
// A held one goes to the flow's approver (the NoticeResponse, the message's SHA-256) and, approved, is
// handled again with its hold passing once. A held Parse runs nothing, so it is prepared at once and
// each Bind of it (one execution, with its parameter values) is held on its own (bindHold).
//
// Size (over 600 lines): judging, refusing and releasing a held message share the gate's per-message
// state (approvedFor, the traced-for markers, the prepared statements); the pure judgements are in
// policy/pg/, the approvals themselves in approvals/.
import { createHash } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { describeApprovers } from '../../../approvals/rules.js';
import { formatDuration } from '../../../config/duration.js';
import { pgDeniedKind, pgText } from '../../../audit/operation-events.js';
import type { Grant } from '../../../config/schema.js';
import type { Decision, DenyDecision } from '../../../policy/decision.js';
import type {
  PgFunctionCallOperation,
  PgOperation,
  PgStatementOperation,
} from '../../../policy/operation.js';
import type { TargetViews, ViewLineage } from '../../../policy/pg/facts.js';
import { catalogUnreadable, decide, type PgFacts } from '../../../policy/decide.js';
import { effectiveGrant } from '../../../policy/pg/views.js';
import { copyMaskSupport, redactSql, trackPrepared } from '../../../policy/sql/index.js';
import type { ClassifiedStatement, ClassifyResult, CopyInfo, MaskPlan } from '../../../policy/sql/types.js';
import { type BackendError, error as backendError, SQLSTATE } from '../backend-error.js';
import type { FunctionInfo } from '../catalog/resolver.js';
import type { CachedClassification, CacheEntry } from '../classification-cache.js';
import {
  decodeFunctionCall,
  decodeParse,
  decodeQuery,
  type FunctionCallMessage,
} from '../frontend-messages.js';
import type { FrontendMessage } from '../frontend-reader.js';
import type { HoldExtras } from '../../operation-flow.js';
import { noticeResponse } from '../backend-messages.js';
import type { RelayContext } from '../relay.js';
import { copyDescribeSql, quoteIdent, truncate } from './frames.js';
import { type Pending, REFUSED_BY_SERVER, type StatementRun } from './pending.js';
import type { ResultMasking } from './result-masking.js';

/** Text that fails to parse on every PostgreSQL version: the stand-in for a denied statement. */
export const SENTINEL_SQL = 'hoop statement denied';

/** What the gate needs of the relay: its extended-protocol state and its way to the upstream. */
export interface GatePort {
  /** prepared statements by name: protocol Parse and SQL PREPARE share one namespace */
  readonly prepared: Map<string, ClassifiedStatement>;
  isClosed(): boolean;
  /** inside a client's extended-protocol batch not yet ended by Sync */
  inExtendedBatch(): boolean;
  /** this session ran DDL in the transaction block it is still in (see Relay.ddlInTransaction) */
  ddlInTransaction(): boolean;
  forgetNamedPortals(keep?: string): void;
  /** forward the client's message upstream */
  forward(msg: FrontendMessage): void;
  /** write the broker's own bytes upstream, after what is pending */
  inject(data: Buffer): void;
  /** expect an answer */
  push(p: Pending): void;
  newRun(
    stmt: ClassifiedStatement | null,
    protocol: 'simple' | 'extended',
    reasons: string[],
    op?: PgOperation,
  ): StatementRun;
  /** handle the message again (after a catalog reading, or an approval) */
  handleAgain(msg: FrontendMessage): Promise<void> | undefined;
  /** a refused extended-protocol message: drop the client's messages until Sync, as PostgreSQL does */
  skipUntilSync(): void;
  /** send the client a message of the broker's own (a NoticeResponse) between whole server messages */
  notifyClient(data: Buffer): void;
}

/** The operation a statement is (COPY is one of its own); a null statement: an unreadable message. */
export function statementOp(stmt: ClassifiedStatement | null, protocol: 'simple' | 'extended'): PgOperation {
  if (stmt?.copy) return { kind: 'pg.copy', protocol, statement: stmt, direction: stmt.copy.direction };
  return { kind: 'pg.statement', protocol, statement: stmt };
}

const PARSE_TYPE = 0x50; // 'P'

export class StatementGate {
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
  /** the message last handled again after a reading of the lineage that started after it */
  private tracedFor: FrontendMessage | null = null;
  /** the same for a reading of what users defined */
  private userObjectsFor: FrontendMessage | null = null;
  /** views over masked columns that no rule can name (EffectiveGrant.unnameable) */
  private unnameableViews: ViewLineage[] = [];
  /** the name of the broker's own describe statements (COPY columns) */
  private readonly describeName: string;

  constructor(
    private readonly ctx: RelayContext,
    private readonly results: ResultMasking,
    private readonly port: GatePort,
  ) {
    this.grant = ctx.grant;
    this.columnMasking = (ctx.grant.mask ?? []).some((r) => 'column' in r);
    this.outOfSight = this.columnMasking || (ctx.grant.deny ?? []).some((r) => 'table' in r);
    this.tracesViews = this.outOfSight || ctx.grant.access === 'read';
    this.describeName = `hoop_describe_${ctx.connId}`;
    this.gateFacts = {
      kind: 'pg',
      message: [],
      views: null,
      unnameable: [],
      relationsSettled: false,
      userObjects: () => ctx.catalog.cachedUserObjects(),
      userObjectsFresh: false,
      approved: false,
      memo: null,
    };
  }

  /**
   * A message whose frame is fine but whose content is not: PostgreSQL answers "invalid message format"
   * with a plain ERROR and the connection stays usable, so does the broker (through the sentinel).
   */
  malformed(message: string, simple: boolean, functionCall = false): Promise<void> {
    const op: PgOperation = functionCall
      ? { kind: 'pg.function_call', oid: null, function: null, statement: null }
      : { kind: 'pg.statement', protocol: simple ? 'simple' : 'extended', statement: null };
    const err = backendError(SQLSTATE.protocolViolation, `hoop: ${message}`);
    return this.sendDenial(op, { rule: 'protocol', reasons: [message] }, err, simple);
  }

  private classify(text: string): CachedClassification {
    return this.ctx.classifier.classify(text, this.port.prepared);
  }

  onQuery(msg: FrontendMessage): Promise<void> | undefined {
    const text = decodeQuery(msg.body);
    if (text === null)
      return this.malformed(
        'invalid Query message format (the text must be one NUL-terminated string)',
        true,
      );
    if (!this.viewRulesReady()) return this.afterViews(msg, true);
    this.port.forgetNamedPortals();
    const { result: cls, entry } = this.classify(text);
    if (!cls.ok) return this.denyUnparsable(text, cls, true);
    const verdict = this.gate(cls.statements, entry, msg, 'simple');
    if (verdict.effect !== 'allow') return this.onVerdict(verdict, cls.statements, msg, true);
    const copies = this.results.active
      ? cls.statements.flatMap((s, i) => (s.copy?.direction === 'to' ? [i] : []))
      : [];
    if (copies.length === 0) return this.forwardQuery(msg, cls.statements, new Map());
    return this.describeCopiesThenForward(msg, cls.statements, copies);
  }

  private forwardQuery(
    msg: FrontendMessage,
    statements: ClassifiedStatement[],
    copyPlans: Map<number, MaskPlan>,
  ): Promise<void> | undefined {
    const ops = this.ctx.recordBeforeForward ? statements.map((s) => statementOp(s, 'simple')) : [];
    return this.recordThenForward(ops, () => {
      for (const s of statements) trackPrepared(this.port.prepared, s);
      this.port.forward(msg);
      const reasons = this.approvedFor === msg ? this.approvedReasons : [];
      this.port.push({
        kind: 'simple',
        statements,
        index: 0,
        run: this.port.newRun(statements[0] ?? null, 'simple', reasons),
        masker: null,
        copyPlans,
        copyOut: null,
        ...(reasons.length ? { reasons } : {}),
      });
    });
  }

  /**
   * Forward an allowed message: at once (recording: background, the default: its statements are
   * recorded when they complete), or once the events of the statements it runs are durable
   * (before_forward); when they cannot be recorded the flow has ended the connection and nothing is sent.
   */
  recordThenForward(ops: readonly PgOperation[], forward: () => void): Promise<void> | undefined {
    if (!this.ctx.recordBeforeForward || ops.length === 0) {
      forward();
      return undefined;
    }
    return this.ctx.flow.forwarding(ops.map((op) => ({ op, reasons: [] }))).then((ok) => {
      if (ok && !this.port.isClosed()) forward();
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
    if (this.port.inExtendedBatch()) {
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
      this.injectCopyDescribe(statements[i]!.copy!).then((plan) => ({ i, plan }) as const),
    );
    for (const { i, plan } of await Promise.all(described)) {
      const stmt = statements[i]!;
      // The server refused to describe the query (an aborted transaction, a missing table…): it will
      // refuse the COPY the same way, so the COPY goes on without a plan and the client gets the
      // server's own error; were it to start copying after all, the connection is closed before any
      // row (the relay's CopyOutResponse check).
      if (plan === REFUSED_BY_SERVER) continue;
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
    if (this.port.isClosed()) return;
    return this.forwardQuery(msg, statements, plans);
  }

  private injectCopyDescribe(info: CopyInfo): Promise<MaskPlan | typeof REFUSED_BY_SERVER | null> {
    const sql = copyDescribeSql(info);
    if (sql === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.port.inject(
        Buffer.concat([
          serialize.parse({ name: this.describeName, text: sql, types: [] }),
          serialize.describe({ type: 'S', name: this.describeName }),
          serialize.close({ type: 'S', name: this.describeName }),
          serialize.sync(),
        ]),
      );
      this.port.push({ kind: 'copy-describe', info, fields: null, failed: false, done: resolve });
    });
  }

  onParse(msg: FrontendMessage): Promise<void> | undefined {
    const p = decodeParse(msg.body);
    if (!p) return this.malformed('invalid Parse message format', false);
    if (!this.viewRulesReady()) return this.afterViews(msg, false);
    const { result: cls, entry } = this.classify(p.text);
    if (!cls.ok) return this.denyUnparsable(p.text, cls, false, p.name);
    const verdict = this.gate(cls.statements, entry, msg, 'extended');
    if (verdict.effect !== 'allow') return this.onVerdict(verdict, cls.statements, msg, false, p.name);
    this.heldStatements.delete(p.name);
    const previous = this.port.prepared.get(p.name);
    const stmt = cls.statements[0];
    if (stmt) this.port.prepared.set(p.name, stmt);
    else this.port.prepared.delete(p.name);
    for (const s of cls.statements) trackPrepared(this.port.prepared, s);
    this.port.forward(msg);
    this.port.push({ kind: 'parse', name: p.name, previous });
    return;
  }

  /**
   * FunctionCall names a function by OID: the broker reads its schema and name from the catalog (by OID,
   * so no search_path matters) and decides on `SELECT schema.name($1, …)`, the call in SQL, with the same
   * function rules; a function it cannot find or classify is denied. Answered like a simple query
   * (FunctionCallResponse or ErrorResponse, then ReadyForQuery), so a denial keeps the connection usable.
   */
  onFunctionCall(msg: FrontendMessage): Promise<void> | undefined {
    const fc = decodeFunctionCall(msg.body);
    if (!fc) return this.malformed('invalid FunctionCall message format', true, true);
    const known = this.ctx.catalog.cachedFunction(fc.oid);
    if (known !== undefined) return this.decideFunctionCall(msg, fc, known);
    return this.ctx.catalog.loadFunction(fc.oid).then(
      (info) => {
        if (this.port.isClosed()) return;
        return this.decideFunctionCall(msg, fc, info);
      },
      (err: unknown) => {
        this.ctx.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'pg relay: catalog lookup for a FunctionCall failed',
        );
        if (this.port.isClosed()) return;
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
    const f = this.gateFacts;
    f.approved = this.approvedFor === msg;
    f.memo = entry;
    f.message = undefined;
    const d = decide(this.grant, op, f);
    if (d.effect !== 'allow') return this.refuse(msg, op, d, true, SQLSTATE.insufficientPrivilege);
    const result = this.results.functionResult(info.name, info.returnType, fc.resultFormat);
    return this.recordThenForward([op], () => {
      this.port.forward(msg);
      this.port.push({ kind: 'function-call', run: this.port.newRun(stmt, 'simple', [], op), result });
    });
  }

  private denyFunctionCall(oid: number, text: string, reason: string): Promise<void> {
    return this.denyOp(
      { kind: 'pg.function_call', oid, function: null, statement: null },
      { effect: 'deny', rule: 'protocol: FunctionCall', reasons: [`${reason} (${text})`] },
      true,
      SQLSTATE.insufficientPrivilege,
    );
  }

  /**
   * With column masks, views over masked columns get derived rules (policy/mask/views.ts) from the
   * catalog's view lineage; false when that lineage must be read first.
   */
  private viewRulesReady(): boolean {
    if (!this.tracesViews) return true;
    const views = this.ctx.catalog.cachedViews();
    if (views === undefined) return this.port.ddlInTransaction() && this.appliedViews !== null;
    this.applyViews(views);
    return true;
  }

  applyViews(views: TargetViews): void {
    if (views === this.appliedViews) return;
    this.appliedViews = views;
    const effective = effectiveGrant(this.ctx.grant, views);
    this.grant = effective.grant;
    this.unnameableViews = effective.unnameable;
    this.results.apply(this.grant.mask ?? [], views); // plans made under the previous rules are dropped
  }

  /** The statement gate's facts (policy/pg/statement-gate.ts), kept on the relay and updated per message. */
  private readonly gateFacts: PgFacts;

  /** why the approved message runs (the approval's outcome), for its statements' events */
  private approvedReasons: string[] = [];
  /** the message last judged and its statements (a hold holds, and its approval releases, all of them) */
  private judged: { msg: FrontendMessage; statements: ClassifiedStatement[] } | null = null;

  /** Judge a message's statements (policy/decide.ts); allow: they may go upstream. */
  private gate(
    statements: ClassifiedStatement[],
    entry: CacheEntry | null,
    msg: FrontendMessage,
    protocol: 'simple' | 'extended',
  ): Decision {
    const f = this.gateFacts;
    f.message = statements;
    f.memo = entry;
    f.views = this.appliedViews;
    f.unnameable = this.unnameableViews;
    f.relationsSettled = this.tracedFor === msg || this.port.ddlInTransaction();
    f.userObjectsFresh = this.userObjectsFor === msg;
    f.approved = this.approvedFor === msg;
    this.judged = { msg, statements };
    return decide(this.grant, statementOp(statements[0] ?? null, protocol), f);
  }

  /** Act on the gate's verdict: read the catalog and judge again, or refuse. */
  private onVerdict(
    verdict: Decision,
    statements: readonly ClassifiedStatement[],
    msg: FrontendMessage,
    simple: boolean,
    parseName?: string,
  ): Promise<void> {
    if (verdict.effect === 'deny' && verdict.needs) {
      const { facts, refresh } = verdict.needs;
      return facts === 'views'
        ? this.afterViews(msg, simple, refresh)
        : this.afterUserObjects(msg, simple, refresh);
    }
    const { statement: index, ...decision } = verdict;
    const unsupported = decision.effect === 'deny' && decision.unsupported === true;
    if (decision.effect === 'deny') delete decision.unsupported;
    return this.refuse(
      msg,
      statementOp(statements[index ?? 0] ?? null, simple ? 'simple' : 'extended'),
      decision,
      simple,
      unsupported ? SQLSTATE.featureNotSupported : SQLSTATE.insufficientPrivilege,
      parseName,
    );
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
      catalogUnreadable(this.ctx.grant, 'views'),
      'pg relay: tracing views failed',
    );
  }

  /** Read what users defined in the catalog, then handle the message again (denied if unreadable). */
  private afterUserObjects(msg: FrontendMessage, simple: boolean, refresh = false): Promise<void> {
    return this.afterCatalog(
      this.ctx.catalog.loadUserObjects(refresh),
      msg,
      simple,
      () => {
        if (refresh) this.userObjectsFor = msg;
      },
      catalogUnreadable(this.ctx.grant, 'user-objects'),
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
    failure: Decision,
    log: string,
  ): Promise<void> {
    return reading.then(
      (value) => {
        if (this.port.isClosed()) return undefined;
        loaded(value);
        return this.port.handleAgain(msg);
      },
      (err: unknown) => {
        this.ctx.logger.warn({ err: err instanceof Error ? err.message : String(err) }, log);
        if (this.port.isClosed()) return undefined;
        const deny: Decision = { ...failure, effect: 'deny' };
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
    if (msg === null) return this.denyOp(op, { ...d, effect: 'deny' }, simple, code, parseName);
    if (msg.type === PARSE_TYPE && parseName !== undefined) {
      // A Parse runs nothing: it is prepared now, and each Bind of it (one execution, with its
      // parameter values) is held on its own (bindHold), so an approval binds text and values.
      const held = { op, decision: d, parse: msg.body };
      this.approvedFor = msg;
      return Promise.resolve(this.port.handleAgain(msg)).then(() => {
        if (!this.port.isClosed() && this.port.prepared.has(parseName))
          this.heldStatements.set(parseName, held);
      });
    }
    return Promise.resolve(this.ctx.flow.settle(op, d, this.holdExtras(msg, op))).then(async (settled) => {
      if (this.port.isClosed()) return undefined;
      if (settled.effect === 'deny') return this.denyOp(op, settled, simple, code, parseName);
      // Approved: the message is handled as if it had just arrived, its hold passing this once.
      this.approvedFor = msg;
      this.approvedReasons = settled.reasons;
      await this.port.handleAgain(msg);
      return undefined;
    });
  }

  /**
   * What the flow's approver gets from the PostgreSQL gateway: the exact message's SHA-256 (a simple
   * Query's text with its literals; a Parse's name, text and parameter types), the redacted text, and
   * the NoticeResponse the client gets at once (psql prints it while it waits).
   */
  private holdExtras(msg: FrontendMessage, op: PgOperation): HoldExtras {
    const all = this.judged?.msg === msg ? this.judged.statements : null;
    // a hold of a message of several statements shows, and binds, all of them: its approval releases them all
    const several = all !== null && all.length > 1;
    return {
      ...(all ? { statement_sources: all.map((s) => s.source) } : {}),
      operation_sha256: createHash('sha256')
        .update(Buffer.from([msg.type]))
        .update(msg.body)
        .digest('hex'),
      summary: truncate(several ? all.map((s) => s.text).join(';\n') : pgText(op), 2000),
      onHeld: (a, links) => {
        if (this.port.isClosed()) return;
        const waitMs = Date.parse(a.expires_at) - Date.parse(a.requested_at);
        this.port.notifyClient(
          noticeResponse({
            severity: 'NOTICE',
            code: '00000',
            message: `hoop: statement held for approval ${a.id}; waiting up to ${formatDuration(waitMs)} (until ${a.expires_at}), then it is denied`,
            detail: `${a.reasons.join('; ')}; approvers: ${describeApprovers(a)}`,
            hint: `approve with: ${links.cli} (or POST ${links.api} {"decision":"approve"}); deny with: hoop-broker approvals deny ${a.id}`,
          }),
        );
      },
      onShown: (a, shown) => {
        if (this.port.isClosed()) return;
        this.port.notifyClient(
          noticeResponse({
            severity: 'NOTICE',
            code: '00000',
            message: `hoop: approval ${a.id} can be decided on its GitHub check run: ${shown.url}`,
          }),
        );
      },
    };
  }

  /** Prepared statements a rule holds: each of their Binds waits for its own approval. */
  private readonly heldStatements = new Map<string, { op: PgOperation; decision: Decision; parse: Buffer }>();

  /**
   * A Bind of a held prepared statement: one execution, held for approval with the SHA-256 of the
   * Parse (name, text, types) and of this Bind (portal, parameter values and formats). The values
   * are hashed only, never shown. undefined: the Bind may go on (not held, or this one approved).
   */
  bindHold(msg: FrontendMessage, statement: string): Promise<void> | undefined {
    const held = this.heldStatements.get(statement);
    if (!held || this.approvedFor === msg) return undefined;
    const { op, decision } = held;
    const extras: HoldExtras = {
      ...this.holdExtras(msg, op),
      operation_sha256: createHash('sha256')
        .update(Buffer.from([PARSE_TYPE]))
        .update(held.parse)
        .update(Buffer.from([msg.type]))
        .update(msg.body)
        .digest('hex'),
    };
    delete extras.statement_sources;
    return Promise.resolve(this.ctx.flow.settle(op, decision, extras)).then(async (settled) => {
      if (this.port.isClosed()) return undefined;
      if (settled.effect === 'deny')
        return this.denyOp(op, settled, false, SQLSTATE.insufficientPrivilege, '');
      this.approvedFor = msg;
      this.approvedReasons = settled.reasons;
      await this.port.handleAgain(msg);
      return undefined;
    });
  }

  /** The statement was closed or prepared again: it is no longer held. */
  forgetStatement(name: string): void {
    this.heldStatements.delete(name);
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
    if (this.port.isClosed()) return;
    if (simple) {
      this.port.inject(serialize.query(SENTINEL_SQL));
    } else {
      const name = parseName ?? '';
      // The unnamed statement is dropped by a failed Parse; a named one that existed survives.
      if (name === '') this.port.prepared.delete('');
      this.port.inject(serialize.parse({ name, text: SENTINEL_SQL, types: [] }));
      this.port.skipUntilSync();
    }
    this.port.push(simple ? { kind: 'denied-simple', error: err } : { kind: 'denied-extended', error: err });
  }

  /** The message whose held decision an approver approved: handled again, its hold passes. */
  private approvedFor: FrontendMessage | null = null;
}
