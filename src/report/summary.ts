// Transcript -> Markdown: the job summary, and the parts the check run reuses. Pure: data in, text out.
// Every value that came from the transcript or the token is escaped (report/markdown.ts). Large
// transcripts are cut to a byte budget, keeping the first and last events and the denied/held ones,
// and the report says exactly what was cut.
import type { Transcript } from '../../service/api/schemas.js';
import type { RunContext } from '../github-context.js';
import { cell, code, formatCount, formatDuration, isoTime, plural, table } from './markdown.js';

export type TranscriptEvent = Transcript['events'][number];

export interface SessionFacts {
  id: string;
  expiresAt: string;
  policy: string;
  identity: Record<string, unknown>;
  targets: ReadonlyArray<{ name: string; kind: string; access: string }>;
}

export type RevokeReport =
  { ok: true; state: string; attempts: number } | { ok: false; message: string; attempts: number };

export interface ReportInput {
  session: SessionFacts;
  transcript: Transcript | null;
  /** why the transcript is missing (null when it was fetched) */
  transcriptProblem: string | null;
  revoke: RevokeReport | null;
  run: RunContext;
}

export interface TranscriptStats {
  events: number;
  allowed: number;
  denied: number;
  held: number;
  info: number;
  rows: number;
  masked: number;
}

export function transcriptStats(events: readonly TranscriptEvent[]): TranscriptStats {
  const s: TranscriptStats = {
    events: events.length,
    allowed: 0,
    denied: 0,
    held: 0,
    info: 0,
    rows: 0,
    masked: 0,
  };
  for (const e of events) {
    // a hold's steps: held once (requested); how it ended is told by the operation's own event
    if (e.kind.startsWith('approval.')) {
      if (e.kind === 'approval.requested') s.held++;
      else s.info++;
      continue;
    }
    if (e.decision === 'allow') s.allowed++;
    else if (e.decision === 'deny') s.denied++;
    else if (e.decision === 'hold') s.held++;
    else s.info++;
    if (typeof e.rows === 'number' && Number.isFinite(e.rows)) s.rows += e.rows;
    if (typeof e.masked === 'number' && Number.isFinite(e.masked)) s.masked += e.masked;
  }
  return s;
}

export interface SummaryLimits {
  /** UTF-8 bytes (job summary) or UTF-16 units (check run), whichever `measure` counts */
  max: number;
  measure: (text: string) => number;
  /** events always shown from the start and the end of the transcript */
  headRows: number;
  tailRows: number;
  /** denied/held events shown (in the table and the highlights list) */
  highlights: number;
  /** statement characters per table cell */
  statementChars: number;
}

export const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/** GitHub refuses a step summary over 1 MiB; keep a margin for other writers of the same step. */
export const JOB_SUMMARY_LIMITS: SummaryLimits = {
  max: 1_000_000,
  measure: utf8Bytes,
  headRows: 250,
  tailRows: 250,
  highlights: 500,
  statementChars: 200,
};

/** The operation's text as a reader knows it: SQL, a request line, a command. */
export function operationText(e: TranscriptEvent): string {
  const op = e.operation;
  for (const key of ['statement', 'sql', 'query', 'command', 'text', 'summary']) {
    const v = op[key];
    if (typeof v === 'string' && v !== '') return v;
  }
  if (typeof op.method === 'string' && typeof op.path === 'string') return `${op.method} ${op.path}`;
  if (e.kind.startsWith('session.') || Object.keys(op).length === 0) return e.reasons.join('; ');
  // Connection and other events: their scalar facts as key=value, which reads better than JSON.
  const facts = Object.entries(op)
    .filter(([, v]) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
    .map(([k, v]) => `${k}=${String(v)}`);
  return facts.length ? facts.join(' ') : JSON.stringify(op);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
}

function time(at: string): string {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? cell(at, 30) : d.toISOString().slice(11, 23);
}

const DECISION_LABEL: Record<string, string> = {
  allow: 'allow',
  info: 'info',
  deny: '**⛔ denied**',
  hold: '**⏳ held**',
};

const decisionLabel = (d: string): string => DECISION_LABEL[d] ?? cell(d, 20);
const isHighlight = (e: TranscriptEvent): boolean => e.decision === 'deny' || e.decision === 'hold';
const num = (n: number | undefined): string =>
  typeof n === 'number' && Number.isFinite(n) ? formatCount(n) : '';

function safeLink(url: string): string | null {
  return /^https?:\/\/[A-Za-z0-9._~:/@%-]+$/.test(url) ? url : null;
}

export function statsLine(s: TranscriptStats): string {
  const parts = [
    plural(s.events, 'event'),
    `${formatCount(s.allowed)} allowed`,
    s.denied ? `**${formatCount(s.denied)} denied**` : '0 denied',
    s.held ? `**${formatCount(s.held)} held**` : '0 held',
    plural(s.rows, 'row'),
    plural(s.masked, 'masked cell'),
  ];
  return parts.join(' · ');
}

function headerSection(input: ReportInput, stats: TranscriptStats | null): string {
  const { session, run, transcript } = input;
  const id = session.identity;
  const pick = (key: string, fallback: string): string => str(id[key]) || fallback;
  const runId = pick('run_id', run.runId);
  const attempt = pick('run_attempt', run.runAttempt);
  const runLink = safeLink(run.runUrl);
  const runText = runId ? `${cell(runId, 40)} (attempt ${cell(attempt, 10)})` : '—';
  const environment = pick('environment', '');
  const rows: string[][] = [
    ['Repository', cell(pick('repository', run.repository)) || '—'],
    ['Workflow', cell(pick('workflow', run.workflow)) || '—'],
    ['Run', runLink && runId === run.runId ? `[${runText}](${runLink})` : runText],
    ['Actor', cell(pick('actor', run.actor)) || '—'],
    ['Event', cell(pick('event_name', run.eventName)) || '—'],
    ['Ref', code(pick('ref', run.ref)) || '—'],
    ['Commit', code(pick('sha', run.sha)) || '—'],
    ['Environment', environment ? cell(environment) : '—'],
    ['Policy', session.policy ? code(session.policy) : '—'],
    ['Expires', isoTime(session.expiresAt)],
    ['State', transcript ? cell(transcript.state, 20) : 'unknown (no transcript)'],
  ];
  const status = stats ? statsLine(stats) : '**Transcript unavailable**';
  const targets =
    session.targets.length === 0
      ? '_No targets were granted._'
      : table(
          ['Target', 'Kind', 'Access'],
          session.targets.map((t) => [code(t.name, 100), cell(t.kind, 40), cell(t.access, 20)]),
        );
  return [
    `## hoop session ${code(session.id, 100)}`,
    status,
    table(['Job', ''], rows),
    '### Targets',
    targets,
  ].join('\n\n');
}

function problemSection(input: ReportInput): string | null {
  if (!input.transcriptProblem) return null;
  return [
    '> [!WARNING]',
    `> The transcript could not be fetched: ${cell(input.transcriptProblem, 500)}.`,
    '> Everything the session did is still recorded on the broker; an administrator can read it there (`hoop-broker audit`).',
  ].join('\n');
}

function highlightsSection(
  events: readonly TranscriptEvent[],
  limit: number,
  statementChars: number,
): string | null {
  const all = events.filter(isHighlight);
  if (all.length === 0) return null;
  const shown = all.slice(0, limit).map((e) => {
    const reasons = e.reasons.length ? ` — ${e.reasons.map((r) => cell(r, 300)).join('; ')}` : '';
    const target = e.target ? ` · ${code(e.target, 100)}` : '';
    return `- ${decisionLabel(e.decision)} #${e.seq}${target} · ${cell(e.kind, 60)} · ${code(operationText(e), statementChars) || '—'}${reasons}`;
  });
  const more =
    all.length > limit
      ? [`- … and ${plural(all.length - limit, 'more denied/held event')} (not listed)`]
      : [];
  return [`### Denied and held (${formatCount(all.length)})`, [...shown, ...more].join('\n')].join('\n\n');
}

const APPROVAL_OUTCOME: Record<string, string> = {
  'approval.granted': '✅ approved',
  'approval.denied': '⛔ denied',
  'approval.expired': '⌛ timed out (denied)',
  'approval.abandoned': 'abandoned',
};

/** Held operations: what, who may approve, who decided through which channel, how long it waited. */
function approvalsSection(
  events: readonly TranscriptEvent[],
  limit: number,
  statementChars: number,
): string | null {
  const requested = events.filter((e) => e.kind === 'approval.requested');
  if (requested.length === 0) return null;
  const ended = new Map<string, TranscriptEvent>();
  for (const e of events)
    if (e.kind.startsWith('approval.') && e.kind !== 'approval.requested')
      ended.set(str(e.operation.approval_id), e);
  const rows = requested.slice(0, limit).map((e) => {
    const op = e.operation;
    const id = str(op.approval_id);
    const end = ended.get(id);
    const approvers = op.approvers as { users?: unknown[]; teams?: unknown[]; min?: unknown } | undefined;
    const who = [...(approvers?.users ?? []), ...(approvers?.teams ?? [])].map((x) => str(x)).filter(Boolean);
    const min = typeof approvers?.min === 'number' && approvers.min > 1 ? `${approvers.min} of ` : '';
    const waited = end && typeof end.operation.waited_ms === 'number' ? end.operation.waited_ms : undefined;
    return [
      code(id, 40),
      e.target ? code(e.target, 60) : '',
      code(str(op.summary), statementChars),
      cell(`${min}${who.join(', ') || 'approver tokens, admins'}`, 200),
      end ? cell(APPROVAL_OUTCOME[end.kind] ?? end.kind, 40) : '⏳ pending',
      end ? cell(str(end.operation.by), 100) : '',
      end ? cell(str(end.operation.channel), 20) : '',
      formatDuration(waited),
      end && str(end.operation.reason) ? cell(str(end.operation.reason), 200) : '',
    ];
  });
  const more =
    requested.length > limit
      ? `

_… and ${plural(requested.length - limit, 'more held operation')}_`
      : '';
  return [
    `### Held for approval (${formatCount(requested.length)})`,
    table(
      ['Approval', 'Target', 'Operation', 'Approvers', 'Outcome', 'By', 'Channel', 'Waited', 'Reason'],
      rows,
    ) + more,
  ].join('\n\n');
}

interface Selection {
  /** event indices to show, ascending */
  indices: number[];
  highlightsShown: number;
  highlightsTotal: number;
}

function selectEvents(events: readonly TranscriptEvent[], limits: SummaryLimits): Selection {
  const n = events.length;
  const keep = new Set<number>();
  for (let i = 0; i < Math.min(limits.headRows, n); i++) keep.add(i);
  for (let i = Math.max(0, n - limits.tailRows); i < n; i++) keep.add(i);
  let highlightsTotal = 0;
  let highlightsShown = 0;
  for (let i = 0; i < n; i++) {
    if (!isHighlight(events[i]!)) continue;
    highlightsTotal++;
    if (keep.has(i) || highlightsShown < limits.highlights) {
      if (!keep.has(i)) keep.add(i);
      highlightsShown++;
    }
  }
  return { indices: [...keep].sort((a, b) => a - b), highlightsShown, highlightsTotal };
}

function eventRow(e: TranscriptEvent, statementChars: number): string[] {
  return [
    String(e.seq),
    time(e.at),
    e.target ? code(e.target, 60) : '',
    cell(e.kind, 60),
    decisionLabel(e.decision),
    code(operationText(e), statementChars),
    num(e.rows),
    formatDuration(e.duration_ms),
    num(e.masked),
  ];
}

function gapRow(events: readonly TranscriptEvent[], from: number, to: number): string[] {
  const count = to - from + 1;
  return [
    '…',
    '',
    '',
    '',
    '',
    `_${plural(count, 'event')} omitted (#${events[from]!.seq}–#${events[to]!.seq})_`,
    '',
    '',
    '',
  ];
}

interface TablePart {
  text: string;
  selection: Selection;
}

function tableSection(events: readonly TranscriptEvent[], limits: SummaryLimits): TablePart {
  const selection = selectEvents(events, limits);
  if (events.length === 0) return { text: '### Transcript\n\n_No events._', selection };
  const rows: string[][] = [];
  let prev = -1;
  for (const i of selection.indices) {
    if (i > prev + 1) rows.push(gapRow(events, prev + 1, i - 1));
    rows.push(eventRow(events[i]!, limits.statementChars));
    prev = i;
  }
  if (prev < events.length - 1) rows.push(gapRow(events, prev + 1, events.length - 1));
  const header = ['#', 'Time (UTC)', 'Target', 'Kind', 'Decision', 'Operation', 'Rows', 'Duration', 'Masked'];
  return { text: `### Transcript\n\n${table(header, rows)}`, selection };
}

function cutNote(
  events: readonly TranscriptEvent[],
  sel: Selection,
  limits: SummaryLimits,
  reason: string,
): string | null {
  const omitted = events.length - sel.indices.length;
  const highlightsCut = sel.highlightsTotal - sel.highlightsShown;
  if (omitted === 0 && highlightsCut === 0) return null;
  const kept = [
    `the first ${plural(Math.min(limits.headRows, events.length), 'event')}`,
    `the last ${formatCount(Math.min(limits.tailRows, events.length))}`,
    `${formatCount(sel.highlightsShown)} of ${formatCount(sel.highlightsTotal)} denied/held`,
  ];
  return [
    '> [!NOTE]',
    `> Summarised to fit ${reason}: showing ${formatCount(sel.indices.length)} of ${plural(events.length, 'event')} (${kept.join(', ')}); ${plural(omitted, 'event')} omitted${highlightsCut ? `, including ${plural(highlightsCut, 'denied/held event')}` : ''}.`,
    '> The final hash below covers every event, shown or not.',
  ].join('\n');
}

function evidenceSection(input: ReportInput): string {
  const lines: string[] = ['### Evidence'];
  const t = input.transcript;
  if (t) {
    const hash = /^[0-9a-f]{64}$/.test(t.head_hash)
      ? `<code>${t.head_hash}</code>`
      : code(t.head_hash || '(empty)', 100);
    lines.push(
      `Final transcript hash: ${hash}`,
      t.chain_verified
        ? 'Hash chain: verified by the broker when this report was fetched. Compare the hash with the broker’s copy to check nothing was changed since.'
        : '> [!CAUTION]\n> The broker could **not** verify this transcript’s hash chain: the record may have been altered.',
    );
  } else {
    lines.push('No transcript, so no hash to check.');
  }
  const r = input.revoke;
  if (r?.ok) {
    const how =
      r.state === 'gone'
        ? 'already gone from the broker'
        : r.state === 'expired'
          ? 'had already expired'
          : 'revoked';
    lines.push(
      `Session: ${how} at the end of the job${r.attempts > 1 ? ` (after ${plural(r.attempts, 'attempt')})` : ''}.`,
    );
  } else if (r) {
    lines.push(
      `> [!WARNING]\n> The session could not be revoked after ${plural(r.attempts, 'attempt')}: ${cell(r.message, 300)}. It stays usable until it expires at ${isoTime(input.session.expiresAt)}.`,
    );
  }
  return lines.join('\n\n');
}

export interface ReportParts {
  header: string;
  problem: string | null;
  highlights: string | null;
  approvals: string | null;
  table: string | null;
  note: string | null;
  evidence: string;
}

export function renderParts(input: ReportInput, limits: SummaryLimits, budgetName: string): ReportParts {
  const events = input.transcript?.events ?? [];
  const stats = input.transcript ? transcriptStats(events) : null;
  const tablePart = input.transcript ? tableSection(events, limits) : null;
  return {
    header: headerSection(input, stats),
    problem: problemSection(input),
    highlights: highlightsSection(events, limits.highlights, limits.statementChars),
    approvals: approvalsSection(events, limits.highlights, limits.statementChars),
    table: tablePart?.text ?? null,
    note: tablePart ? cutNote(events, tablePart.selection, limits, budgetName) : null,
    evidence: evidenceSection(input),
  };
}

export function joinParts(parts: ReadonlyArray<string | null>): string {
  return `${parts.filter((p): p is string => p !== null && p !== '').join('\n\n')}\n`;
}

/** Halve what is shown until `render` fits the budget; the smallest form (no rows) always fits. */
export function fitToBudget(limits: SummaryLimits, render: (l: SummaryLimits) => string): string {
  let l = limits;
  for (;;) {
    const text = render(l);
    if (l.measure(text) <= l.max) return text;
    if (l.headRows === 0 && l.tailRows === 0 && l.highlights === 0 && l.statementChars <= 40) {
      // Only the fixed header remains; cut it hard rather than exceed GitHub's limit.
      return `${text.slice(0, Math.floor(l.max / 4))}\n\n_(report truncated)_\n`;
    }
    l = {
      ...l,
      headRows: Math.floor(l.headRows / 2),
      tailRows: Math.floor(l.tailRows / 2),
      highlights: Math.floor(l.highlights / 2),
      statementChars: Math.max(40, Math.floor(l.statementChars * 0.75)),
    };
  }
}

/** The whole job summary, within GitHub's 1 MiB step-summary limit. */
export function renderJobSummary(input: ReportInput, limits: SummaryLimits = JOB_SUMMARY_LIMITS): string {
  return fitToBudget(limits, (l) => {
    const p = renderParts(input, l, "GitHub's 1 MiB job-summary limit");
    return joinParts([p.header, p.problem, p.approvals, p.highlights, p.note, p.table, p.evidence]);
  });
}
