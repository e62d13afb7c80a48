// Result masking for one connection: the mask plan of each result (RowDescription → column origins
// from the catalog → policy/mask/plan.ts), and the rewriting of what the server sends under it: data
// rows, a FunctionCall's value, COPY output, error and notice texts, NOTIFY payloads. The rules are
// the policy's; this module applies them to frames. Fail closed: what cannot be matched to a plan is
// not let out (the connection is closed through `fail`).
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Detector, MaskRule } from '../../../config/schema.js';
import type { TargetViews } from '../../../policy/pg/facts.js';
import {
  columnMaskRules,
  CopyOutMasker,
  type MaskedCopyData,
  guardEchoedValues,
  maskCell,
  maskCellAt,
  maskNoticeText,
  planMask,
  tableIsRule,
} from '../../../policy/sql/index.js';
import type {
  CellAction,
  ClassifiedStatement,
  ColumnOrigin,
  CopyInfo,
  MaskPlan,
} from '../../../policy/sql/types.js';
import { type BackendError, fatal, SQLSTATE } from '../backend-error.js';
import {
  BackendType,
  fieldsMessage,
  type RowField,
  readNoticeFields,
  readRowDescription,
} from '../backend-messages.js';
import { CATALOG_TTL_MS, type CatalogResolver } from '../catalog/resolver.js';
import { copyDataFrame } from './frames.js';
import {
  type CopyOutState,
  DROP,
  FORWARD,
  type FrameAction,
  REFUSED_BY_SERVER,
  type RowMasker,
  type StatementRun,
} from './pending.js';

const PASS: CellAction = { kind: 'pass' };
const NOTICE_TEXT_FIELDS = new Set(['M', 'D', 'H', 'W', 'q']);
/** the fields guardEchoedValues looks at: message, detail, hint, context */
const ECHO_FIELDS = new Set(['M', 'D', 'H', 'W']);

export interface ResultMaskingDeps {
  catalog: CatalogResolver;
  logger: Logger;
  /** close the connection with this FATAL error (what cannot be masked is not let out) */
  fail(err: BackendError, why: string): void;
  /** read the view lineage again and apply it (apply() is called with the new rules) */
  retrace(): Promise<void>;
}

export class ResultMasking {
  /** the grant's mask rules, plus those derived for views over masked columns (apply) */
  private rules: MaskRule[];
  readonly detectors: Detector[];
  /** the grant masks anything */
  readonly active: boolean;
  /** the grant has column rules: results from untraced views must be traced first */
  private readonly columnMasking: boolean;
  /** the lineage the rules were derived from */
  private views: TargetViews | null = null;
  private readonly planCache = new Map<string, RowMasker>();
  /** the last RowDescription body whose plan was in the cache, and that plan */
  private lastRowDescription: Buffer | null = null;
  private lastRowMasker: RowMasker | null = null;
  private planCacheGeneration = -1;
  private planCacheSince = 0;
  /** maskDataRow's scratch: per changed cell its index, start and end; and its new value */
  private rowReplaced = new Int32Array(3 * 64);
  private readonly rowValues: Array<Buffer | null> = [];

  constructor(
    rules: readonly MaskRule[],
    private readonly deps: ResultMaskingDeps,
  ) {
    this.rules = [...rules];
    this.columnMasking = rules.some((r) => 'column' in r);
    this.detectors = rules.flatMap((r) => ('detector' in r ? [r.detector] : []));
    this.active = rules.length > 0;
  }

  /** The effective grant's rules under a new lineage: plans made under the previous ones are dropped. */
  apply(rules: readonly MaskRule[], views: TargetViews): void {
    this.rules = [...rules];
    this.views = views;
    this.planCacheGeneration = -1;
  }

  /** true when DataRows must go through maskDataRow: an active plan, or (fail closed) no plan at all */
  rowsNeedMasking(m: RowMasker | null): boolean {
    if (!this.active) return false;
    return m === null || m.active;
  }

  /**
   * The plan for a RowDescription: now (from the cache or the cached catalog), a promise of it (the
   * catalog must be read first), or null when the description is malformed (the connection is closed).
   */
  describe(buf: Buffer, pos: number, end: number): RowMasker | Promise<RowMasker> | null {
    // The same description as last time (an application repeating its statements): the same plan,
    // without decoding the message or making its key.
    const last = this.lastRowDescription;
    if (
      last !== null &&
      last.length === end - pos - 5 &&
      buf.compare(last, 0, last.length, pos + 5, end) === 0 &&
      this.planCacheFresh()
    )
      return this.lastRowMasker!;
    const key = buf.toString('latin1', pos + 5, end);
    const cached = this.cachedPlan(key);
    if (cached) {
      this.lastRowDescription = Buffer.from(buf.subarray(pos + 5, end));
      this.lastRowMasker = cached;
      return cached;
    }
    const fields = readRowDescription(buf, pos + 5, end);
    if (!fields) {
      this.deps.fail(
        fatal(SQLSTATE.protocolViolation, 'hoop: malformed RowDescription from the database'),
        'bad RowDescription',
      );
      return null;
    }
    const planned = this.planFor(key, fields);
    if (planned) return planned;
    return this.deps.catalog.load(fields.map((f) => f.tableOid)).then(async () => {
      // a view or child the traced lineage lacks (created outside the broker since, and reached by
      // a name it knew: another schema on the search_path): trace again before planning
      if (this.untraced(fields)) await this.deps.retrace();
      const m = this.planFor(key, fields);
      if (!m) throw new Error('column origins still unknown after loading the catalog');
      return m;
    });
  }

  /** A mask plan from the cache; undefined: not planned yet. */
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
    const catalog = this.deps.catalog;
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

  /** The plan, computed when every table OID is in the catalog cache and traced; null: read first. */
  private planFor(key: string, fields: RowField[]): RowMasker | null {
    const catalog = this.deps.catalog;
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
    const plan = planMask(this.rules, origins);
    const m: RowMasker = { plan, active: plan.active };
    if (this.planCache.size > 1000) this.planCache.clear();
    this.planCache.set(key, m);
    return m;
  }

  /**
   * With column masks: does a result column come from a view or child the applied lineage has not
   * traced? Its derived rules are then unknown (call after the fields' tables are in the catalog cache).
   */
  untraced(fields: RowField[]): boolean {
    if (!this.columnMasking) return false;
    for (const f of fields) {
      if (f.tableOid === 0) continue;
      const t = this.deps.catalog.cached(f.tableOid);
      if (t?.passesOn && !this.views?.traced.has(f.tableOid)) return true;
    }
    return false;
  }

  /** Does the statement read a table (or a view) a column rule names? */
  private readsMaskedTable(stmt: ClassifiedStatement): boolean {
    if (!this.columnMasking) return false;
    const rules = columnMaskRules(this.rules);
    return stmt.tables.some((t) => rules.some((r) => tableIsRule(t, r)));
  }

  maskDataRow(
    m: RowMasker | null,
    run: StatementRun | null,
    buf: Buffer,
    pos: number,
    end: number,
  ): FrameAction {
    if (!m && this.active) {
      // Rows without a known description while masking applies: never let them out unmasked.
      this.deps.logger.error('pg relay: DataRow without a mask plan; closing the connection');
      this.deps.fail(
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
    // The cells are walked by offset; a cell whose action is pass is not looked at, and a row
    // with no changed cell goes out as it came (no copy).
    const actions = m.plan.actions;
    if (end - pos < 7) return this.badDataRow();
    const count = buf.readInt16BE(pos + 5);
    if (count * 3 > this.rowReplaced.length) this.rowReplaced = new Int32Array(count * 3);
    const replaced = this.rowReplaced;
    let changed = 0;
    let p = pos + 7;
    for (let i = 0; i < count; i++) {
      if (p + 4 > end) return this.badDataRow(changed);
      const len = buf.readInt32BE(p);
      p += 4;
      if (len < 0) continue; // NULL stays NULL
      if (p + len > end) return this.badDataRow(changed);
      const action: CellAction | undefined = actions[i];
      if (action !== undefined && action.kind !== 'pass') {
        const r = maskCellAt(action, buf, p, p + len, this.detectors);
        if (r !== null) {
          replaced[changed * 3] = i;
          replaced[changed * 3 + 1] = p;
          replaced[changed * 3 + 2] = p + len;
          this.rowValues[changed] = r.value;
          changed++;
        }
      }
      p += len;
    }
    if (changed === 0) {
      if (run) run.bytes += end - pos;
      return FORWARD;
    }
    // the row as it came up to its last cell, each changed cell (its Int32 length and value) replaced
    const rowEnd = p;
    let size = rowEnd - pos;
    for (let k = 0; k < changed; k++) {
      size -= replaced[k * 3 + 2]! - replaced[k * 3 + 1]!;
      size += this.rowValues[k]?.length ?? 0;
    }
    const out = Buffer.allocUnsafe(size);
    out[0] = BackendType.dataRow;
    out.writeInt32BE(size - 1, 1);
    let at = 5;
    let from = pos + 5;
    for (let k = 0; k < changed; k++) {
      const cellStart = replaced[k * 3 + 1]!;
      at += buf.copy(out, at, from, cellStart - 4);
      const v = this.rowValues[k] ?? null;
      this.rowValues[k] = null;
      out.writeInt32BE(v === null ? -1 : v.length, at);
      at += 4;
      if (v !== null) at += v.copy(out, at);
      from = replaced[k * 3 + 2]!;
    }
    buf.copy(out, at, from, rowEnd);
    if (run) {
      run.bytes += out.length;
      run.masked += changed;
    }
    return out;
  }

  private badDataRow(pendingValues = 0): FrameAction {
    for (let k = 0; k < pendingValues; k++) this.rowValues[k] = null;
    this.deps.fail(
      fatal(SQLSTATE.protocolViolation, 'hoop: malformed DataRow from the database'),
      'bad DataRow',
    );
    return DROP;
  }

  /** How a FunctionCall's one value is masked: like a computed column of its result type. */
  functionResult(name: string, returnType: number, format: 0 | 1): CellAction {
    if (!this.active) return PASS;
    const origin: ColumnOrigin = { name, table: null, column: null, typeOid: returnType, format };
    return planMask(this.rules, [origin]).actions[0]!;
  }

  /** FunctionCallResponse: Int32 length (-1 NULL) and the value; masked by the call's plan. */
  maskFunctionCallResponse(
    action: CellAction,
    run: StatementRun | null,
    buf: Buffer,
    pos: number,
    end: number,
  ): FrameAction {
    if (run) run.bytes += end - pos;
    if (action.kind === 'pass') return FORWARD;
    if (end - pos < 9) return FORWARD; // malformed from the server: its own problem, passed as sent
    const len = buf.readInt32BE(pos + 5);
    const value = len < 0 ? null : buf.subarray(pos + 9, Math.min(end, pos + 9 + len));
    const r = maskCell(action, value, this.detectors);
    if (!r.masked) return FORWARD;
    if (run) run.masked++;
    const v = r.value;
    const out = Buffer.allocUnsafe(9 + (v?.length ?? 0));
    out[0] = BackendType.functionCallResponse;
    out.writeInt32BE(8 + (v?.length ?? 0), 1);
    out.writeInt32BE(v === null ? -1 : v.length, 5);
    v?.copy(out, 9);
    return out;
  }

  /** COPY … TO STDOUT of a simple Query starts: its masker from the plan the describe gave, or null (closed). */
  startCopyOut(stmt: ClassifiedStatement | undefined, plan: MaskPlan | undefined): CopyOutState | null {
    if (!stmt?.copy || !plan) {
      // Masking applies and we cannot tell which columns are which: do not let the data out.
      this.deps.fail(
        fatal(
          SQLSTATE.featureNotSupported,
          'hoop: COPY output cannot be masked (column origins unknown); the connection was closed',
        ),
        'unmaskable COPY',
      );
      return null;
    }
    return { masker: plan.active ? new CopyOutMasker(stmt.copy, plan.actions, this.detectors) : null };
  }

  maskCopyData(
    state: CopyOutState | null,
    run: StatementRun | null,
    buf: Buffer,
    pos: number,
    end: number,
  ): FrameAction {
    const masker = state?.masker;
    if (!masker) {
      if (run) run.bytes += end - pos;
      return FORWARD;
    }
    let r: MaskedCopyData;
    try {
      r = masker.push(buf.subarray(pos + 5, end));
    } catch (err) {
      return this.copyMaskFailed(err);
    }
    if (r.same) {
      if (run) run.bytes += end - pos;
      return FORWARD;
    }
    if (r.line.length === 0) return DROP;
    const out = r.frame ?? copyDataFrame(r.line);
    if (run) {
      run.bytes += out.length;
      run.masked += r.masked;
    }
    return out;
  }

  /**
   * The CopyData messages of a masked text COPY TO starting at `pos`, as many as are whole in this
   * chunk (CopyOutMasker.pushRun): where they end, and what replaces them (null: they pass as they
   * came; DROP: the connection was closed). end === pos: take the next message the usual way.
   */
  maskCopyRun(
    state: CopyOutState,
    run: StatementRun | null,
    buf: Buffer,
    pos: number,
    limit: number,
  ): { end: number; out: Buffer | null | typeof DROP } {
    const masker = state.masker;
    if (!masker) return { end: pos, out: null };
    let r: { end: number; out: Buffer | null; masked: number };
    try {
      r = masker.pushRun(buf, pos, limit);
    } catch (err) {
      return { end: pos, out: this.copyMaskFailed(err) as typeof DROP };
    }
    if (run) {
      run.bytes += r.out ? r.out.length : r.end - pos;
      run.masked += r.masked;
    }
    return r;
  }

  /** End of COPY data: a last row without a newline (PostgreSQL never sends one) is masked too. */
  copyDone(
    state: CopyOutState | null,
    run: StatementRun | null,
    buf: Buffer,
    pos: number,
    end: number,
  ): FrameAction {
    if (!state?.masker) return FORWARD;
    let r: { line: Buffer; masked: number };
    try {
      r = state.masker.finish();
    } catch (err) {
      return this.copyMaskFailed(err);
    }
    state.masker = null;
    if (r.line.length === 0) return FORWARD;
    if (run) run.masked += r.masked;
    return Buffer.concat([copyDataFrame(r.line), buf.subarray(pos, end)]);
  }

  private copyMaskFailed(err: unknown): FrameAction {
    this.deps.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      'pg relay: COPY output could not be masked',
    );
    this.deps.fail(
      fatal(SQLSTATE.featureNotSupported, 'hoop: COPY output could not be masked; the connection was closed'),
      'COPY masking failed',
    );
    return DROP;
  }

  /**
   * The plan of a COPY TO from its described columns (the in-band describe the relay injected), once
   * their tables are known and traced; null when they cannot be (the COPY is then refused);
   * REFUSED_BY_SERVER when the server answered the describe with an error (it will refuse the COPY too).
   */
  copyPlan(
    info: CopyInfo,
    fields: RowField[] | null,
    failed: boolean,
  ): Promise<MaskPlan | typeof REFUSED_BY_SERVER | null> {
    if (failed) return Promise.resolve(REFUSED_BY_SERVER);
    if (!fields) return Promise.resolve(null);
    const catalog = this.deps.catalog;
    const oids = fields.map((f) => f.tableOid);
    if (catalog.knows(oids) && !this.untraced(fields))
      return Promise.resolve(this.copyPlanFromKnown(info, fields));
    return catalog
      .load(oids)
      .then(async () => {
        // a view the lineage has not traced (see describe): traced first
        if (this.untraced(fields)) await this.deps.retrace();
        if (this.untraced(fields)) throw new Error('a view read by COPY could not be traced');
      })
      .then(
        () => this.copyPlanFromKnown(info, fields),
        (err: unknown) => {
          this.deps.logger.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'pg relay: catalog lookup for COPY failed',
          );
          return null;
        },
      );
  }

  private copyPlanFromKnown(info: CopyInfo, fields: RowField[]): MaskPlan {
    const catalog = this.deps.catalog;
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
    return planMask(this.rules, origins);
  }

  /** A NOTIFY payload is text from another session, of any origin: the detectors scan it. */
  maskNotification(buf: Buffer, pos: number, end: number): FrameAction {
    if (!this.active || this.detectors.length === 0) return FORWARD;
    // Int32 pid, String channel, String payload
    const channelEnd = buf.indexOf(0, pos + 9);
    const payloadEnd = channelEnd < 0 ? -1 : buf.indexOf(0, channelEnd + 1);
    if (channelEnd < 0 || payloadEnd < 0 || payloadEnd >= end) {
      // not what PostgreSQL sends: unscannable, so not passed on
      this.deps.fail(
        fatal(SQLSTATE.protocolViolation, 'hoop: malformed NotificationResponse from the database'),
        'malformed NotificationResponse',
      );
      return DROP;
    }
    const payload = buf.toString('utf8', channelEnd + 1, payloadEnd);
    const masked = maskNoticeText(payload, this.rules, this.detectors);
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

  maskNotice(type: number, buf: Buffer, pos: number, end: number, run: StatementRun | null): FrameAction {
    if (!this.active) return FORWARD;
    return this.maskNoticeFields(type, readNoticeFields(buf, pos + 5, end), run?.stmt, run);
  }

  /**
   * Error/notice texts can quote values (a unique violation's DETAIL, a cast's MESSAGE): mask them too;
   * for a statement reading a table with masked columns, also whatever it quotes that the statement
   * does not (guardEchoedValues).
   */
  maskNoticeFields(
    type: number,
    fields: Array<[string, string]>,
    stmt: ClassifiedStatement | null | undefined,
    run: StatementRun | null,
  ): FrameAction {
    if (!this.active) return FORWARD;
    const sqlstate = fields.find(([c]) => c === 'C')?.[1] ?? '';
    const guarded = stmt ? this.readsMaskedTable(stmt) : false;
    let changed = 0;
    const out = fields.map(([code, value]): [string, string] => {
      if (!NOTICE_TEXT_FIELDS.has(code)) return [code, value];
      let masked = maskNoticeText(value, this.rules, this.detectors);
      if (guarded && ECHO_FIELDS.has(code)) masked = guardEchoedValues(code, masked, sqlstate, stmt!.source);
      if (masked !== value) changed++;
      return [code, masked];
    });
    if (changed === 0) return FORWARD;
    if (run) run.masked += changed;
    return fieldsMessage(type, out);
  }
}
