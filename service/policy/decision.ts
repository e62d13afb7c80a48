// What every gateway asks the policy, and what it gets back. Denials are values, not exceptions.
import type { MaskRule } from '../config/schema.js';
import type { HoldApproval } from './approval.js';
import type { MaskPlan } from './sql/types.js';

export type Effect = 'allow' | 'deny' | 'hold';

interface Judged {
  /** human-readable, each naming the rule or fact that decided; empty only for a plain allow */
  reasons: string[];
  /** the rule that denied/held, e.g. "access: read", "deny.statement: DROP", "mask.strict: customers.email" */
  rule?: string;
  /** pg: the index, in the message's statements (PgFacts.message), of the statement that decided */
  statement?: number;
}

/**
 * How an allowed PostgreSQL operation's results are masked: the mask rules in force (the grant's and
 * those derived for views over masked columns), and, when the result's columns are known at decision
 * time (a FunctionCall's one value), the plan itself. Absent: nothing is masked.
 */
export interface MaskDirective {
  rules: readonly MaskRule[];
  plan?: MaskPlan;
}

export interface AllowDecision extends Judged {
  effect: 'allow';
  mask?: MaskDirective;
}

export interface DenyDecision extends Judged {
  effect: 'deny';
  /** the broker cannot carry this out safely (pg: SQLSTATE 0A000), rather than the grant forbidding it */
  unsupported?: boolean;
  /**
   * pg: denied for want of a catalog reading. The gateway may read it (`refresh`: in a reading that
   * starts now) and ask again; one that does not keeps the denial (fail closed).
   */
  needs?: { facts: 'views' | 'user-objects'; refresh: boolean };
}

/** Held for a human's approval (gateways/operation-flow.ts asks an Approver). */
export interface HoldDecision extends Judged {
  effect: 'hold';
  /** who approves and how long it waits (absent: the grant's approvers and approval_timeout) */
  approval?: HoldApproval;
}

export type Decision = AllowDecision | DenyDecision | HoldDecision;

export const allow = (reasons: string[] = []): AllowDecision => ({ effect: 'allow', reasons });
export const deny = (rule: string, ...reasons: string[]): DenyDecision => ({ effect: 'deny', rule, reasons });
export const hold = (rule: string, ...reasons: string[]): HoldDecision => ({ effect: 'hold', rule, reasons });
