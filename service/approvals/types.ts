// The contract between the approvals service (holds, store, API/CLI, notifications, replicas) and the
// channels a human decides through (the GitHub App's check runs and PR comments, the API, the CLI).
// Pure types: the service implements ApprovalDecider and calls every ApprovalChannel; a channel
// turns a human's act into an ApprovalDecision and hands it to the decider, which alone checks that
// the approval is still pending, that the decider is not the job's actor or the PR's author, and
// that enough approvers have agreed.

/** Who opened the session whose operation waits: the verified token's claims that matter here. */
export interface ApprovalJob {
  repository: string;
  repository_id?: string;
  repository_owner?: string;
  /** the commit the job runs on (the PR head for pull requests: the token's `sha`) */
  sha?: string;
  ref?: string;
  /** the job's actor: never an approver of its own statement */
  actor?: string;
  workflow?: string;
  run_id?: string;
  run_attempt?: string;
  event_name?: string;
  environment?: string;
  /** the pull request number, when the job runs for one (from `ref` refs/pull/N/merge) */
  pull_request?: number;
  /** the PR's author, once a channel has read it: never an approver either */
  pull_request_author?: string;
}

/** Who may approve one hold, from the grant's `approve:` rule. */
export interface ApproverSpec {
  /** GitHub logins */
  users: string[];
  /** `org/team` slugs */
  teams: string[];
  /** how many distinct approvers must approve (default 1); one denial denies */
  min: number;
}

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'abandoned';

/** Which way a human decided, and where. */
export type ApprovalChannelName = 'github_check' | 'github_comment' | 'api' | 'cli';

export interface ApprovalVote {
  by: string;
  decision: 'approve' | 'deny';
  channel: ApprovalChannelName;
  reason?: string;
  at: string;
}

/** One held operation, as the store keeps it and channels show it. */
export interface PendingApproval {
  /** short, URL- and comment-safe id, e.g. `apr_7f3k2m9q` */
  id: string;
  session_id: string;
  target: string;
  conn_id: string;
  /** `pg.statement`, `ssh.exec`, `k8s.request`, … */
  operation_kind: string;
  /** what is held, as the transcript shows it (redacted: no secret, no masked value) */
  summary: string;
  /** SHA-256 (hex) of the exact operation (statement text + parameters, command, request): the approval binds to it */
  operation_sha256: string;
  /** the grant rule that held it (e.g. `approve[0]`) and why */
  rule: string;
  reasons: string[];
  policy: string;
  approvers: ApproverSpec;
  job: ApprovalJob;
  state: ApprovalState;
  votes: ApprovalVote[];
  requested_at: string;
  expires_at: string;
  decided_at?: string;
  /** set by the GitHub channel once it created its check run */
  github_check_run_id?: number;
}

/** A human's decision, as a channel hands it to the decider. */
export interface ApprovalDecision {
  id: string;
  decision: 'approve' | 'deny';
  /** a GitHub login, or an approver token's name (`token:<name>`) */
  by: string;
  channel: ApprovalChannelName;
  reason?: string;
  /** the channel already checked that `by` is a permitted approver (team membership, repo permission) */
  verified_approver: boolean;
}

export type DecideResult =
  | { ok: true; approval: PendingApproval }
  | {
      ok: false;
      code: 'not_found' | 'not_pending' | 'self_approval' | 'not_permitted' | 'duplicate';
      message: string;
    };

export interface ApprovalDecider {
  get(id: string): Promise<PendingApproval | null>;
  decide(decision: ApprovalDecision): Promise<DecideResult>;
  /** optional: keep the check run the GitHub channel created for `id` (PendingApproval.github_check_run_id) */
  recordCheckRun?(id: string, checkRunId: number): Promise<void>;
}

/** A way to tell humans about holds (GitHub check run, Slack, generic webhook). Failures are logged, never fatal. */
export interface ApprovalChannel {
  readonly name: string;
  /** a hold began: show it, with where to decide; resolves with where it is shown, when there is a page */
  requested(
    approval: PendingApproval,
    links: { api: string; viewer?: string },
  ): Promise<void | { url?: string | undefined }>;
  /** it ended (approved, denied, expired, abandoned): update what `requested` showed */
  ended(approval: PendingApproval): Promise<void>;
}
