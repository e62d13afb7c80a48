// Notification channels for holds (approvals.notify): a Slack-compatible incoming webhook, and a
// generic JSON webhook signed with HMAC-SHA256 over "<unix seconds>.<body>" (header
// X-Hoop-Signature: t=<unix seconds>,v1=<hex>; a receiver refuses old timestamps, so a captured
// delivery cannot be replayed later). Each names the held operation (its redacted summary), the job
// and where to decide. Deliveries are retried with backoff, a bounded number of times; a failure is
// logged and never holds anything up (ApprovalChannel: failures are not fatal).
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';
import { describeApprovers } from './rules.js';
import type { ApprovalChannel, PendingApproval } from './types.js';

export interface DeliveryOptions {
  /** attempts in all (default 4) */
  attempts?: number;
  /** first retry after this, doubling (default 500 ms) */
  backoffMs?: number;
  /** each attempt's limit (default 5 s) */
  timeoutMs?: number;
}

/** POST a JSON body; retried on network errors, 429 and 5xx. True when a 2xx came back. */
export async function deliver(
  url: string,
  body: string,
  headers: () => Record<string, string>,
  o: DeliveryOptions = {},
): Promise<{ ok: boolean; attempts: number; status?: number }> {
  const attempts = o.attempts ?? 4;
  let wait = o.backoffMs ?? 500;
  let status: number | undefined;
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers() },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
        redirect: 'error',
      });
      status = res.status;
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return { ok: true, attempts: i, status };
      if (res.status !== 429 && res.status < 500) return { ok: false, attempts: i, status };
    } catch {
      /* network error or timeout: retried */
    }
    if (i < attempts) {
      await new Promise((r) => setTimeout(r, wait).unref());
      wait *= 2;
    }
  }
  return { ok: false, attempts, ...(status !== undefined ? { status } : {}) };
}

/** https, or plain http to a loopback address only (a test receiver, a local relay). */
export function deliverableUrl(url: string): boolean {
  try {
    const u = new URL(url);
    if (u.protocol === 'https:') return true;
    return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

/** The signature header value for a body at a time. */
export function signBody(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

const jobLine = (a: PendingApproval): string => {
  const j = a.job;
  const parts = [j.repository];
  if (j.workflow) parts.push(`workflow ${j.workflow}`);
  if (j.run_id) parts.push(`run ${j.run_id}${j.run_attempt ? `.${j.run_attempt}` : ''}`);
  if (j.pull_request !== undefined) parts.push(`PR #${j.pull_request}`);
  if (j.actor) parts.push(`by ${j.actor}`);
  return parts.join(', ');
};

const short = (text: string, max = 400): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** The message text both channels show. */
export function approvalText(a: PendingApproval, links: { api: string; cli?: string }): string {
  return [
    `Held for approval ${a.id} (${a.rule}) on ${a.target}: ${short(a.summary)}`,
    `Job: ${jobLine(a)}`,
    `Approvers: ${describeApprovers(a)}; until ${a.expires_at} (a timeout denies)`,
    `Decide: ${links.cli ?? `hoop-broker approvals approve ${a.id}`}  or  POST ${links.api} {"decision":"approve"|"deny"}`,
  ].join('\n');
}

export function slackChannel(url: string, logger: Logger, o: DeliveryOptions = {}): ApprovalChannel {
  const send = async (text: string, id: string) => {
    const r = await deliver(url, JSON.stringify({ text }), () => ({}), o);
    // the URL is the credential: never logged
    if (!r.ok)
      logger.warn({ approval_id: id, attempts: r.attempts, status: r.status }, 'slack notification failed');
  };
  return {
    name: 'slack',
    requested: (a, links) => send(approvalText(a, links), a.id),
    ended: (a) => send(`Approval ${a.id} on ${a.target}: ${a.state}${endedBy(a)}`, a.id),
  };
}

export function webhookChannel(
  url: string,
  secret: string,
  logger: Logger,
  o: DeliveryOptions = {},
): ApprovalChannel {
  const send = async (type: string, a: PendingApproval, links?: { api: string }) => {
    const body = JSON.stringify({
      type,
      approval: { ...a, summary: short(a.summary, 2000) },
      ...(links ? { links: { ...links, cli: `hoop-broker approvals approve ${a.id}` } } : {}),
      text: links ? approvalText(a, links) : `Approval ${a.id}: ${a.state}${endedBy(a)}`,
    });
    const r = await deliver(
      url,
      body,
      () => ({
        'x-hoop-signature': signBody(secret, body, Math.floor(Date.now() / 1000)),
        'x-hoop-event': type,
      }),
      o,
    );
    if (!r.ok)
      logger.warn({ approval_id: a.id, attempts: r.attempts, status: r.status }, 'approval webhook failed');
  };
  return {
    name: 'webhook',
    requested: (a, links) => send('approval.requested', a, links),
    ended: (a) => send('approval.ended', a),
  };
}

function endedBy(a: PendingApproval): string {
  const last = a.votes.at(-1);
  return last && a.state !== 'expired' && a.state !== 'abandoned'
    ? ` by ${last.by}${last.reason ? `: ${last.reason}` : ''}`
    : '';
}

/** The configured channels, secrets resolved (by their config paths). */
export function notificationChannels(
  config: Pick<ResolvedConfig, 'approvals'>,
  secrets: ReadonlyMap<string, string>,
  logger: Logger,
): ApprovalChannel[] {
  const out: ApprovalChannel[] = [];
  (config.approvals?.notify ?? []).forEach((n, i) => {
    if (n.kind === 'slack') {
      const url = secrets.get(`approvals.notify[${i}].url`);
      if (url && deliverableUrl(url)) out.push(slackChannel(url, logger));
      else
        logger.error(
          { index: i },
          'approvals.notify: the slack URL is not https (or loopback http): not used',
        );
    } else {
      const secret = secrets.get(`approvals.notify[${i}].secret`);
      if (secret && deliverableUrl(n.url)) out.push(webhookChannel(n.url, secret, logger));
      else
        logger.error(
          { index: i, url: n.url },
          'approvals.notify: the webhook URL is not https (or loopback http): not used',
        );
    }
  });
  return out;
}
