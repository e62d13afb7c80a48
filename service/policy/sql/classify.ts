// classifySql: what each statement of a SQL text does, from the real PostgreSQL parser's tree.
//
// The walk is generic: every key of every object and every array element is visited, so a relation,
// function call or sub-statement is found wherever the grammar puts it. A few node types get dedicated
// handling on top of that (statements, SELECT scopes, FROM items, sublinks, function calls, column
// references) to follow where column values flow: into the result as-is (the gateway masks them by the
// origin PostgreSQL reports), into an expression (origin lost), or into a condition.
//
// Size (over 600 lines, on purpose): the Analysis class is one walk over the tree whose node handlers
// share its state (scopes, the statement's facts, the visit budget); the generic pieces live beside it
// (parse-tree.ts, scope.ts, copy-options.ts, settings-name.ts), the judgements in decide.ts.
import { bypassesMasks, classifyFunction, settingChangeRisk, splitFunctionName } from './functions.js';
import { kindOf } from './kinds.js';
import { copyOptions, copyQueryText } from './copy-options.js';
import { constText, isObject, names, type Node, str, tableName, typed } from './parse-tree.js';
import { parseStatements, sqlParserReady } from './parser.js';
import {
  allBindings,
  type Binding,
  type Ctx,
  type Derived,
  derivedLookup,
  exprUse,
  newDerived,
  newScope,
  renamed,
  type Resolved,
  type Scope,
  uniqueBindings,
  type Use,
} from './scope.js';
import { pgSettingsName } from './settings-name.js';
import { redactTokens } from './redact.js';
import type {
  ClassifiedStatement,
  ClassifyResult,
  ColumnRef,
  CopyInfo,
  Reshape,
  StatementEffect,
} from './types.js';

/** Work bound per statement: real statements visit a few thousand nodes; pathological nesting is refused. */
const MAX_VISITS = 200_000;

class TooComplex extends Error {}

const RANK: Record<StatementEffect, number> = {
  read: 0,
  transaction: 1,
  session: 1,
  write: 2,
  ddl: 3,
  admin: 4,
  unknown: 5,
};

/** Lookup of prepared statements the gateway has let through (name → the PREPARE's classification). */
export type PreparedStatements = ReadonlyMap<string, ClassifiedStatement>;

/** pg_catalog relations whose rows carry values sampled from other tables' columns */
const STATISTICS_RELATIONS = new Set([
  'pg_stats',
  'pg_stats_ext',
  'pg_stats_ext_exprs',
  'pg_statistic',
  'pg_statistic_ext_data',
]);

/** DDL that makes data readable out of the classifier's sight later (see ClassifiedStatement.maskBypass). */
const OUT_OF_SIGHT: Record<string, string> = {
  CreateTrigStmt: 'runs a function, out of sight, on every change it fires on',
  RuleStmt: 'adds statements, out of sight, to every statement it fires on',
  CreateForeignTableStmt: 'reads tables through a foreign server, under names no rule has',
  ImportForeignSchemaStmt: 'reads tables through a foreign server, under names no rule has',
};

/** Everything found in one top-level statement. */
class Analysis {
  kinds: string[] = [];
  effect: StatementEffect = 'read';
  effectReasons: string[] = [];
  readOnlyEscapes: string[] = [];
  tables = new Set<string>();
  functions = new Set<string>();
  operators = new Set<string>();
  casts = new Set<string>();
  forbidden: string[] = [];
  maskBypass: string[] = [];
  reshapes: Reshape[] = [];
  /** ORDER BY/GROUP BY/DISTINCT ON by position: what the statement reads depends on a number in it */
  positional = false;
  executes: string[] = [];
  columnRefs: ColumnRef[] = [];
  private refKeys = new Set<string>();
  /** enclosing SELECTs, innermost last (set_config's argument may be pinned by the WHERE clause) */
  private selects: Node[] = [];
  private visits = 0;
  copy?: CopyInfo;
  prepare?: { name: string };
  deallocate?: { name: string | null };

  constructor(
    private readonly source: string,
    private readonly prepared: PreparedStatements,
  ) {}

  addKind(kind: string): void {
    if (!this.kinds.includes(kind)) this.kinds.push(kind);
  }

  raise(effect: StatementEffect, reason?: string): void {
    if (RANK[effect] > RANK[this.effect]) this.effect = effect;
    if (reason && effect !== 'read' && !this.effectReasons.includes(reason)) this.effectReasons.push(reason);
  }

  /** A relation the tree reads. The statistics views hold sampled column values (most common values,
   *  histogram bounds): read out of sight of column masks. */
  addTable(table: string): void {
    this.tables.add(table);
    const dot = table.lastIndexOf('.');
    const name = table.slice(dot + 1);
    if (STATISTICS_RELATIONS.has(name) && (dot < 0 || table.slice(0, dot) === 'pg_catalog'))
      this.note(this.maskBypass, `${table} holds sampled column values, out of sight of masks`);
  }

  note(list: string[], fact: string): void {
    if (!list.includes(fact)) list.push(fact);
  }

  emit(b: Binding, use: ColumnRef['use']): void {
    const key = `${b.qualifier}\u0000${b.table}\u0000${b.column}\u0000${use}`;
    if (this.refKeys.has(key)) return;
    this.refKeys.add(key);
    const ref: ColumnRef = { qualifier: b.qualifier, column: b.column, use };
    if (b.table !== undefined) ref.table = b.table;
    this.columnRefs.push(ref);
  }

  // ---- generic walk ----------------------------------------------------------------------------

  visit(value: unknown, ctx: Ctx): void {
    if (++this.visits > MAX_VISITS) throw new TooComplex();
    if (Array.isArray(value)) {
      for (const item of value) this.visit(item, ctx);
      return;
    }
    if (!isObject(value)) return;
    const t = typed(value);
    if (t) {
      this.visitTyped(t[0], t[1], ctx);
      return;
    }
    // An untyped struct: a field whose type the grammar fixes (e.g. DeleteStmt.relation is a RangeVar).
    if (typeof value.relname === 'string') {
      this.addTable(tableName(value));
      return;
    }
    for (const key of Object.keys(value)) this.visit(value[key], ctx);
  }

  private visitChildren(node: Node, ctx: Ctx, skip: readonly string[] = []): void {
    for (const key of Object.keys(node)) if (!skip.includes(key)) this.visit(node[key], ctx);
  }

  visitTyped(type: string, node: Node, ctx: Ctx): void {
    if (type.endsWith('Stmt')) {
      // A statement inside something else: its values go where the origin is lost.
      this.statement(type, node, { use: exprUse(ctx.use), scope: ctx.scope });
      return;
    }
    this.noteOperatorsAndCasts(type, node);
    switch (type) {
      case 'RangeVar':
        this.addTable(tableName(node));
        return;
      case 'FuncCall':
        this.funcCall(node, ctx);
        return;
      case 'ColumnRef':
        this.columnRef(node, ctx, false);
        return;
      case 'SubLink':
        this.subLink(node, ctx);
        return;
      case 'RangeTableSample':
        this.rangeTableSample(node, ctx);
        return;
      default:
        this.visitChildren(node, { ...ctx, use: exprUse(ctx.use), target: undefined });
    }
  }

  /** Operators and cast targets resolve by name through search_path, like functions: note them all. */
  private noteOperatorsAndCasts(type: string, node: Node): void {
    switch (type) {
      case 'A_Expr': {
        const kind = str(node.kind) ?? '';
        // x BETWEEN a AND b is x >= a AND x <= b (NOT BETWEEN: < and >), looked up by those names
        if (kind.includes('BETWEEN')) for (const op of ['<', '<=', '>', '>=']) this.operators.add(op);
        else this.noteOperator(node.name);
        return;
      }
      case 'SubLink':
        this.noteOperator(node.operName);
        return;
      case 'SortBy':
        this.noteOperator(node.useOp);
        return;
      case 'CaseExpr':
        // CASE x WHEN y compares with the "=" found by name
        if (node.arg !== undefined) this.operators.add('=');
        return;
      case 'JoinExpr':
        if (node.isNatural === true || node.usingClause !== undefined) this.operators.add('=');
        return;
      case 'TypeCast':
        if (isObject(node.typeName)) {
          const parts = names(node.typeName.names);
          // pg_catalog.int4 and int4 are the same built-in type; schema.type names a user's
          if (parts.length > 0) this.casts.add(parts.slice(-2).join('.'));
        }
        return;
    }
  }

  private noteOperator(list: unknown): void {
    const parts = names(list);
    if (parts.length > 0) this.operators.add(parts.slice(-2).join('.'));
  }

  // ---- statements ------------------------------------------------------------------------------

  statement(type: string, node: Node, ctx: Ctx): void {
    const info = kindOf(type, node);
    this.addKind(info.kind);
    this.raise(info.effect, baseReason(type, info.kind, info.effect));
    switch (type) {
      case 'SelectStmt':
        this.select(node, ctx);
        return;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        this.dml(node, ctx);
        return;
      case 'CopyStmt':
        this.copyStmt(node);
        return;
      case 'ExplainStmt':
        // EXPLAIN output is a plan, not data. Its inner statement's effect counts even without ANALYZE
        // (conservative: immutable functions may run at plan time, and EXPLAIN of a write reads as a write).
        this.visit(node.query, { use: 'predicate', scope: ctx.scope });
        this.visitChildren(node, { use: 'predicate', scope: ctx.scope }, ['query']);
        return;
      case 'PrepareStmt':
        this.prepare = { name: str(node.name) ?? '' };
        this.visitStatementNode(node.query, { use: 'output', scope: null });
        this.visitChildren(node, { use: 'predicate', scope: null }, ['query']);
        return;
      case 'ExecuteStmt':
        this.execute(node, ctx);
        return;
      case 'DeallocateStmt':
        this.deallocate = { name: node.isall ? null : (str(node.name) ?? null) };
        return;
      case 'DeclareCursorStmt':
        this.visitStatementNode(node.query, { use: 'output', scope: null });
        return;
      case 'CreateTableAsStmt':
        this.visit(node.into, { use: 'predicate', scope: null });
        this.visitStatementNode(node.query, { use: 'expression', scope: null });
        return;
      case 'ViewStmt':
        this.visit(node.view, { use: 'predicate', scope: null });
        this.visitStatementNode(node.query, { use: 'expression', scope: null });
        this.visitChildren(node, { use: 'predicate', scope: null }, ['view', 'query']);
        return;
      case 'CreateFunctionStmt':
        // The body runs later, not now; a CREATE FUNCTION is a schema change whatever it contains. But it
        // is code that can read any table, out of sight of column masks, once called (or fired).
        this.note(this.maskBypass, 'CREATE FUNCTION defines code that can read any table');
        this.visitChildren(node, { use: 'predicate', scope: null }, ['sql_body']);
        return;
      case 'CreateTrigStmt':
      case 'RuleStmt':
      case 'CreateForeignTableStmt':
      case 'ImportForeignSchemaStmt':
        this.note(this.maskBypass, `${info.kind} ${OUT_OF_SIGHT[type]}`);
        this.visitChildren(node, { use: 'predicate', scope: null });
        return;
      case 'RenameStmt':
        this.renameStmt(node);
        this.visitChildren(node, { use: 'predicate', scope: null });
        return;
      case 'AlterObjectSchemaStmt':
        if (isObject(node.relation))
          this.reshapes.push({ table: tableName(node.relation), what: 'moves it to another schema' });
        this.visitChildren(node, { use: 'predicate', scope: null });
        return;
      case 'AlterTableStmt':
        this.alterTable(node);
        this.visitChildren(node, { use: 'predicate', scope: null });
        return;
      case 'VariableSetStmt':
        this.setStmt(node);
        return;
      case 'TransactionStmt':
        this.transactionStmt(node, info.kind);
        return;
      case 'DiscardStmt':
        if (node.target === 'DISCARD_ALL') {
          this.note(this.readOnlyEscapes, 'DISCARD ALL resets the session, including its read-only default');
        }
        return;
      case 'LockStmt':
        if (node.mode !== 1)
          this.raise('write', 'LOCK in a mode stronger than ACCESS SHARE blocks other sessions');
        this.visitChildren(node, { use: 'predicate', scope: null });
        return;
      case 'DoStmt':
        this.note(this.maskBypass, 'DO runs procedural code that can read any table');
        return;
      case 'CallStmt':
        this.note(this.maskBypass, 'CALL runs a procedure that can read any table');
        // funccall is an untyped FuncCall: name the procedure for deny.function rules.
        if (isObject(node.funccall)) this.funcCall(node.funccall, { use: 'expression', scope: null });
        this.visitChildren(node, { use: 'expression', scope: null }, ['funccall']);
        return;
      case 'DropStmt':
        this.dropStmt(node);
        return;
      default:
        this.visitChildren(node, { use: 'predicate', scope: ctx.scope });
    }
  }

  /** ALTER … RENAME: of a relation, of a column of one, or of a schema (see ClassifiedStatement.reshapes). */
  private renameStmt(node: Node): void {
    const type = str(node.renameType);
    if (type === 'OBJECT_SCHEMA') {
      const schema = str(node.subname);
      if (schema) this.reshapes.push({ schema, what: 'renames the schema' });
    } else if (isObject(node.relation)) {
      const table = tableName(node.relation);
      const column = type === 'OBJECT_COLUMN' ? str(node.subname) : undefined;
      this.reshapes.push(
        column ? { table, column, what: 'renames the column' } : { table, what: 'renames it' },
      );
    }
  }

  /** ALTER TABLE subcommands that let a relation's rows be read under another name. */
  private alterTable(node: Node): void {
    if (!isObject(node.relation) || !Array.isArray(node.cmds)) return;
    const table = tableName(node.relation);
    for (const item of node.cmds) {
      const cmd = isObject(item) && isObject(item.AlterTableCmd) ? item.AlterTableCmd : null;
      if (!cmd) continue;
      const def = isObject(cmd.def) ? cmd.def : null;
      switch (str(cmd.subtype)) {
        case 'AT_AddInherit':
          this.reshapes.push({ table, what: 'makes its rows readable through a parent table (INHERIT)' });
          break;
        case 'AT_AttachPartition': {
          const part = def && isObject(def.PartitionCmd) ? def.PartitionCmd.name : null;
          if (isObject(part))
            this.reshapes.push({
              table: tableName(part),
              what: 'makes its rows readable through a partitioned table (ATTACH PARTITION)',
            });
          break;
        }
        case 'AT_AddColumn': {
          const col = def && isObject(def.ColumnDef) ? def.ColumnDef : null;
          const generated =
            col &&
            Array.isArray(col.constraints) &&
            col.constraints.some(
              (c) =>
                isObject(c) && isObject(c.Constraint) && str(c.Constraint.contype) === 'CONSTR_GENERATED',
            );
          if (generated) this.reshapes.push({ table, what: 'adds a column generated from its columns' });
          break;
        }
        default:
          break;
      }
    }
  }

  /** A statement given as a typed node (e.g. PrepareStmt.query). */
  private visitStatementNode(value: unknown, ctx: Ctx): void {
    const t = typed(value);
    if (t) this.statement(t[0], t[1], ctx);
    else this.visit(value, ctx);
  }

  // ---- SELECT ----------------------------------------------------------------------------------

  private select(node: Node, ctx: Ctx): void {
    this.selects.push(node);
    try {
      this.selectBody(node, ctx);
    } finally {
      this.selects.pop();
    }
  }

  private selectBody(node: Node, ctx: Ctx): void {
    const scope = newScope(ctx.scope);
    const pred: Ctx = { use: 'predicate', scope };
    if (node.withClause) this.withClause(node.withClause, scope);
    let outUse: Use = ctx.use;
    if (node.intoClause) {
      this.addKind('CREATE TABLE');
      this.raise('write', 'SELECT … INTO creates a table');
      this.visit(node.intoClause, pred);
      outUse = 'expression';
    }
    if (Array.isArray(node.lockingClause) && node.lockingClause.length > 0) {
      const strengths = node.lockingClause.map((l) => str(typed(l)?.[1].strength) ?? '');
      const words = strengths.map(lockWords).join(', ');
      this.raise('write', `SELECT … ${words} locks rows`);
    }
    if (node.op && node.op !== 'SETOP_NONE') {
      // Set operations: PostgreSQL reports no origin for their result columns.
      const branch: Ctx = { use: ctx.use === 'predicate' ? 'predicate' : 'expression', scope };
      for (const side of ['larg', 'rarg'] as const) {
        if (isObject(node[side])) {
          this.addKind('SELECT');
          this.select(node[side] as Node, branch);
        }
      }
      this.visitChildren(node, pred, ['withClause', 'larg', 'rarg', 'intoClause', 'lockingClause']);
      return;
    }
    if (Array.isArray(node.fromClause)) for (const item of node.fromClause) this.fromItem(item, scope);
    const out: Ctx = { use: outUse, scope, ...(ctx.target ? { target: ctx.target } : {}) };
    this.targetList(node.targetList, out);
    this.positionalReferences(node, scope);
    const valuesUse: Use = outUse === 'predicate' ? 'predicate' : 'expression';
    this.visit(node.valuesLists, { use: valuesUse, scope });
    this.visitChildren(node, pred, [
      'withClause',
      'fromClause',
      'intoClause',
      'lockingClause',
      'targetList',
      'valuesLists',
    ]);
  }

  /**
   * ORDER BY 2, GROUP BY 1, DISTINCT ON (1): PostgreSQL sorts, groups or picks by the select-list
   * item at that position, so the policy reads that item as used in a condition (a strict mask may
   * not be ordered by; a probe row and ORDER BY 2 recovered a masked value by binary search). An item
   * at or after a `*` cannot be placed without the catalog: every `*` counts, and every item up to it.
   */
  private positionalReferences(node: Node, scope: Scope): void {
    const targets = Array.isArray(node.targetList) ? node.targetList : [];
    if (targets.length === 0) return;
    const items: unknown[] = [];
    for (const s of Array.isArray(node.sortClause) ? node.sortClause : []) {
      const t = typed(s);
      items.push(t?.[0] === 'SortBy' ? t[1].node : s);
    }
    const flatten = (list: unknown): void => {
      for (const g of Array.isArray(list) ? list : []) {
        const t = typed(g);
        if (t?.[0] === 'GroupingSet') flatten(t[1].content);
        else items.push(g);
      }
    };
    flatten(node.groupClause);
    flatten(node.distinctClause);
    const isStar = (target: unknown): boolean => {
      const val = typed(typed(target)?.[1].val);
      return (
        val?.[0] === 'ColumnRef' &&
        Array.isArray(val[1].fields) &&
        val[1].fields.some((f: unknown) => typed(f)?.[0] === 'A_Star')
      );
    };
    for (const item of items) {
      const t = typed(item);
      if (t?.[0] !== 'A_Const' || !isObject(t[1].ival)) continue;
      const k = Number(t[1].ival.ival ?? 0);
      this.positional = true;
      if (!Number.isInteger(k) || k < 1) continue;
      const upTo = targets.slice(0, Math.min(k, targets.length));
      const chosen = upTo.some(isStar) ? [...upTo, ...targets.filter(isStar)] : [targets[k - 1]];
      for (const target of chosen) {
        const rt = typed(target);
        if (rt?.[0] === 'ResTarget') this.visit(rt[1].val, { use: 'predicate', scope });
      }
    }
  }

  /** A select list (or a top-level RETURNING list): plain column references keep their origin. */
  private targetList(list: unknown, out: Ctx): void {
    if (!Array.isArray(list)) return;
    const scope = out.scope;
    for (const item of list) {
      const t = typed(item);
      if (t?.[0] !== 'ResTarget') {
        this.visit(item, { use: exprUse(out.use), scope });
        continue;
      }
      const target = t[1];
      const val = typed(target.val);
      if (val && val[0] === 'ColumnRef') {
        this.columnRef(val[1], out, true, str(target.name));
      } else {
        if (out.use === 'derived' && out.target) out.target.names.push(str(target.name) ?? '?column?');
        this.visit(target.val, { use: exprUse(out.use), scope });
      }
      this.visit(target.indirection, { use: 'predicate', scope });
    }
  }

  private withClause(value: unknown, scope: Scope): void {
    const clause = isObject(value) ? value : null;
    if (!clause) return;
    const recursive = clause.recursive === true;
    if (!Array.isArray(clause.ctes)) return;
    for (const item of clause.ctes) {
      const t = typed(item);
      if (t?.[0] !== 'CommonTableExpr') {
        this.visit(item, { use: 'expression', scope });
        continue;
      }
      const cte = t[1];
      const name = str(cte.ctename) ?? '';
      const inner = typed(cte.ctequery);
      const derived = newDerived();
      // Register first so a recursive CTE sees itself; a recursive body reports no origins.
      scope.ctes.set(name, derived);
      if (inner && inner[0] === 'SelectStmt' && !recursive) {
        this.statement(inner[0], inner[1], { use: 'derived', scope, target: derived });
      } else if (inner) {
        this.statement(inner[0], inner[1], { use: 'expression', scope });
      }
      scope.ctes.set(name, renamed(derived, names(cte.aliascolnames)));
      this.visitChildren(cte, { use: 'predicate', scope }, ['ctequery', 'aliascolnames']);
    }
  }

  private findCte(scope: Scope | null, name: string): Derived | undefined {
    for (let s = scope; s; s = s.parent) {
      const d = s.ctes.get(name);
      if (d) return d;
    }
    return undefined;
  }

  private fromItem(item: unknown, scope: Scope): void {
    const t = typed(item);
    if (!t) {
      this.visit(item, { use: 'expression', scope });
      return;
    }
    const [type, node] = t;
    switch (type) {
      case 'RangeVar':
        this.baseRelation(node, scope);
        return;
      case 'RangeSubselect': {
        const derived = newDerived();
        const sub = typed(node.subquery);
        if (sub) this.statement(sub[0], sub[1], { use: 'derived', scope, target: derived });
        const alias = isObject(node.alias) ? node.alias : null;
        const key = alias ? (str(alias.aliasname) ?? '') : `\u0000subquery${scope.derived.size}`;
        scope.derived.set(key, renamed(derived, names(alias?.colnames)));
        return;
      }
      case 'JoinExpr': {
        this.noteOperatorsAndCasts(type, node);
        this.fromItem(node.larg, scope);
        this.fromItem(node.rarg, scope);
        // Only a FULL join merges USING/NATURAL columns into COALESCE(l, r), which has no origin.
        if (node.jointype === 'JOIN_FULL') {
          for (const n of names(node.usingClause)) scope.merged.add(n);
          if (node.isNatural) scope.natural = true;
        }
        this.visit(node.quals, { use: 'predicate', scope });
        return;
      }
      case 'RangeTableSample':
        this.rangeTableSample(node, { use: 'predicate', scope }, scope);
        return;
      default:
        // RangeFunction, XMLTABLE, JSON_TABLE…: their arguments flow into their output.
        this.visitTyped(type, node, { use: 'expression', scope });
    }
  }

  private baseRelation(rv: Node, scope: Scope): void {
    const rel = str(rv.relname) ?? '';
    const alias = isObject(rv.alias) ? rv.alias : null;
    const cte = rv.schemaname ? undefined : this.findCte(scope, rel);
    if (cte) {
      scope.derived.set(alias ? (str(alias.aliasname) ?? rel) : rel, renamed(cte, names(alias?.colnames)));
      return;
    }
    const table = tableName(rv);
    this.addTable(table);
    const name = alias ? (str(alias.aliasname) ?? rel) : rel;
    scope.bases.set(name, table);
    if (!alias && rv.schemaname) scope.bases.set(table, table);
  }

  private rangeTableSample(node: Node, ctx: Ctx, scope?: Scope): void {
    if (scope) this.fromItem(node.relation, scope);
    else this.visit(node.relation, ctx);
    this.checkFunction(names(node.method));
    this.visitChildren(node, { use: 'predicate', scope: ctx.scope }, ['relation', 'method']);
  }

  // ---- DML -------------------------------------------------------------------------------------

  private dml(node: Node, ctx: Ctx): void {
    const scope = newScope(ctx.scope);
    if (node.withClause) this.withClause(node.withClause, scope);
    if (isObject(node.relation)) this.baseRelation(node.relation, scope);
    for (const key of ['fromClause', 'usingClause']) {
      if (Array.isArray(node[key])) for (const item of node[key] as unknown[]) this.fromItem(item, scope);
    }
    if (node.sourceRelation) this.fromItem(node.sourceRelation, scope);
    const pred: Ctx = { use: 'predicate', scope };
    const expr: Ctx = { use: 'expression', scope };
    this.visit(node.whereClause, pred);
    this.visit(node.joinCondition, pred);
    // INSERT … SELECT, SET col = …, RETURNING: values move where no mask follows them.
    this.visitStatementNode(node.selectStmt, expr);
    // A top-level RETURNING list is a result like a select list: PostgreSQL reports its origins.
    const returning = isObject(node.returningClause) ? node.returningClause.exprs : node.returningList;
    this.targetList(returning, { use: ctx.use === 'output' ? 'output' : 'expression', scope });
    this.visitChildren(node, expr, [
      'returningClause',
      'returningList',
      'withClause',
      'relation',
      'fromClause',
      'usingClause',
      'sourceRelation',
      'whereClause',
      'joinCondition',
      'selectStmt',
    ]);
  }

  // ---- column references -----------------------------------------------------------------------

  /**
   * A ColumnRef. `direct`: it is a whole select-list entry (not inside an expression), so in an output
   * query PostgreSQL reports its origin and the gateway can mask it.
   */
  private columnRef(node: Node, ctx: Ctx, direct: boolean, outName?: string): void {
    const fields = Array.isArray(node.fields) ? node.fields : [];
    const parts: string[] = [];
    let star = false;
    for (const f of fields) {
      const t = typed(f);
      if (t?.[0] === 'A_Star') star = true;
      else if (t?.[0] === 'String') parts.push(str(t[1].sval) ?? '');
    }
    const resolved = this.resolve(parts, star, ctx.scope);
    let use: ColumnRef['use'];
    if (direct) {
      if (ctx.use === 'derived' && ctx.target) {
        this.bindDerived(ctx.target, resolved, star, outName ?? parts[parts.length - 1] ?? '?column?');
        return;
      }
      use = ctx.use === 'output' ? 'bare' : ctx.use === 'predicate' ? 'predicate' : 'expression';
    } else {
      use = ctx.use === 'predicate' ? 'predicate' : 'expression';
    }
    for (const r of resolved) this.emit(r.binding, r.composite && use === 'bare' ? 'expression' : use);
  }

  private bindDerived(target: Derived, resolved: Resolved[], star: boolean, outName: string): void {
    for (const r of resolved) {
      // A whole-row value is a composite: its origin is lost as soon as it is selected.
      if (r.composite) this.emit(r.binding, 'expression');
    }
    const plain = resolved.filter((r) => !r.composite).map((r) => r.binding);
    if (star) {
      target.stars = uniqueBindings([...target.stars, ...plain]);
      return;
    }
    target.names.push(outName);
    target.columns.set(outName, uniqueBindings([...(target.columns.get(outName) ?? []), ...plain]));
  }

  /** What a reference may denote, as base-table bindings. Unresolvable qualifiers become null (any table). */
  private resolve(parts: string[], star: boolean, scope: Scope | null): Resolved[] {
    const out: Resolved[] = [];
    if (parts.length === 0) {
      // `*`: every column of every relation in this query level.
      out.push({ binding: { qualifier: null, column: '*' }, composite: false });
      if (scope) {
        for (const [alias, table] of scope.bases)
          out.push({ binding: { qualifier: alias, table, column: '*' }, composite: false });
        for (const d of scope.derived.values())
          for (const b of allBindings(d)) out.push({ binding: b, composite: false });
      }
      return out;
    }
    if (parts.length === 1 && !star) {
      const name = parts[0]!;
      let merged = false;
      for (let s = scope; s; s = s.parent) {
        const table = s.bases.get(name);
        if (table !== undefined)
          out.push({ binding: { qualifier: name, table, column: '*' }, composite: true });
        const whole = s.derived.get(name);
        if (whole) for (const b of allBindings(whole)) out.push({ binding: b, composite: true });
        for (const d of s.derived.values())
          for (const b of derivedLookup(d, name)) out.push({ binding: b, composite: false });
        if (s.natural || s.merged.has(name)) merged = true;
      }
      // A column merged by USING/NATURAL may be COALESCE(l, r): treat it as computed.
      out.push({ binding: { qualifier: null, column: name }, composite: merged });
      return out;
    }
    const column = star ? '*' : parts[parts.length - 1]!;
    const qualifier = (star ? parts : parts.slice(0, -1)).join('.');
    for (let s = scope; s; s = s.parent) {
      const table = s.bases.get(qualifier);
      if (table !== undefined) {
        out.push({ binding: { qualifier, table, column }, composite: false });
        return out;
      }
      const d = s.derived.get(qualifier);
      if (d) {
        for (const b of star ? allBindings(d) : derivedLookup(d, column))
          out.push({ binding: b, composite: false });
        return out;
      }
    }
    out.push({ binding: { qualifier: null, column }, composite: false });
    return out;
  }

  // ---- sublinks, functions ---------------------------------------------------------------------

  private subLink(node: Node, ctx: Ctx): void {
    const kind = str(node.subLinkType);
    // EXISTS / ANY / ALL / row comparisons yield a boolean: the subquery's values are only compared.
    const compared =
      kind === 'EXISTS_SUBLINK' ||
      kind === 'ANY_SUBLINK' ||
      kind === 'ALL_SUBLINK' ||
      kind === 'ROWCOMPARE_SUBLINK';
    const use: Use = ctx.use === 'predicate' || compared ? 'predicate' : 'expression';
    this.visit(node.testexpr, { use: exprUse(ctx.use), scope: ctx.scope });
    this.visitStatementNode(node.subselect, { use, scope: ctx.scope });
    this.visitChildren(node, { use: 'predicate', scope: ctx.scope }, ['testexpr', 'subselect']);
  }

  private funcCall(node: Node, ctx: Ctx): void {
    const parts = names(node.funcname);
    this.checkFunction(parts, node.args);
    const inner: Ctx = { use: exprUse(ctx.use), scope: ctx.scope };
    // ORDER BY / FILTER / OVER only steer which values are aggregated: conditions.
    const cond: Ctx = { use: 'predicate', scope: ctx.scope };
    this.visit(node.args, inner);
    this.visit(node.agg_order, cond);
    this.visit(node.agg_filter, cond);
    this.visit(node.over, cond);
    this.visitChildren(node, inner, ['funcname', 'args', 'agg_order', 'agg_filter', 'over']);
  }

  private checkFunction(parts: string[], args?: unknown): void {
    if (parts.length === 0) return;
    const { schema, name } = splitFunctionName(parts);
    const display = schema ? `${schema}.${name}` : name;
    this.functions.add(display);
    if (name === 'set_config' && (schema === null || schema === 'pg_catalog')) {
      this.setConfig(Array.isArray(args) ? args : []);
      return;
    }
    const cls = classifyFunction(schema, name);
    if (cls.kind === 'write' || cls.kind === 'admin') this.raise(cls.kind, cls.reason);
    else if (cls.kind === 'forbidden') this.note(this.forbidden, cls.reason);
    if (bypassesMasks(name))
      this.note(this.maskBypass, `function ${display} reads tables out of sight of masks`);
  }

  /** set_config(name, value, is_local): judged like SET, and only with a constant setting name. */
  private setConfig(args: unknown[]): void {
    const name = constText(args[0]) ?? pgSettingsName(args[0], this.selects[this.selects.length - 1]);
    if (name === undefined) {
      this.note(
        this.forbidden,
        'set_config with a non-constant setting name could change any setting (including how SQL is parsed)',
      );
      return;
    }
    this.settingChange(name, constText(args[1]), `set_config('${name}', …)`);
  }

  private settingChange(name: string, value: string | undefined, what: string): void {
    const risk = settingChangeRisk(name, value);
    if (risk.kind === 'escape') this.note(this.readOnlyEscapes, `${what}: ${risk.reason}`);
    else if (risk.kind === 'forbidden') this.note(this.forbidden, `${what}: ${risk.reason}`);
    else if (risk.kind === 'admin') this.raise('admin', `${what}: ${risk.reason}`);
  }

  // ---- session and transaction statements ------------------------------------------------------

  private setStmt(node: Node): void {
    const kind = str(node.kind);
    const name = str(node.name) ?? '';
    if (kind === 'VAR_RESET_ALL') {
      this.note(this.readOnlyEscapes, 'RESET ALL resets every setting, including the read-only default');
      return;
    }
    if (kind === 'VAR_SET_MULTI') {
      // SET TRANSACTION … / SET SESSION CHARACTERISTICS AS TRANSACTION …
      this.transactionOptions(
        node.args,
        name === 'SESSION CHARACTERISTICS' ? 'SET SESSION CHARACTERISTICS' : `SET ${name}`,
      );
      return;
    }
    let value: string | undefined;
    if (kind === 'VAR_SET_VALUE' && Array.isArray(node.args)) {
      const values = node.args.map(constText);
      value = values.every((v) => v !== undefined) ? values.join(', ') : undefined;
    }
    const verb = kind === 'VAR_RESET' ? 'RESET' : 'SET';
    this.settingChange(name, value, `${verb} ${name}`);
  }

  private transactionStmt(node: Node, kind: string): void {
    this.transactionOptions(node.options, kind);
  }

  private transactionOptions(options: unknown, what: string): void {
    if (!Array.isArray(options)) return;
    for (const opt of options) {
      const t = typed(opt);
      if (t?.[0] !== 'DefElem') continue;
      const def = t[1];
      if (def.defname === 'transaction_read_only' && constText(def.arg) !== '1') {
        this.note(this.readOnlyEscapes, `${what} … READ WRITE could lift the read-only guard`);
      }
    }
  }

  private execute(node: Node, ctx: Ctx): void {
    const name = str(node.name) ?? '';
    this.executes.push(name);
    this.visit(node.params, { use: 'expression', scope: ctx.scope });
    const inner = this.prepared.get(name);
    if (!inner) {
      this.raise('unknown', `EXECUTE ${name} runs a prepared statement the policy has not seen`);
      return;
    }
    // Run-time effect of EXECUTE is the prepared statement's.
    for (const k of inner.kinds) if (k !== 'PREPARE') this.addKind(k);
    for (const r of inner.effectReasons) this.raise(inner.effect, r);
    this.raise(inner.effect);
    for (const t of inner.tables) this.tables.add(t);
    for (const f of inner.functions) this.functions.add(f);
    for (const o of inner.operators) this.operators.add(o);
    for (const c of inner.casts) this.casts.add(c);
    for (const f of inner.forbidden) this.note(this.forbidden, f);
    for (const f of inner.maskBypass) this.note(this.maskBypass, f);
    for (const f of inner.readOnlyEscapes) this.note(this.readOnlyEscapes, f);
    for (const r of inner.columnRefs)
      this.emit(r, ctx.use === 'output' || r.use !== 'bare' ? r.use : 'expression');
  }

  private dropStmt(node: Node): void {
    const relationTypes = [
      'OBJECT_TABLE',
      'OBJECT_VIEW',
      'OBJECT_MATVIEW',
      'OBJECT_FOREIGN_TABLE',
      'OBJECT_SEQUENCE',
      'OBJECT_INDEX',
    ];
    if (relationTypes.includes(str(node.removeType) ?? '') && Array.isArray(node.objects)) {
      for (const obj of node.objects) {
        const t = typed(obj);
        if (t && t[0] === 'List') this.tables.add(names(t[1].items).join('.'));
      }
    }
    this.visitChildren(node, { use: 'predicate', scope: null });
  }

  // ---- COPY ------------------------------------------------------------------------------------

  private copyStmt(node: Node): void {
    const direction = node.is_from ? 'from' : 'to';
    const program = node.is_program === true;
    const file = !program && typeof node.filename === 'string';
    const opts = copyOptions(node.options);
    const info: CopyInfo = { direction, query: node.query !== undefined, program, file, ...opts };
    if (isObject(node.relation)) {
      info.table = tableName(node.relation);
      this.tables.add(info.table);
      const columns = names(node.attlist);
      if (columns.length > 0) info.columns = columns;
      if (direction === 'to') {
        for (const c of columns.length > 0 ? columns : ['*']) {
          this.emit({ qualifier: str(node.relation.relname) ?? null, table: info.table, column: c }, 'bare');
        }
      }
    }
    if (program)
      this.note(
        this.forbidden,
        `COPY … ${direction === 'to' ? 'TO' : 'FROM'} PROGRAM runs a program on the database server`,
      );
    if (file)
      this.note(
        this.forbidden,
        `COPY … ${direction === 'to' ? 'TO' : 'FROM'} a file reads or writes files on the database server`,
      );
    if (direction === 'from') this.raise('write', 'COPY … FROM loads data into a table');
    if (node.query !== undefined) {
      const queryText = copyQueryText(this.source);
      if (queryText !== undefined) info.queryText = queryText;
      this.visitStatementNode(node.query, { use: 'output', scope: null });
    }
    this.visit(node.whereClause, { use: 'predicate', scope: null });
    this.copy = info;
  }
}

function lockWords(strength: string): string {
  switch (strength) {
    case 'LCS_FORKEYSHARE':
      return 'FOR KEY SHARE';
    case 'LCS_FORSHARE':
      return 'FOR SHARE';
    case 'LCS_FORNOKEYUPDATE':
      return 'FOR NO KEY UPDATE';
    default:
      return 'FOR UPDATE';
  }
}

const SPECIFIC_REASONS: Record<string, string> = {
  DoStmt: 'DO runs procedural code that cannot be checked',
  CallStmt: 'CALL runs a procedure that cannot be proven read-only',
  NotifyStmt: 'NOTIFY signals other sessions',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW rewrites a view’s data',
  TransactionStmt: 'two-phase commit keeps a transaction beyond the session',
};

function baseReason(type: string, kind: string, effect: StatementEffect): string | undefined {
  const specific = SPECIFIC_REASONS[type];
  switch (effect) {
    case 'write':
      return specific ?? `${kind} modifies data`;
    case 'ddl':
      return specific ?? `${kind} changes the schema`;
    case 'admin':
      return specific ?? `${kind} administers the server`;
    case 'unknown':
      return type === 'ExecuteStmt' ? undefined : `${kind} is not understood by the policy`;
    default:
      return undefined;
  }
}

/**
 * Classify every statement of a SQL text (a simple Query may hold many; a Parse holds one).
 * `prepared`: statements prepared earlier on this connection with SQL PREPARE, so EXECUTE can be judged;
 * PREPAREs and DEALLOCATEs earlier in the same text are taken into account too.
 */
export function classifySql(sql: string, prepared: PreparedStatements = new Map()): ClassifyResult {
  if (!sqlParserReady()) {
    return { ok: false, error: 'SQL parser not initialised: call initSqlParser() at start-up' };
  }
  if (sql.length === 0) return { ok: true, statements: [] };
  // The parser reads a C string: text after a NUL would be invisible to it but not to every server path.
  const nul = sql.indexOf('\u0000');
  if (nul !== -1) return { ok: false, error: 'SQL text contains a NUL character', position: nul + 1 };
  const parsed = parseStatements(sql);
  if (!parsed.ok) {
    return parsed.position === undefined
      ? { ok: false, error: parsed.error }
      : { ok: false, error: parsed.error, position: parsed.position };
  }
  const bytes = Buffer.from(sql, 'utf8');
  const known = new Map(prepared);
  const statements: ClassifiedStatement[] = [];
  for (const raw of parsed.statements) {
    const source = bytes.subarray(raw.byteStart, raw.byteEnd).toString('utf8').trim();
    let stmt: ClassifiedStatement;
    try {
      stmt = classifyOne(raw.stmt, source, known);
    } catch (err) {
      // Too deep for the walk (or the JS stack): refuse rather than guess.
      if (err instanceof TooComplex || err instanceof RangeError) {
        return { ok: false, error: 'statement too complex for the SQL policy to classify' };
      }
      throw err;
    }
    statements.push(stmt);
    if (stmt.prepare) known.set(stmt.prepare.name, stmt);
    if (stmt.deallocate) {
      if (stmt.deallocate.name === null) known.clear();
      else known.delete(stmt.deallocate.name);
    }
  }
  return { ok: true, statements };
}

function classifyOne(stmt: Node, source: string, prepared: PreparedStatements): ClassifiedStatement {
  const a = new Analysis(source, prepared);
  const t = typed(stmt);
  if (t) a.statement(t[0], t[1], { use: 'output', scope: null });
  else a.raise('unknown', 'statement not understood by the policy');
  const kind = a.kinds[0] ?? 'UNKNOWN';
  const result: ClassifiedStatement = {
    kind,
    kinds: a.kinds,
    effect: a.effect,
    effectReasons: a.effect === 'read' ? [] : a.effectReasons,
    readOnlyEscapes: a.readOnlyEscapes,
    tables: [...a.tables],
    functions: [...a.functions],
    operators: [...a.operators],
    casts: [...a.casts],
    text: redactTokens(source, true),
    source,
    forbidden: a.forbidden,
    maskBypass: a.maskBypass,
    reshapes: a.reshapes,
    executes: a.executes,
    columnRefs: a.columnRefs,
  };
  if (a.positional) result.positional = true;
  if (a.copy) result.copy = a.copy;
  if (a.prepare) result.prepare = a.prepare;
  if (a.deallocate) result.deallocate = a.deallocate;
  return result;
}
