// What every gateway asks the policy, and what it gets back. Denials are values, not exceptions.

export type Effect = 'allow' | 'deny' | 'hold';

export interface Decision {
  effect: Effect;
  /** human-readable, each naming the rule or fact that decided; empty only for a plain allow */
  reasons: string[];
  /** the rule that denied/held, e.g. "access: read", "deny.statement: DROP", "mask.strict: customers.email" */
  rule?: string;
}

export const allow = (reasons: string[] = []): Decision => ({ effect: 'allow', reasons });
export const deny = (rule: string, ...reasons: string[]): Decision => ({ effect: 'deny', rule, reasons });
export const hold = (rule: string, ...reasons: string[]): Decision => ({ effect: 'hold', rule, reasons });
