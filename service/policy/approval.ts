// Who approves a hold and how long it waits: from the rule that held it (postgres approve rules may
// name their own) or the grant (`approvers`, `approval_timeout`), the same for every gateway. Pure.
import type { ApproverSpec } from '../approvals/types.js';
import { parseDuration } from '../config/duration.js';
import type { Approvers, Grant } from '../config/schema.js';

/** A hold with no timeout configured waits this long; then it is denied. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 10 * 60_000;

/** What a hold needs to be decided: who may approve, how many, for how long. */
export interface HoldApproval {
  approvers: ApproverSpec;
  timeout_ms: number;
}

export function approverSpec(a: Approvers | undefined): ApproverSpec {
  return { users: [...(a?.users ?? [])], teams: [...(a?.teams ?? [])], min: a?.min ?? 1 };
}

/** The approval terms of a hold under `grant`, a rule's own approvers and timeout first. */
export function holdApproval(
  grant: Pick<Grant, 'approvers' | 'approval_timeout'>,
  rule?: { approvers?: Approvers; timeout?: string },
): HoldApproval {
  const timeout = rule?.timeout ?? grant.approval_timeout;
  return {
    approvers: approverSpec(rule?.approvers ?? grant.approvers),
    timeout_ms: (timeout !== undefined ? parseDuration(timeout) : null) ?? DEFAULT_APPROVAL_TIMEOUT_MS,
  };
}
