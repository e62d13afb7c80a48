// Deliveries that decide holds (the route, api/github-webhook.ts, has already checked the signature and
// that the delivery id is new):
// - `check_run` / `requested_action`: the Approve or Deny button of a check run the channel created
//   (external_id = approval id; its repository, name and id must be the approval's);
// - `issue_comment` / `created`: `/hoop approve <id>` or `/hoop deny <id> [reason]` on the approval's
//   own pull request.
// The sender is then checked through the API (permissions.ts) and the decider is called with
// `verified_approver: true`. The answer says what was done, or why not (GitHub shows it in the App's
// delivery log); a refused `/hoop` comment also gets a reply comment on its pull request saying why
// (needs the App's issues or pull requests write permission; a failed reply is only logged).
import type { Logger } from 'pino';
import type { ApprovalChannelName, ApprovalDecider, PendingApproval } from '../types.js';
import { APPROVE_ACTION, DENY_ACTION, checkRunName } from './check-run-channel.js';
import type { GitHubClient } from './client.js';
import { checkApprover } from './permissions.js';

export interface WebhookAnswer {
  status: number;
  body: Record<string, unknown>;
}

export const CREATE_COMMENT = 'POST /repos/{owner}/{repo}/issues/{issue_number}/comments';
const APPROVAL_ID = /^apr_[A-Za-z0-9]{1,64}$/;
/** `/hoop approve apr_x`, `/hoop deny apr_x reason…`: the first line of the comment that starts with /hoop */
const COMMAND = /^\/hoop\s+(approve|deny)\s+(\S+)(?:[ \t]+(.*))?$/;

export function parseCommand(
  body: string,
): { decision: 'approve' | 'deny'; id: string; reason?: string } | null {
  for (const raw of body.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line.startsWith('/hoop')) continue;
    const m = COMMAND.exec(line);
    if (!m) return null;
    const reason = m[3]?.trim();
    return {
      decision: m[1] as 'approve' | 'deny',
      id: m[2]!,
      ...(reason ? { reason: reason.slice(0, 500) } : {}),
    };
  }
  return null;
}

interface Sender {
  login?: string;
  type?: string;
}
interface CheckRunPayload {
  action?: string;
  requested_action?: { identifier?: string };
  check_run?: { id?: number; name?: string; external_id?: string | null };
  repository?: { full_name?: string };
  sender?: Sender;
}
interface IssueCommentPayload {
  action?: string;
  issue?: { number?: number; pull_request?: unknown };
  comment?: { body?: string; user?: Sender };
  repository?: { full_name?: string };
  sender?: Sender;
}

const answer = (status: number, body: Record<string, unknown>): WebhookAnswer => ({ status, body });
const refused = (status: number, error: string, message: string): WebhookAnswer =>
  answer(status, { error, reasons: [{ message }] });
const sameRepo = (a: string | undefined, b: string): boolean =>
  a !== undefined && a.toLowerCase() === b.toLowerCase();

export interface ApprovalWebhooksOptions {
  client: GitHubClient;
  decider: ApprovalDecider;
  logger: Logger;
}

export class GitHubApprovalWebhooks {
  readonly #o: ApprovalWebhooksOptions;

  constructor(options: ApprovalWebhooksOptions) {
    this.#o = options;
  }

  /** null: not an event this handler decides on */
  handles(event: string): boolean {
    return event === 'check_run' || event === 'issue_comment';
  }

  async handle(event: string, payload: unknown, delivery: string): Promise<WebhookAnswer> {
    if (event === 'check_run') return this.#checkRun(payload as CheckRunPayload, delivery);
    if (event === 'issue_comment') {
      const p = payload as IssueCommentPayload;
      const a = await this.#comment(p, delivery);
      if (a.status >= 400) await this.#reply(p, a);
      return a;
    }
    return answer(202, { ignored: true });
  }

  /** A refused `/hoop` command gets a reply on its pull request saying why (a failure is only logged). */
  async #reply(p: IssueCommentPayload, a: WebhookAnswer): Promise<void> {
    const repository = p.repository?.full_name;
    const number = p.issue?.number;
    const login = p.sender?.login;
    if (!repository || typeof number !== 'number' || !login || p.issue?.pull_request === undefined) return;
    const reasons = (a.body.reasons as { message?: string }[] | undefined) ?? [];
    const why = reasons.map((r) => r.message ?? '').join('; ') || String(a.body.error ?? 'refused');
    const body = `@${login} your \`/hoop\` command was not taken: ${why.replace(/[\r\n]+/g, ' ').slice(0, 500)}`;
    try {
      await this.#o.client.request(repository, CREATE_COMMENT, { issue_number: number, body });
    } catch (err) {
      this.#o.logger.warn({ err: (err as Error).message, repository, number }, 'reply comment failed');
    }
  }

  async #checkRun(p: CheckRunPayload, delivery: string): Promise<WebhookAnswer> {
    if (p.action !== 'requested_action')
      return answer(202, { ignored: true, reason: `check_run ${String(p.action)}` });
    const identifier = p.requested_action?.identifier;
    const decision = identifier === APPROVE_ACTION ? 'approve' : identifier === DENY_ACTION ? 'deny' : null;
    const id = p.check_run?.external_id ?? '';
    if (!APPROVAL_ID.test(id)) return answer(202, { ignored: true, reason: 'not a hoop approval check run' });
    if (!decision)
      return refused(
        400,
        'invalid request',
        `unknown requested action ${JSON.stringify(identifier ?? null)}`,
      );
    const approval = await this.#o.decider.get(id);
    if (!approval) return refused(404, 'not found', `no approval ${id}`);
    const mismatch = !sameRepo(p.repository?.full_name, approval.job.repository)
      ? `the check run is in ${String(p.repository?.full_name)}, the approval in ${approval.job.repository}`
      : p.check_run?.name !== checkRunName(id)
        ? `the check run is named ${JSON.stringify(p.check_run?.name ?? null)}, not ${JSON.stringify(checkRunName(id))}`
        : approval.github_check_run_id !== undefined && approval.github_check_run_id !== p.check_run?.id
          ? `check run ${String(p.check_run?.id)} is not approval ${id}'s (${approval.github_check_run_id})`
          : null;
    if (mismatch) return refused(422, 'unrelated check run', mismatch);
    return this.#decide(approval, decision, p.sender, 'github_check', undefined, delivery);
  }

  async #comment(p: IssueCommentPayload, delivery: string): Promise<WebhookAnswer> {
    if (p.action !== 'created')
      return answer(202, { ignored: true, reason: `issue_comment ${String(p.action)}` });
    const command = parseCommand(p.comment?.body ?? '');
    if (!command) return answer(202, { ignored: true, reason: 'no /hoop command' });
    if (p.sender?.type === 'Bot')
      return answer(202, { ignored: true, reason: 'comments by bots decide nothing' });
    if (!APPROVAL_ID.test(command.id))
      return refused(400, 'invalid request', `"${command.id.slice(0, 80)}" is not an approval id`);
    const approval = await this.#o.decider.get(command.id);
    if (!approval) return refused(404, 'not found', `no approval ${command.id}`);
    const mismatch = !sameRepo(p.repository?.full_name, approval.job.repository)
      ? `the comment is in ${String(p.repository?.full_name)}, the approval in ${approval.job.repository}`
      : p.issue?.pull_request === undefined
        ? `#${String(p.issue?.number)} is an issue, not a pull request`
        : approval.job.pull_request === undefined || p.issue.number !== approval.job.pull_request
          ? `approval ${command.id} is not for pull request #${String(p.issue.number)}`
          : null;
    if (mismatch) return refused(422, 'unrelated comment', mismatch);
    return this.#decide(approval, command.decision, p.sender, 'github_comment', command.reason, delivery);
  }

  async #decide(
    approval: PendingApproval,
    decision: 'approve' | 'deny',
    sender: Sender | undefined,
    channel: ApprovalChannelName,
    reason: string | undefined,
    delivery: string,
  ): Promise<WebhookAnswer> {
    const login = sender?.login;
    if (!login) return refused(400, 'invalid request', 'the delivery names no sender');
    if (approval.state !== 'pending')
      return refused(409, 'not pending', `approval ${approval.id} is ${approval.state}`);
    const check = await checkApprover(this.#o.client, approval, login);
    const log = { delivery, approval: approval.id, by: login, channel, decision };
    if (!check.ok) {
      this.#o.logger.warn({ ...log, refused: check.code }, `GitHub ${decision} refused: ${check.message}`);
      return refused(403, check.code, check.message);
    }
    const result = await this.#o.decider.decide({
      id: approval.id,
      decision,
      by: login,
      channel,
      verified_approver: true,
      ...(reason ? { reason } : {}),
    });
    if (!result.ok) {
      this.#o.logger.warn({ ...log, refused: result.code }, `GitHub ${decision} refused: ${result.message}`);
      const status =
        result.code === 'not_found'
          ? 404
          : result.code === 'not_pending' || result.code === 'duplicate'
            ? 409
            : 403;
      return refused(status, result.code, result.message);
    }
    this.#o.logger.info({ ...log, via: check.via, state: result.approval.state }, 'GitHub decision taken');
    return answer(200, {
      approval: approval.id,
      decision,
      by: login,
      via: check.via,
      state: result.approval.state,
    });
  }
}
