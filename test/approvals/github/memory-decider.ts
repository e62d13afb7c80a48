// A small in-memory ApprovalDecider for the GitHub channel's tests, honouring the contract's rules
// (service/approvals/types.ts) as the approvals service does: only pending approvals are decided, never
// by the job's actor or the PR's author, an unverified approver is refused, each approver votes once,
// one denial denies, `min` distinct approvals approve.
import type {
  ApprovalDecider,
  ApprovalDecision,
  DecideResult,
  PendingApproval,
} from '../../../service/approvals/types.js';

export class MemoryDecider implements ApprovalDecider {
  readonly approvals = new Map<string, PendingApproval>();
  readonly decisions: ApprovalDecision[] = [];
  readonly checkRuns = new Map<string, number>();
  /** called when an approval leaves pending */
  onEnded?: (a: PendingApproval) => void;

  add(a: PendingApproval): PendingApproval {
    this.approvals.set(a.id, a);
    return a;
  }

  get(id: string): Promise<PendingApproval | null> {
    return Promise.resolve(this.approvals.get(id) ?? null);
  }

  recordCheckRun(id: string, checkRunId: number): Promise<void> {
    this.checkRuns.set(id, checkRunId);
    const a = this.approvals.get(id);
    if (a) a.github_check_run_id = checkRunId;
    return Promise.resolve();
  }

  decide(d: ApprovalDecision): Promise<DecideResult> {
    this.decisions.push(d);
    const a = this.approvals.get(d.id);
    const no = (code: Exclude<DecideResult, { ok: true }>['code'], message: string): Promise<DecideResult> =>
      Promise.resolve({ ok: false, code, message });
    if (!a) return no('not_found', `no approval ${d.id}`);
    if (a.state !== 'pending') return no('not_pending', `approval ${d.id} is ${a.state}`);
    const by = d.by.toLowerCase();
    if (by === a.job.actor?.toLowerCase() || by === a.job.pull_request_author?.toLowerCase())
      return no('self_approval', `${d.by} started this job or authored its pull request`);
    if (!d.verified_approver) return no('not_permitted', `${d.by} is not a verified approver`);
    if (a.votes.some((v) => v.by.toLowerCase() === by)) return no('duplicate', `${d.by} already voted`);
    a.votes.push({
      by: d.by,
      decision: d.decision,
      channel: d.channel,
      at: new Date().toISOString(),
      ...(d.reason ? { reason: d.reason } : {}),
    });
    const approvals = a.votes.filter((v) => v.decision === 'approve').length;
    if (d.decision === 'deny') a.state = 'denied';
    else if (approvals >= a.approvers.min) a.state = 'approved';
    if (a.state !== 'pending') {
      a.decided_at = new Date().toISOString();
      this.onEnded?.(a);
    }
    return Promise.resolve({ ok: true, approval: a });
  }
}

let n = 0;
export function pendingApproval(over: Partial<PendingApproval> = {}): PendingApproval {
  n++;
  return {
    id: `apr_test${String(n).padStart(4, '0')}`,
    session_id: 'ses_1',
    target: 'orders-db',
    conn_id: 'c1',
    operation_kind: 'pg.statement',
    summary: 'DROP TABLE legacy_orders',
    operation_sha256: 'ab'.repeat(32),
    rule: 'approve[0]',
    reasons: ['approve.statement: DROP'],
    policy: 'migrations',
    approvers: { users: ['reviewer'], teams: [], min: 1 },
    job: {
      repository: 'octo-org/app',
      sha: 'a'.repeat(40),
      ref: 'refs/pull/7/merge',
      actor: 'author',
      workflow: 'migrate',
      run_id: '1234',
      run_attempt: '1',
      pull_request: 7,
    },
    state: 'pending',
    votes: [],
    requested_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 600_000).toISOString(),
    ...over,
  };
}
