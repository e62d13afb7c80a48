// Transcript -> a completed check run on the commit the job ran for (the PR head for PR events).
// GitHub caps output.summary and output.text at 65,535 characters each; both are cut to fit.
import type { ReportInput, SummaryLimits } from './summary.js';
import { fitToBudget, joinParts, renderParts, transcriptStats } from './summary.js';

export type CheckConclusion = 'success' | 'neutral' | 'failure';

/** GitHub's documented maximum for output.summary and output.text, minus a margin. */
export const CHECK_RUN_OUTPUT_MAX = 65_000;

export const CHECK_RUN_LIMITS: SummaryLimits = {
  max: CHECK_RUN_OUTPUT_MAX,
  // GitHub counts characters; UTF-16 units are never fewer than code points, so this errs safe.
  measure: (text) => text.length,
  headRows: 60,
  tailRows: 60,
  highlights: 50,
  statementChars: 160,
};

// A type alias, not an interface: Octokit's parameter type needs the implicit index signature.
export type CheckRunRequest = {
  owner: string;
  repo: string;
  name: string;
  head_sha: string;
  status: 'completed';
  conclusion: CheckConclusion;
  started_at?: string;
  completed_at: string;
  details_url?: string;
  external_id: string;
  output: { title: string; summary: string; text: string };
};

/**
 * success: nothing denied; neutral: something was denied (the job may still have passed), or the
 * transcript could not be read; failure: something was denied and the workflow asked to fail on it.
 */
export function checkRunConclusion(denied: number | null, failOnDenied: boolean): CheckConclusion {
  if (denied === null) return 'neutral';
  if (denied > 0) return failOnDenied ? 'failure' : 'neutral';
  return 'success';
}

function githubTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function checkRunTitle(input: ReportInput): string {
  if (!input.transcript) return 'Transcript unavailable';
  const s = transcriptStats(input.transcript.events);
  const held = s.held ? `, ${s.held.toLocaleString('en-US')} held` : '';
  if (s.denied)
    return `${s.denied.toLocaleString('en-US')} denied of ${s.events.toLocaleString('en-US')} events${held}`;
  return `${s.events.toLocaleString('en-US')} events, none denied${held}`;
}

export function checkRunRequest(
  input: ReportInput,
  opts: { failOnDenied: boolean; now: Date },
): CheckRunRequest {
  const events = input.transcript?.events ?? [];
  const denied = input.transcript ? transcriptStats(events).denied : null;
  const budget = 'the check run’s 65,535-character limit';
  const summary = fitToBudget(CHECK_RUN_LIMITS, (l) => {
    const p = renderParts(input, l, budget);
    return joinParts([p.header, p.problem, p.approvals, p.highlights, p.evidence]);
  });
  const text = input.transcript
    ? fitToBudget(CHECK_RUN_LIMITS, (l) => {
        const p = renderParts(input, l, budget);
        return joinParts([p.note, p.table]);
      })
    : '_No transcript._\n';
  const firstAt = events[0] ? new Date(events[0].at) : null;
  const { run } = input;
  return {
    owner: run.owner,
    repo: run.repo,
    name: run.job ? `hoop session (${run.job})` : 'hoop session',
    head_sha: run.headSha,
    status: 'completed',
    conclusion: checkRunConclusion(denied, opts.failOnDenied),
    ...(firstAt && !Number.isNaN(firstAt.getTime()) && firstAt <= opts.now
      ? { started_at: githubTime(firstAt) }
      : {}),
    completed_at: githubTime(opts.now),
    ...(/^https:\/\/[^\s]+$/.test(run.runUrl) ? { details_url: run.runUrl } : {}),
    external_id: input.session.id,
    output: { title: checkRunTitle(input), summary, text },
  };
}

/** The part of Octokit this module uses (getOctokit(...) satisfies it). */
export interface ChecksApi {
  rest: {
    checks: {
      create(
        params: CheckRunRequest & { request?: { signal?: AbortSignal } },
      ): Promise<{ data: { id: number; html_url: string | null } }>;
    };
  };
}

export type CheckRunOutcome = { ok: true; id: number; url: string | null } | { ok: false; message: string };

export async function createCheckRun(
  api: ChecksApi,
  req: CheckRunRequest,
  timeoutMs = 30_000,
): Promise<CheckRunOutcome> {
  try {
    const { data } = await api.rest.checks.create({
      ...req,
      request: { signal: AbortSignal.timeout(timeoutMs) },
    });
    return { ok: true, id: data.id, url: data.html_url };
  } catch (e) {
    const status =
      typeof (e as { status?: unknown }).status === 'number' ? (e as { status: number }).status : 0;
    const hint =
      status === 403
        ? ' — give the job `permissions: checks: write` (pull requests from forks only get a read-only token; set check-run: false there)'
        : status === 404
          ? ' — the token cannot see this repository'
          : '';
    const message = ((e as Error).message ?? String(e)).split('\n')[0]!.slice(0, 300);
    return { ok: false, message: `${status ? `HTTP ${status}: ` : ''}${message}${hint}` };
  }
}
