// Held operations in the job summary and the check run: what was held, who may approve, how it
// ended (who, which channel, how long it waited), from the broker's own approval.* events.
import { describe, expect, it } from 'vitest';
import { approvalEvent } from '../../../service/approvals/rules.js';
import type { PendingApproval } from '../../../service/approvals/types.js';
import type { NewEvent } from '../../../service/audit/event.js';
import { checkRunRequest } from '../../../src/report/check-run.js';
import { renderJobSummary, transcriptStats } from '../../../src/report/summary.js';
import { chain, reportInput, transcriptOf } from './transcripts.js';

const held = (id: string, summary: string): PendingApproval => ({
  id,
  session_id: 'ses_x',
  target: 'orders-db',
  conn_id: 'pgc_1',
  operation_kind: 'pg.statement',
  summary,
  operation_sha256: 'ef'.repeat(32),
  rule: 'approve[0].statement: DROP',
  reasons: ['DROP TABLE needs approval'],
  policy: 'migrations',
  approvers: { users: ['alice', 'bob'], teams: ['acme/dba'], min: 2 },
  job: { repository: 'acme/app', actor: 'octocat' },
  state: 'pending',
  votes: [],
  requested_at: '2025-06-01T12:00:00.000Z',
  expires_at: '2025-06-01T12:10:00.000Z',
});

function events(): NewEvent[] {
  const a = held('apr_granted1', 'DROP TABLE legacy_orders');
  const d = held('apr_denied01', 'DROP TABLE customers');
  const at = new Date('2025-06-01T12:00:42.000Z');
  return [
    approvalEvent(a, 'approval.requested', at),
    approvalEvent(
      {
        ...a,
        state: 'approved',
        votes: [
          { by: 'alice', decision: 'approve', channel: 'api', at: '2025-06-01T12:00:30.000Z' },
          { by: 'bob', decision: 'approve', channel: 'cli', at: '2025-06-01T12:00:42.000Z' },
        ],
      },
      'approval.granted',
      at,
    ),
    {
      target: 'orders-db',
      kind: 'pg.statement',
      operation: {
        conn_id: 'pgc_1',
        protocol: 'simple',
        statement: 'DROP TABLE legacy_orders',
        statement_kind: 'DROP TABLE',
      },
      decision: 'allow',
      reasons: ['approval apr_granted1 granted by alice, bob (cli)'],
    },
    approvalEvent(d, 'approval.requested', at),
    approvalEvent(
      {
        ...d,
        state: 'denied',
        votes: [
          {
            by: 'carol',
            decision: 'deny',
            channel: 'api',
            at: '2025-06-01T12:00:42.000Z',
            reason: 'not this one',
          },
        ],
      },
      'approval.denied',
      at,
    ),
    {
      target: 'orders-db',
      kind: 'pg.denied',
      operation: {
        conn_id: 'pgc_1',
        protocol: 'simple',
        rule: 'approve[0].statement: DROP',
        statement: 'DROP TABLE customers',
        statement_kind: 'DROP TABLE',
      },
      decision: 'deny',
      reasons: ['approval apr_denied01 denied by carol: not this one'],
    },
  ];
}

describe('held operations in the report', () => {
  it('the job summary lists each hold with its approvers, outcome, decider, channel and wait', () => {
    const md = renderJobSummary(reportInput(transcriptOf(chain(events()))));
    expect(md).toContain('### Held for approval (2)');
    const rows = md.split('\n').filter((l) => l.startsWith('|') && /granted1|denied01/.test(l));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('DROP TABLE legacy&#95;orders');
    expect(rows[0]).toContain('2 of alice, bob, acme/dba');
    expect(rows[0]).toContain('✅ approved');
    expect(rows[0]).toContain('alice, bob');
    expect(rows[0]).toContain('| cli |');
    expect(rows[0]).toContain('42.0 s');
    expect(rows[1]).toContain('⛔ denied');
    expect(rows[1]).toContain('carol');
    expect(rows[1]).toContain('not this one');
  });

  it('counts a hold once, and shows the holds in the check run too', () => {
    const t = transcriptOf(chain(events()));
    const s = transcriptStats(t.events);
    expect(s).toMatchObject({ held: 2, denied: 1, allowed: 1 });
    const req = checkRunRequest(reportInput(t), {
      failOnDenied: false,
      now: new Date('2025-06-01T12:05:00Z'),
    });
    expect(req.output.summary).toContain('### Held for approval (2)');
    expect(req.output.summary).toContain('granted1');
  });
});
