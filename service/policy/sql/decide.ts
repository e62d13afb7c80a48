// decideStatement: one classified statement against one grant → allow or deny, with reasons naming rules.
//
// Model:
// - `unknown` effect (the classifier could not place it, or EXECUTE of a statement it has not seen) and
//   `forbidden` facts (COPY … PROGRAM, COPY to/from a server file, server-file functions, SQL-parsing
//   settings such as client_encoding) are denied at every access level, admin included.
// - access read: effect must be read, session or transaction, with no read-only escapes (SET ROLE,
//   BEGIN READ WRITE, RESET ALL, DISCARD ALL, set_config of a guard setting…). Functions outside the
//   allow-list make the effect `write`, so they are denied here with the function named.
// - access write: everything except admin-effect statements (roles, ALTER SYSTEM, extensions, VACUUM…).
// - access admin: everything except forbidden facts.
// - deny rules: by statement kind (a rule word matches a kind equal to it or starting with it plus a space,
//   checked against every kind in the tree: `deny DELETE` also catches `WITH x AS (DELETE …) SELECT`);
//   by table (case-insensitive; a rule without schema matches the name in any schema, a rule with a schema
//   also matches an unqualified reference, which search_path may resolve to it); by function (same).
// - column masks (rules `table.column`, schema default public): a rule is in play when the statement
//   references its table. The gateway masks result columns by the origin PostgreSQL reports, which only
//   exists for plain column references. So a masked column used anywhere its origin is lost — function
//   argument, cast, operator, CASE, row/array constructor, whole-row reference, set operation, scalar
//   subquery, RETURNING, INSERT … SELECT, CREATE TABLE AS — is refused (`mask: <rule>`). Conditions
//   (WHERE/JOIN/GROUP/ORDER/HAVING) are allowed unless the rule is strict (`mask.strict: <rule>`): they can
//   reveal a value bit by bit, and an error message may echo it, which is what `strict` is for.
//   Statements that read tables out of sight of the classifier (DO, CALL, table_to_xml, query_to_xml,
//   dblink…) are refused whenever the grant has column masks or table deny rules (`mask: bypass`).
import { parseQualifiedName } from './names.js';
import type { ApproveRule, DenyRule, Grant, MaskRule } from '../../config/schema.js';
import { holdApproval } from '../approval.js';
import { allow, type Decision, deny } from '../decision.js';
import type { ClassifiedStatement, ColumnRef } from './types.js';

interface Denial {
  rule: string;
  reason: string;
}

const READ_EFFECTS = new Set(['read', 'session', 'transaction']);

export function decideStatement(grant: Grant, stmt: ClassifiedStatement): Decision {
  const denials: Denial[] = [];
  const add = (rule: string, reason: string): void => {
    if (!denials.some((d) => d.reason === reason)) denials.push({ rule, reason });
  };

  if (stmt.effect === 'unknown') {
    const why = stmt.effectReasons.length > 0 ? stmt.effectReasons : [`${stmt.kind} cannot be classified`];
    for (const r of why) add('unknown', `unknown: ${r}; statements the policy cannot place are denied`);
  }
  for (const f of stmt.forbidden) add('forbidden', `forbidden: ${f}`);

  switch (grant.access) {
    case 'read':
      if (!READ_EFFECTS.has(stmt.effect) && stmt.effect !== 'unknown') {
        const why = stmt.effectReasons.length > 0 ? stmt.effectReasons : [`${stmt.kind} is not read-only`];
        for (const r of why) add('access: read', `access read: ${r}`);
      }
      for (const e of stmt.readOnlyEscapes) add('access: read', `access read: ${e}`);
      break;
    case 'write':
      if (stmt.effect === 'admin') {
        const why = stmt.effectReasons.length > 0 ? stmt.effectReasons : [`${stmt.kind} needs admin`];
        for (const r of why) add('access: write', `access write: ${r} (needs admin access)`);
      }
      break;
    case 'admin':
      break;
  }

  for (const rule of grant.deny ?? []) applyDenyRule(rule, stmt, add);

  const columnRules = columnMaskRules(grant.mask ?? []);
  const hasTableDeny = (grant.deny ?? []).some((r) => 'table' in r);
  if (columnRules.length > 0 || hasTableDeny) {
    for (const b of stmt.maskBypass) {
      add('mask: bypass', `mask: ${b}; not allowed with column masks or table deny rules`);
    }
  }
  for (const rule of columnRules) applyMaskRule(rule, stmt, add);
  for (const r of stmt.reshapes) {
    const hit = columnRules.find((rule) =>
      'schema' in r
        ? r.schema.toLowerCase() === rule.schema
        : tableIsRule(r.table, rule) && (r.column === undefined || r.column.toLowerCase() === rule.column),
    );
    if (!hit) continue;
    const target = 'schema' in r ? `schema ${r.schema}` : r.column ? `${r.table}.${r.column}` : r.table;
    add(
      `mask: ${hit.label}`,
      `mask: ${stmt.kind} ${r.what} (${target}), which would let the values of ${hit.label} out from under its rule`,
    );
  }

  if (denials.length > 0) return deny(denials[0]!.rule, ...denials.map((d) => d.reason));
  return approveRules(grant, stmt) ?? allow();
}

// ---- approve rules -------------------------------------------------------------------------------

/**
 * A statement nothing denies but an approve rule matches is held for a human (the first matching
 * rule's approvers and timeout apply; the reasons name every match). Matching is that of deny rules.
 */
function approveRules(grant: Grant, stmt: ClassifiedStatement): Decision | null {
  const hits: { rule: string; reason: string }[] = [];
  let first: ApproveRule | null = null;
  (grant.approve ?? []).forEach((rule, i) => {
    const before = hits.length;
    applyDenyRule(rule, stmt, (r, reason) => {
      const label = r.replace(/^deny\./, `approve[${i}].`);
      const text = reason.replace(/^deny\./, `approve[${i}].`);
      if (!hits.some((h) => h.reason === text)) hits.push({ rule: label, reason: text });
    });
    if (hits.length > before) first ??= rule;
  });
  if (first === null) return null;
  return {
    effect: 'hold',
    rule: hits[0]!.rule,
    reasons: hits.map((h) => `${stmt.kind} needs approval (${h.reason})`),
    approval: holdApproval(grant, first),
  };
}

// ---- deny rules ----------------------------------------------------------------------------------

function applyDenyRule(
  rule: DenyRule | ApproveRule,
  stmt: ClassifiedStatement,
  add: (rule: string, reason: string) => void,
): void {
  if ('statement' in rule) {
    for (const word of rule.statement) {
      const w = word.trim().replace(/\s+/g, ' ').toUpperCase();
      const hit = stmt.kinds.find((k) => k === w || k.startsWith(`${w} `));
      if (hit) add(`deny.statement: ${word}`, `deny.statement: ${word}${hit === w ? '' : ` (${hit})`}`);
    }
  } else if ('table' in rule) {
    for (const name of rule.table) {
      const hit = stmt.tables.find((t) => nameMatches(name, t));
      if (hit)
        add(
          `deny.table: ${name}`,
          `deny.table: ${name}${hit.toLowerCase() === name.toLowerCase() ? '' : ` (${hit})`}`,
        );
    }
  } else {
    for (const name of rule.function) {
      const hit = stmt.functions.find((f) => nameMatches(name, f));
      if (hit)
        add(
          `deny.function: ${name}`,
          `deny.function: ${name}${hit.toLowerCase() === name.toLowerCase() ? '' : ` (${hit})`}`,
        );
    }
  }
}

function splitQualified(name: string): { schema: string | null; name: string } {
  const lower = name.toLowerCase();
  const dot = lower.lastIndexOf('.');
  return dot === -1
    ? { schema: null, name: lower }
    : { schema: lower.slice(0, dot), name: lower.slice(dot + 1) };
}

/** A rule's "schema.name" as PostgreSQL reads it (quotes taken off, unquoted parts folded), lower-cased. */
function ruleQualified(ruleName: string): { schema: string | null; name: string } {
  const parsed = parseQualifiedName(ruleName);
  if (!parsed.ok || parsed.parts.length > 2) return splitQualified(ruleName);
  const [a, b] = parsed.parts.map((p) => p.toLowerCase());
  return b === undefined ? { schema: null, name: a! } : { schema: a!, name: b };
}

/** Deny-rule matching, erring towards a match: see the model above. */
export function nameMatches(ruleName: string, referenced: string): boolean {
  const r = ruleQualified(ruleName);
  const x = splitQualified(referenced);
  if (r.name !== x.name) return false;
  return r.schema === null || x.schema === null || r.schema === x.schema;
}

// ---- column masks --------------------------------------------------------------------------------

export interface ColumnMask {
  /** as configured, for messages */
  label: string;
  schema: string;
  table: string;
  column: string;
  strict: boolean;
}

export function columnMaskRules(rules: readonly MaskRule[]): ColumnMask[] {
  const out: ColumnMask[] = [];
  for (const rule of rules) {
    if (!('column' in rule)) continue;
    // (config validation refuses a name that does not parse; the split is only a fallback)
    const parsed = parseQualifiedName(rule.column);
    const parts = (parsed.ok ? parsed.parts : rule.column.split('.')).map((p) => p.toLowerCase());
    const column = parts.pop() ?? '';
    const table = parts.pop() ?? '';
    const schema = parts.pop() ?? 'public';
    out.push({ label: rule.column, schema, table, column, strict: rule.strict === true });
  }
  return out;
}

/** Does a referenced relation ("t" or "s.t") denote the rule's table? Unqualified: search_path may resolve it. */
export function tableIsRule(referenced: string, rule: ColumnMask): boolean {
  const x = splitQualified(referenced);
  return x.name === rule.table && (x.schema === null || x.schema === rule.schema);
}

function applyMaskRule(
  rule: ColumnMask,
  stmt: ClassifiedStatement,
  add: (rule: string, reason: string) => void,
): void {
  if (!stmt.tables.some((t) => tableIsRule(t, rule))) return;
  for (const ref of stmt.columnRefs) {
    if (!refersTo(ref, rule)) continue;
    if (ref.use === 'expression') {
      add(
        `mask: ${rule.label}`,
        `mask: ${rule.label} is used inside an expression, where its origin (and so its mask) is lost`,
      );
    } else if (ref.use === 'predicate' && rule.strict) {
      add(
        `mask.strict: ${rule.label}`,
        `mask.strict: ${rule.label} may not be used in a condition (strict mask)`,
      );
    }
  }
}

function refersTo(ref: ColumnRef, rule: ColumnMask): boolean {
  if (ref.use === 'bare') return false;
  const column = ref.column.toLowerCase();
  if (column !== rule.column && column !== '*') return false;
  return ref.table === undefined ? true : tableIsRule(ref.table, rule);
}
