// Transcripts for report tests: hash-chained with the broker's own chainEvent, at fixed times.
import type { Transcript } from '../../../service/api/schemas.js';
import { chainEvent, type NewEvent, type TranscriptEvent } from '../../../service/audit/event.js';
import type { RunContext } from '../../../src/github-context.js';
import type { ReportInput } from '../../../src/report/summary.js';

export const SESSION_ID = 's_01J0TESTSESSION0000000000';

export function chain(events: NewEvent[], start = new Date('2025-06-01T12:00:00.000Z')): TranscriptEvent[] {
  const out: TranscriptEvent[] = [];
  for (const [i, ev] of events.entries())
    out.push(chainEvent(out.at(-1) ?? null, SESSION_ID, ev, new Date(start.getTime() + i * 1500)));
  return out;
}

export function transcriptOf(events: TranscriptEvent[], state: Transcript['state'] = 'revoked'): Transcript {
  return {
    session_id: SESSION_ID,
    state,
    events,
    head_hash: events.at(-1)?.hash ?? '',
    chain_verified: true,
  };
}

/** A pull request job that reads, is masked, gets two statements denied and one held. */
export function realisticEvents(): NewEvent[] {
  const pg = (statement: string, extra: Partial<NewEvent> = {}): NewEvent => ({
    target: 'orders-db',
    kind: 'pg.statement',
    operation: { statement, conn_id: 'c1' },
    decision: 'allow',
    reasons: [],
    ...extra,
  });
  return [
    {
      target: null,
      kind: 'session.opened',
      operation: { policy: 'pull-requests-read-only', expires_at: '2025-06-01T12:15:00.000Z' },
      decision: 'allow',
      reasons: ['policy pull-requests-read-only matched'],
    },
    {
      target: 'orders-db',
      kind: 'pg.connection.opened',
      operation: { conn_id: 'c1', application_name: 'psql' },
      decision: 'allow',
      reasons: [],
    },
    pg('SELECT id, email, total FROM customers JOIN orders USING (customer_id) WHERE total > 100', {
      rows: 42,
      duration_ms: 3.4,
      masked: 42,
    }),
    pg('select count(*) from orders', { rows: 1, duration_ms: 12.2, masked: 0 }),
    pg('DROP TABLE orders', {
      kind: 'pg.denied',
      decision: 'deny',
      reasons: ['access read: DROP changes the schema', 'deny.statement: DROP'],
      duration_ms: 0.2,
    }),
    pg(
      "SELECT * FROM customers WHERE note = '| <script>alert(1)</script> `rm -rf` @octocat #12 **bold** [x](https://evil.example)'",
      {
        rows: 0,
        duration_ms: 1.1,
        masked: 0,
      },
    ),
    pg('UPDATE orders SET total = 0 WHERE id = 7', {
      kind: 'pg.held',
      decision: 'hold',
      reasons: ['hold-for-approval: UPDATE on orders'],
      approval: { state: 'pending' },
    }),
    pg('TRUNCATE audit_log', {
      kind: 'pg.denied',
      decision: 'deny',
      reasons: ['access read: TRUNCATE writes'],
    }),
    pg('SELECT email FROM customers\nWHERE id = 1;\n-- trailing\tcomment', {
      rows: 1,
      duration_ms: 2500,
      masked: 1,
    }),
    {
      target: 'orders-db',
      kind: 'pg.connection.closed',
      operation: { conn_id: 'c1' },
      decision: 'info',
      reasons: [],
      bytes: 18_234,
      duration_ms: 65_000,
    },
    {
      target: null,
      kind: 'session.revoked',
      operation: { by: 'session', reason: 'revoked' },
      decision: 'info',
      reasons: ['revoked by session'],
    },
  ];
}

export function runContextFixture(): RunContext {
  return {
    repository: 'octo-org/octo-repo',
    owner: 'octo-org',
    repo: 'octo-repo',
    serverUrl: 'https://github.com',
    apiUrl: 'https://api.github.com',
    runId: '9876543210',
    runAttempt: '1',
    workflow: 'CI',
    job: 'db-check',
    actor: 'octocat',
    ref: 'refs/pull/7/merge',
    sha: 'f0e1d2c3b4a5968778695a4b3c2d1e0f12345678',
    eventName: 'pull_request',
    headSha: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
    runUrl: 'https://github.com/octo-org/octo-repo/actions/runs/9876543210/attempts/1',
  };
}

export function reportInput(
  transcript: Transcript | null,
  overrides: Partial<ReportInput> = {},
): ReportInput {
  return {
    session: {
      id: SESSION_ID,
      expiresAt: '2025-06-01T12:15:00.000Z',
      policy: 'pull-requests-read-only',
      identity: {
        repository: 'octo-org/octo-repo',
        repository_id: '123456',
        ref: 'refs/pull/7/merge',
        sha: 'f0e1d2c3b4a5968778695a4b3c2d1e0f12345678',
        run_id: '9876543210',
        run_attempt: '1',
        actor: 'octocat',
        workflow: 'CI',
        event_name: 'pull_request',
      },
      targets: [{ name: 'orders-db', kind: 'postgres', access: 'read' }],
    },
    transcript,
    transcriptProblem: null,
    revoke: { ok: true, state: 'revoked', attempts: 1 },
    run: runContextFixture(),
    ...overrides,
  };
}

/** `n` events: session.opened, then statements, every 97th denied, every 1000th held. */
export function hugeEvents(n: number): NewEvent[] {
  const events: NewEvent[] = [
    {
      target: null,
      kind: 'session.opened',
      operation: { policy: 'p' },
      decision: 'allow',
      reasons: ['policy p matched'],
    },
  ];
  for (let i = 1; i < n; i++) {
    const denied = i % 97 === 0;
    const held = !denied && i % 1000 === 0;
    events.push({
      target: 'orders-db',
      kind: denied ? 'pg.denied' : held ? 'pg.held' : 'pg.statement',
      operation: { statement: `SELECT * FROM orders WHERE id = ${i} AND note <> '${'x'.repeat(300)}'` },
      decision: denied ? 'deny' : held ? 'hold' : 'allow',
      reasons: denied ? [`access read: statement ${i} writes`] : held ? ['needs approval'] : [],
      rows: denied ? undefined : 1,
      duration_ms: 0.5,
    });
  }
  return events;
}
