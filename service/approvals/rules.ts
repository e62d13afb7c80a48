// The pure part of approvals: who the job is, what a vote does to a pending approval (self-approval,
// permitted approvers, distinct approvers, one denial denies, only while pending), the transcript
// events of a hold. No I/O, no clock but the one given.
import type { ApprovalRecord, BrokerEvent } from '../audit/event.js';
import type { ApprovalDecision, ApprovalJob, ApprovalVote, DecideResult, PendingApproval } from './types.js';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The job a session belongs to, from its token's claims. */
export function jobOf(claims: Record<string, unknown>): ApprovalJob {
  const job: ApprovalJob = { repository: str(claims.repository) ?? '' };
  const keys = [
    'repository_id',
    'repository_owner',
    'sha',
    'ref',
    'actor',
    'workflow',
    'run_id',
    'run_attempt',
    'event_name',
    'environment',
  ] as const;
  for (const k of keys) {
    const v = claims[k];
    const text = typeof v === 'number' ? String(v) : str(v);
    if (text !== undefined) job[k] = text;
  }
  const pr = /^refs\/pull\/(\d+)\/(?:merge|head)$/.exec(job.ref ?? '');
  if (pr) job.pull_request = Number(pr[1]);
  return job;
}

const same = (a: string | undefined, b: string): boolean =>
  a !== undefined && a.toLowerCase() === b.toLowerCase();

/** A vote applied to an approval, or why it is refused. Pure: `now` is given. */
export function applyVote(approval: PendingApproval, d: ApprovalDecision, now: Date): DecideResult {
  if (approval.state !== 'pending')
    return {
      ok: false,
      code: 'not_pending',
      message: `approval ${approval.id} is already ${approval.state}`,
    };
  if (now.getTime() >= Date.parse(approval.expires_at))
    return { ok: false, code: 'not_pending', message: `approval ${approval.id} has timed out` };
  const by = d.by.trim();
  const login = by.replace(/^@/, '');
  if (same(approval.job.actor, login) || same(approval.job.pull_request_author, login))
    return {
      ok: false,
      code: 'self_approval',
      message: `${by} started this job (or authored its pull request) and cannot decide its own hold`,
    };
  const listed = approval.approvers.users.some((u) => same(u.replace(/^@/, ''), login));
  if (!d.verified_approver && !listed)
    return {
      ok: false,
      code: 'not_permitted',
      message: `${by} is not an approver of this hold (approvers: ${describeApprovers(approval)})`,
    };
  if (approval.votes.some((v) => same(v.by, by)))
    return { ok: false, code: 'duplicate', message: `${by} has already decided approval ${approval.id}` };
  const vote: ApprovalVote = { by, decision: d.decision, channel: d.channel, at: now.toISOString() };
  if (d.reason !== undefined && d.reason !== '') vote.reason = d.reason.slice(0, 500);
  const votes = [...approval.votes, vote];
  const next: PendingApproval = { ...approval, votes };
  if (d.decision === 'deny') {
    next.state = 'denied';
    next.decided_at = vote.at;
  } else if (votes.filter((v) => v.decision === 'approve').length >= approval.approvers.min) {
    next.state = 'approved';
    next.decided_at = vote.at;
  }
  return { ok: true, approval: next };
}

export function describeApprovers(a: Pick<PendingApproval, 'approvers'>): string {
  const names = [...a.approvers.users, ...a.approvers.teams.map((t) => `team ${t}`)];
  const who = names.length > 0 ? names.join(', ') : 'approver tokens and admins';
  return a.approvers.min > 1 ? `${a.approvers.min} of ${who}` : who;
}

/** The event of a hold's step, keys in sorted order (canonical JSON without sorting). */
export function approvalEvent(
  a: PendingApproval,
  kind:
    'approval.requested' | 'approval.granted' | 'approval.denied' | 'approval.expired' | 'approval.abandoned',
  now: Date,
): BrokerEvent {
  const r = { approval_id: a.id } as ApprovalRecord;
  if (kind === 'approval.requested')
    r.approvers = { min: a.approvers.min, teams: a.approvers.teams, users: a.approvers.users };
  const deciding = a.votes.filter((v) =>
    a.state === 'denied' ? v.decision === 'deny' : v.decision === 'approve',
  );
  if (kind === 'approval.granted' || kind === 'approval.denied') {
    r.by = deciding.map((v) => v.by).join(', ');
    r.channel = deciding.at(-1)?.channel ?? '';
  }
  r.conn_id = a.conn_id;
  if (kind === 'approval.requested') r.expires_at = a.expires_at;
  r.operation_kind = a.operation_kind;
  r.operation_sha256 = a.operation_sha256;
  const reason = kind === 'approval.denied' ? deciding.at(-1)?.reason : undefined;
  if (reason !== undefined) r.reason = reason;
  r.rule = a.rule;
  r.summary = a.summary;
  if (kind !== 'approval.requested' && a.votes.length > 0)
    r.votes = a.votes.map((v) => {
      const out: NonNullable<ApprovalRecord['votes']>[number] = {
        at: v.at,
        by: v.by,
        channel: v.channel,
        decision: v.decision,
      };
      if (v.reason !== undefined) out.reason = v.reason;
      return out;
    });
  if (kind !== 'approval.requested') r.waited_ms = Math.max(0, now.getTime() - Date.parse(a.requested_at));
  const reasons =
    kind === 'approval.requested'
      ? [...a.reasons, `held for approval ${a.id} by ${describeApprovers(a)} until ${a.expires_at}`]
      : kind === 'approval.granted'
        ? [`approved by ${r.by} (${r.channel})`]
        : kind === 'approval.denied'
          ? [`denied by ${r.by} (${r.channel})${reason ? `: ${reason}` : ''}`]
          : kind === 'approval.expired'
            ? ['no decision came in time: a timeout denies']
            : ['the wait ended without a decision (the client left, or the session ended)'];
  return {
    target: a.target,
    kind,
    operation: r,
    decision: kind === 'approval.requested' ? 'hold' : kind === 'approval.granted' ? 'allow' : 'deny',
    reasons,
  };
}
