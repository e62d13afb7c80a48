// hoop-broker approvals list | show | approve | deny: the API's approvals routes from a terminal.
// The token is an approver token (approvals.approver_tokens) or an admin token: --token-file FILE,
// else HOOP_APPROVER_TOKEN, else HOOP_ADMIN_TOKEN.
import { readFile } from 'node:fs/promises';
import type { ApprovalView } from '../api/schemas.js';

export const APPROVALS_HELP = `hoop-broker approvals list [--state pending|approved|denied|expired|abandoned] [--session ID] [--json] --url URL
hoop-broker approvals show ID [--json] --url URL
hoop-broker approvals approve ID [--reason TEXT] [--sha256 HEX] --url URL
hoop-broker approvals deny ID [--reason TEXT] --url URL

Operations held for a human's approval (a grant's approve: rules). list shows them (newest first),
show one in full (the statement, the job, the approvers, the votes); approve or deny decides one. An
approval releases exactly the operation it holds, once; one denial denies; a hold that needs several
approvers waits for each of them. Nobody decides a hold of their own job.

Options:
  --url URL              the broker's API
  --state STATE          list: only approvals in this state
  --session ID           list: only this session's approvals
  --reason TEXT          why (shown to the client and recorded in the transcript)
  --sha256 HEX           approve: only if the hold is of this exact operation (as list/show print it)
  --json                 the approvals as JSON
  --token-file FILE      the approver or admin token (default: HOOP_APPROVER_TOKEN, else HOOP_ADMIN_TOKEN)
  -h, --help             this text`;

type Out = { out: (s: string) => void; err: (s: string) => void };

export interface ApprovalsArgs {
  url?: string | undefined;
  state?: string | undefined;
  session?: string | undefined;
  reason?: string | undefined;
  sha256?: string | undefined;
  json?: boolean | undefined;
  'token-file'?: string | undefined;
}

async function call(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(new URL(path, url), {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      'user-agent': 'hoop-broker-cli',
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: res.status, body: text };
  }
}

function refused(o: Out, status: number, body: unknown): number {
  const b = body as { error?: string; reasons?: { message: string }[] };
  o.err(`HTTP ${status}: ${b?.error ?? String(body)}`);
  for (const r of b?.reasons ?? []) o.err(`  - ${r.message}`);
  return 1;
}

export function formatApproval(a: ApprovalView, full = false): string {
  const line = [a.id, a.state, a.target, a.rule, `until ${a.expires_at}`].join('  ');
  if (!full) return `${line}\n    ${a.summary.split('\n')[0]!.slice(0, 160)}`;
  const j = a.job;
  const lines = [
    line,
    `  statement: ${a.summary}`,
    `  sha256:    ${a.operation_sha256}`,
    `  session:   ${a.session_id} (${a.policy}), connection ${a.conn_id}`,
    `  job:       ${j.repository}${j.workflow ? `, ${j.workflow}` : ''}${j.run_id ? `, run ${j.run_id}` : ''}${j.pull_request !== undefined ? `, PR #${j.pull_request}` : ''}${j.actor ? `, by ${j.actor}` : ''}`,
    `  approvers: ${[...a.approvers.users, ...a.approvers.teams].join(', ') || 'approver tokens and admins'} (min ${a.approvers.min})`,
    `  why:       ${a.reasons.join('; ')}`,
  ];
  for (const v of a.votes)
    lines.push(
      `  vote:      ${v.decision} by ${v.by} (${v.channel}) at ${v.at}${v.reason ? `: ${v.reason}` : ''}`,
    );
  return lines.join('\n');
}

export async function approvalsCommand(
  positionals: string[],
  values: ApprovalsArgs,
  o: Out,
): Promise<number> {
  const [sub, id] = positionals;
  const known = sub === 'list' || sub === 'show' || sub === 'approve' || sub === 'deny';
  if (!values.url || !known || (sub !== 'list' && !id)) {
    o.err(`usage:\n${APPROVALS_HELP.split('\n\n')[0]}`);
    return 2;
  }
  const token = values['token-file']
    ? (await readFile(values['token-file'], 'utf8')).trim()
    : (process.env.HOOP_APPROVER_TOKEN ?? process.env.HOOP_ADMIN_TOKEN);
  if (!token) {
    o.err('set HOOP_APPROVER_TOKEN (or HOOP_ADMIN_TOKEN), or --token-file FILE');
    return 2;
  }
  if (sub === 'list') {
    const q = new URLSearchParams();
    if (values.state) q.set('state', values.state);
    if (values.session) q.set('session', values.session);
    const res = await call(values.url, 'GET', `/v1/approvals${q.size ? `?${q}` : ''}`, token);
    if (res.status !== 200) return refused(o, res.status, res.body);
    const list = (res.body as { approvals: ApprovalView[] }).approvals;
    if (values.json) o.out(JSON.stringify(list, null, 2));
    else if (list.length === 0) o.out('no approvals');
    else for (const a of list) o.out(formatApproval(a));
    return 0;
  }
  const path = `/v1/approvals/${encodeURIComponent(id!)}`;
  if (sub === 'show') {
    const res = await call(values.url, 'GET', path, token);
    if (res.status !== 200) return refused(o, res.status, res.body);
    o.out(values.json ? JSON.stringify(res.body, null, 2) : formatApproval(res.body as ApprovalView, true));
    return 0;
  }
  const res = await call(values.url, 'POST', path, token, {
    decision: sub === 'approve' ? 'approve' : 'deny',
    ...(values.reason ? { reason: values.reason } : {}),
    ...(values.sha256 ? { operation_sha256: values.sha256 } : {}),
  });
  if (res.status !== 200) return refused(o, res.status, res.body);
  const a = res.body as ApprovalView;
  o.out(
    values.json
      ? JSON.stringify(a, null, 2)
      : `${a.id}: ${a.state}${a.state === 'pending' ? ` (${a.votes.filter((v) => v.decision === 'approve').length} of ${a.approvers.min} approvals)` : ''}`,
  );
  return 0;
}
