// The statement gate: the one sequence of judgements every SQL message goes through (a simple Query
// with all its statements, or a Parse), given the facts the gateway read. Pure: it answers pass,
// refuse (with the statement and the decision), or which catalog reading must come first, after
// which the gateway asks again.
//
//  1. a relation the traced lineage does not know (created since, outside the broker; it may be a
//     view over a masked column) → read the lineage again, once per message;
//  2. a view `read` must refuse, or one no mask rule can name → refuse;
//  3. each statement: the grant's rules (sql/decide.ts); a masked COPY TO in the extended protocol;
//  4. user-defined code behind trusted names (user-code.ts) → refuse, or read the user objects first.
import type { Access } from '../../config/schema.js';
import type { Decision } from '../decision.js';
import type { ClassifiedStatement } from '../sql/types.js';
import { knowsRelation, type TargetViews, type UserObjects, type ViewLineage } from './facts.js';
import { userCodeCheck } from './user-code.js';
import { refusedView } from './views.js';

export interface GateFacts {
  /** the session's access level */
  access: Access;
  /** the grant has column masks or table deny rules: code out of the classifier's sight matters */
  outOfSight: boolean;
  /** the target's views are traced for this grant (outOfSight, or access read) */
  tracesViews: boolean;
  /** the grant masks anything */
  masking: boolean;
  /** the traced lineage decisions are made under (null: none yet) */
  views: TargetViews | null;
  /** views passing a masked column on that no rule can name (EffectiveGrant.unnameable) */
  unnameable: readonly ViewLineage[];
  /** no new reading of the lineage for this message: one that started after it is in, or the session's own DDL holds locks a reading would wait for */
  relationsSettled: boolean;
  /** the user objects as read (undefined: not yet, or stale); called only when a statement names anything */
  userObjects(): UserObjects | undefined;
  /** the user objects come from a reading that started after this message */
  userObjectsFresh: boolean;
  /** an approver approved this message's hold: a hold passes */
  approved: boolean;
  /** the grant's rules for one statement (sql/decide.ts decideStatement, memoized by the gateway) */
  decide(stmt: ClassifiedStatement): Decision;
}

export type GateVerdict =
  | { kind: 'refuse'; stmt: ClassifiedStatement; decision: Decision; unsupported: boolean }
  | { kind: 'read-views' }
  | { kind: 'read-user-objects'; refresh: boolean };

/** Masked COPY TO needs the simple protocol (the broker describes its columns in-band first). */
const COPY_TO_EXTENDED: Decision = {
  effect: 'deny',
  rule: 'mask',
  reasons: ['COPY … TO STDOUT is masked only in the simple query protocol'],
};

/** null: the statements may go to the database. */
export function gateStatements(
  statements: readonly ClassifiedStatement[],
  protocol: 'simple' | 'extended',
  facts: GateFacts,
): GateVerdict | null {
  const tv = facts.views;
  if (facts.tracesViews && tv !== null && !facts.relationsSettled) {
    for (const stmt of statements)
      for (const t of stmt.tables) if (!knowsRelation(tv, t)) return { kind: 'read-views' };
  }
  const view = refusedView(statements, facts.access, tv?.notReadOnly ?? [], facts.unnameable);
  if (view) return { kind: 'refuse', ...view, unsupported: false };
  // A denial anywhere in the message wins over a hold (nobody waits for an approval of a message that
  // would be refused anyway); a hold holds the whole message, and its approval releases the whole message.
  let held: { stmt: ClassifiedStatement; decision: Decision } | null = null;
  for (const stmt of statements) {
    const d = facts.decide(stmt);
    if (d.effect === 'hold') {
      if (!facts.approved) held ??= { stmt, decision: d };
    } else if (d.effect !== 'allow') return { kind: 'refuse', stmt, decision: d, unsupported: false };
    if (protocol === 'extended' && facts.masking && stmt.copy?.direction === 'to')
      return { kind: 'refuse', stmt, decision: COPY_TO_EXTENDED, unsupported: true };
  }
  if (held) return { kind: 'refuse', ...held, unsupported: false };
  const code = userCodeCheck(
    statements,
    facts.access,
    facts.outOfSight,
    facts.userObjects,
    facts.userObjectsFresh,
  );
  if (code === 'load' || code === 'reload') return { kind: 'read-user-objects', refresh: code === 'reload' };
  if (code) return { kind: 'refuse', ...code, unsupported: false };
  return null;
}
