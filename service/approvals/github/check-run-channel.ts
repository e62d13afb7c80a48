// The GitHub channel's face: a check run per hold, on the job's commit (the PR head for pull requests),
// completed with conclusion `action_required` and Approve / Deny buttons (requested actions). Its
// `external_id` is the approval id, which is how a `check_run.requested_action` delivery finds the
// approval again (webhooks.ts). When the hold ends the run is updated: success (approved), failure
// (denied, expired), neutral (abandoned), naming who decided and when, without buttons.
// Everything shown is the approval's redacted summary: no secret, no masked value.
import type { Logger } from 'pino';
import type { ApprovalChannel, ApprovalDecider, PendingApproval } from '../types.js';
import type { GitHubClient } from './client.js';
import { GET_PULL } from './permissions.js';

export const CREATE_CHECK_RUN = 'POST /repos/{owner}/{repo}/check-runs';
export const UPDATE_CHECK_RUN = 'PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}';
export const LIST_CHECK_RUNS = 'GET /repos/{owner}/{repo}/commits/{ref}/check-runs';

/** The requested actions' identifiers (≤ 20 characters each, as GitHub requires). */
export const APPROVE_ACTION = 'approve';
export const DENY_ACTION = 'deny';

/** GitHub's limits on a requested action: label ≤ 20, identifier ≤ 20, description ≤ 40 characters. */
export const CHECK_RUN_ACTIONS = [
  { label: 'Approve', identifier: APPROVE_ACTION, description: 'Let this held operation run' },
  { label: 'Deny', identifier: DENY_ACTION, description: 'Refuse this held operation' },
] as const;

export const checkRunName = (approvalId: string): string => `hoop approval ${approvalId}`;

/** A statement longer than this is cut in the check run (the transcript keeps it whole). */
const MAX_SHOWN = 6000;

function fenced(text: string): string {
  const shown =
    text.length > MAX_SHOWN
      ? `${text.slice(0, MAX_SHOWN)}\n… (${text.length - MAX_SHOWN} more characters)`
      : text;
  // a fence longer than any run of backticks inside: the statement cannot close it
  const longest = Math.max(0, ...[...shown.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}\n${shown}\n${fence}`;
}

/** Markdown table cells: no line breaks or pipes from claim values. */
const cell = (v: string | undefined): string => (v ?? '—').replace(/[\r\n|]+/g, ' ').slice(0, 200);

function approversText(a: PendingApproval): string {
  const who = [...a.approvers.users.map((u) => `@${u}`), ...a.approvers.teams.map((t) => `@${t}`)];
  const from = who.length > 0 ? who.join(', ') : 'anyone with write access to the repository';
  return `${a.approvers.min} of: ${from} (never the job's actor or the pull request's author)`;
}

export function requestedOutput(a: PendingApproval, links: { api: string; viewer?: string }) {
  const j = a.job;
  const summary = [
    `A \`${a.operation_kind}\` on target **${cell(a.target)}** is held until a person approves it.`,
    '',
    fenced(a.summary),
    '',
    `| | |`,
    `|---|---|`,
    `| Approval | \`${a.id}\` |`,
    `| Policy / rule | ${cell(a.policy)} / \`${cell(a.rule)}\` |`,
    `| Why | ${cell(a.reasons.join('; '))} |`,
    `| Repository | ${cell(j.repository)} |`,
    `| Workflow | ${cell(j.workflow)} |`,
    `| Run | ${cell(j.run_id)}${j.run_attempt ? ` (attempt ${cell(j.run_attempt)})` : ''} |`,
    `| Actor | ${cell(j.actor)} |`,
    `| Approvers | ${cell(approversText(a))} |`,
    `| Times out | ${a.expires_at} (then it is denied) |`,
  ].join('\n');
  const text = [
    `Approve or deny with the buttons above, or comment on the pull request:`,
    '',
    `    /hoop approve ${a.id}`,
    `    /hoop deny ${a.id} <reason>`,
    '',
    `API: \`POST ${links.api}\` with \`{"decision": "approve"}\` and an approver token.`,
    ...(links.viewer ? ['', `Session: ${links.viewer}`] : []),
  ].join('\n');
  return { title: `Approval needed: ${a.operation_kind} on ${a.target}`.slice(0, 200), summary, text };
}

export function endedOutput(a: PendingApproval) {
  const last = a.votes.at(-1);
  const approvers = a.votes.filter((v) => v.decision === 'approve').map((v) => `${v.by} (${v.channel})`);
  const head =
    a.state === 'approved'
      ? `Approved by ${approvers.join(', ') || 'a permitted approver'}`
      : a.state === 'denied'
        ? `Denied by ${last?.by ?? 'an approver'}${last?.reason ? `: ${last.reason}` : ''}`
        : a.state === 'expired'
          ? 'No approval came in time: denied'
          : a.state === 'abandoned'
            ? 'The session or connection ended while the operation was held'
            : `State: ${a.state}`;
  const summary = [
    `**${cell(head)}** at ${a.decided_at ?? new Date().toISOString()}.`,
    '',
    fenced(a.summary),
    '',
    `Approval \`${a.id}\`, policy ${cell(a.policy)}, rule \`${cell(a.rule)}\`, target ${cell(a.target)}.`,
    ...(a.votes.length > 0
      ? [
          '',
          ...a.votes.map(
            (v) =>
              `- ${cell(v.by)}: ${v.decision} via ${v.channel} at ${v.at}${v.reason ? ` (${cell(v.reason)})` : ''}`,
          ),
        ]
      : []),
  ].join('\n');
  return { title: head.slice(0, 200), summary };
}

function conclusion(a: PendingApproval): 'success' | 'failure' | 'neutral' {
  if (a.state === 'approved') return 'success';
  if (a.state === 'denied' || a.state === 'expired') return 'failure';
  return 'neutral';
}

export interface CheckRunChannelOptions {
  client: GitHubClient;
  logger: Logger;
  /** where the channel keeps the check run's id (the approvals service's store) */
  decider?: Pick<ApprovalDecider, 'recordCheckRun'>;
  now?: () => Date;
}

export class CheckRunChannel implements ApprovalChannel {
  readonly name = 'github_check';
  readonly #o: CheckRunChannelOptions;
  /** approval id → check run id, for `ended` on this replica even when the store did not keep it */
  readonly #runs = new Map<string, number>();

  constructor(options: CheckRunChannelOptions) {
    this.#o = options;
  }

  #now(): string {
    return (this.#o.now?.() ?? new Date()).toISOString();
  }

  /**
   * The commit the check run goes on. For a pull_request job the token's `sha` is GitHub's merge
   * commit, where a check run does not show on the PR: the PR's head is read instead (the job's sha
   * when it cannot be).
   */
  async #commit(approval: PendingApproval): Promise<string | undefined> {
    const { repository, sha, pull_request } = approval.job;
    if (pull_request === undefined) return sha;
    try {
      const pr = await this.#o.client.request<{ head?: { sha?: string } }>(repository, GET_PULL, {
        pull_number: pull_request,
      });
      return pr.head?.sha ?? sha;
    } catch (err) {
      this.#o.logger.warn(
        { approval: approval.id, err: (err as Error).message },
        "the pull request's head could not be read: the check run goes on the job's commit",
      );
      return sha;
    }
  }

  async requested(
    approval: PendingApproval,
    links: { api: string; viewer?: string },
  ): Promise<{ url?: string | undefined } | undefined> {
    const { repository } = approval.job;
    const sha = await this.#commit(approval);
    if (!sha) {
      this.#o.logger.warn({ approval: approval.id }, 'no commit sha on the job: no check run for this hold');
      return undefined;
    }
    const run = await this.#o.client.request<{ id: number; html_url?: string }>(
      repository,
      CREATE_CHECK_RUN,
      {
        name: checkRunName(approval.id),
        head_sha: sha,
        external_id: approval.id,
        status: 'completed',
        conclusion: 'action_required',
        completed_at: this.#now(),
        ...(links.viewer ? { details_url: links.viewer } : {}),
        output: requestedOutput(approval, links),
        actions: CHECK_RUN_ACTIONS.map((a) => ({ ...a })),
      },
    );
    this.#runs.set(approval.id, run.id);
    approval.github_check_run_id = run.id;
    await this.#o.decider?.recordCheckRun?.(approval.id, run.id);
    return { url: typeof run.html_url === 'string' ? run.html_url : undefined };
  }

  async ended(approval: PendingApproval): Promise<void> {
    const { repository, sha } = approval.job;
    const id = approval.github_check_run_id ?? this.#runs.get(approval.id) ?? (await this.#find(approval));
    this.#runs.delete(approval.id);
    if (id === undefined) {
      if (sha)
        this.#o.logger.warn({ approval: approval.id }, 'no check run found to update for this approval');
      return;
    }
    await this.#o.client.request(repository, UPDATE_CHECK_RUN, {
      check_run_id: id,
      status: 'completed',
      conclusion: conclusion(approval),
      completed_at: approval.decided_at ?? this.#now(),
      output: endedOutput(approval),
      actions: [],
    });
  }

  /** The check run another replica created: by name on the commit, confirmed by external_id. */
  async #find(approval: PendingApproval): Promise<number | undefined> {
    const sha = await this.#commit(approval);
    if (!sha) return undefined;
    const found = await this.#o.client.request<{
      check_runs?: { id: number; external_id?: string | null }[];
    }>(approval.job.repository, LIST_CHECK_RUNS, {
      ref: sha,
      check_name: checkRunName(approval.id),
      filter: 'all',
    });
    return found.check_runs?.find((r) => r.external_id === approval.id)?.id;
  }
}
