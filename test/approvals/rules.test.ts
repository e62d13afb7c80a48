// What a vote does to a pending approval (pure): self-approval refused, only permitted approvers,
// `min` distinct approvers, one denial denies, decisions only while pending and before the timeout.
import { describe, expect, it } from 'vitest';
import { applyVote, approvalEvent, jobOf } from '../../service/approvals/rules.js';
import type { ApprovalDecision, PendingApproval } from '../../service/approvals/types.js';

const now = new Date('2026-12-07T08:00:00Z');
const base: PendingApproval = {
  id: 'apr_test',
  session_id: 'ses_1',
  target: 'db',
  conn_id: 'pgc_1',
  operation_kind: 'pg.statement',
  summary: 'DROP TABLE orders',
  operation_sha256: 'ab'.repeat(32),
  rule: 'approve[0].statement: DROP',
  reasons: ['DROP TABLE needs approval'],
  policy: 'migrate',
  approvers: { users: ['alice', 'bob', 'carol'], teams: [], min: 2 },
  job: { repository: 'acme/app', actor: 'mallory', pull_request: 7, pull_request_author: 'Trent' },
  state: 'pending',
  votes: [],
  requested_at: '2026-12-07T07:59:00Z',
  expires_at: '2026-12-07T08:09:00Z',
};
const vote = (
  by: string,
  decision: 'approve' | 'deny' = 'approve',
  extra: Partial<ApprovalDecision> = {},
) => ({
  id: base.id,
  by,
  decision,
  channel: 'api' as const,
  verified_approver: false,
  ...extra,
});

describe('applyVote', () => {
  it('needs min distinct approvers; a repeated vote is refused', () => {
    const one = applyVote(base, vote('alice'), now);
    expect(one.ok && one.approval.state).toBe('pending');
    if (!one.ok) return;
    expect(applyVote(one.approval, vote('ALICE'), now)).toMatchObject({ ok: false, code: 'duplicate' });
    const two = applyVote(one.approval, vote('bob'), now);
    expect(two.ok && two.approval.state).toBe('approved');
    expect(two.ok && two.approval.decided_at).toBe(now.toISOString());
  });

  it('one denial denies, with its reason', () => {
    const one = applyVote(base, vote('alice'), now);
    if (!one.ok) throw new Error('refused');
    const d = applyVote(one.approval, vote('carol', 'deny', { reason: 'not in the change window' }), now);
    expect(d.ok && d.approval.state).toBe('denied');
    expect(d.ok && d.approval.votes.at(-1)?.reason).toBe('not in the change window');
  });

  it('refuses the job’s actor and the PR’s author, even as verified approvers', () => {
    expect(applyVote(base, vote('mallory', 'approve', { verified_approver: true }), now)).toMatchObject({
      ok: false,
      code: 'self_approval',
    });
    expect(applyVote(base, vote('@trent', 'approve', { verified_approver: true }), now)).toMatchObject({
      ok: false,
      code: 'self_approval',
    });
  });

  it('refuses someone not listed unless the channel verified them', () => {
    expect(applyVote(base, vote('eve'), now)).toMatchObject({ ok: false, code: 'not_permitted' });
    expect(applyVote(base, vote('eve', 'approve', { verified_approver: true }), now).ok).toBe(true);
  });

  it('decides only while pending and before the timeout', () => {
    expect(applyVote({ ...base, state: 'denied' }, vote('alice'), now)).toMatchObject({
      code: 'not_pending',
    });
    expect(applyVote(base, vote('alice'), new Date('2026-12-07T08:09:00Z'))).toMatchObject({
      code: 'not_pending',
    });
  });
});

describe('the job and the events', () => {
  it('reads the job from the claims, the PR number from the ref', () => {
    expect(
      jobOf({ repository: 'acme/app', actor: 'mallory', ref: 'refs/pull/42/merge', run_id: 99, sha: 'abc' }),
    ).toEqual({
      repository: 'acme/app',
      actor: 'mallory',
      ref: 'refs/pull/42/merge',
      run_id: '99',
      sha: 'abc',
      pull_request: 42,
    });
  });

  it('records who decided, through which channel, and how long it waited', () => {
    const a: PendingApproval = {
      ...base,
      state: 'approved',
      votes: [
        { by: 'alice', decision: 'approve', channel: 'api', at: '2026-12-07T07:59:30Z' },
        { by: 'bob', decision: 'approve', channel: 'cli', at: '2026-12-07T08:00:00Z' },
      ],
    };
    const ev = approvalEvent(a, 'approval.granted', now);
    expect(ev.kind).toBe('approval.granted');
    expect(ev.decision).toBe('allow');
    expect(ev.operation).toMatchObject({
      by: 'alice, bob',
      channel: 'cli',
      waited_ms: 60_000,
      approval_id: 'apr_test',
    });
    const keys = Object.keys(ev.operation);
    expect(keys).toEqual([...keys].sort());
    const req = approvalEvent(base, 'approval.requested', now);
    expect(req.decision).toBe('hold');
    expect(req.reasons.at(-1)).toContain('2 of alice, bob, carol');
  });
});
