import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cell, code, escapeText, truncateText } from '../../../src/report/markdown.js';
import {
  JOB_SUMMARY_LIMITS,
  operationText,
  renderJobSummary,
  transcriptStats,
  utf8Bytes,
} from '../../../src/report/summary.js';
import { REPO_ROOT } from '../../fixtures/actions-runner.js';
import { chain, hugeEvents, realisticEvents, reportInput, transcriptOf } from './transcripts.js';

// Regenerate after an intended change: UPDATE_GOLDEN=1 npx vitest run test/action/report
const GOLDEN = join(REPO_ROOT, 'test/fixtures/golden/summary.md');

describe('markdown escaping of untrusted text', () => {
  it('turns every markup character into an entity', () => {
    const out = escapeText('a|b <script>`x`</script> @me #1 *b* _i_ [l](u) \\ & ~');
    expect(out.replace(/&#\d+;/g, '')).not.toMatch(/[|<>`@#*_[\]()\\&~]/);
    expect(out).toContain('a&#124;b');
    expect(out).toContain('&#60;script&#62;');
    expect(out).toContain('&#96;x&#96;');
    expect(out).toContain('&#64;me');
    expect(out).toContain('&#35;1');
    // & itself is escaped, so an entity in the input cannot sneak through as markup
    expect(escapeText('&lt;')).toBe('&#38;lt;');
    // no autolinks: the scheme's colon and the dot after www are escaped; other dots stay readable
    expect(escapeText('https://x.example www.y.example WWW.z public.orders')).toBe(
      'https&#58;//x.example www&#46;y.example WWW&#46;z public.orders',
    );
  });

  it('flattens newlines and replaces invisible and bidi characters', () => {
    expect(escapeText('a\nb\r\nc\td')).toBe('a b c d');
    expect(escapeText('ab\u202Ecd\u200Be\u0000f')).toBe('ab\uFFFDcd\uFFFDe\uFFFDf');
    expect(escapeText('naïve 日本')).toBe('naïve 日本');
  });

  it('truncates by code points before escaping, with an ellipsis', () => {
    expect(truncateText('x'.repeat(10), 5)).toBe('xxxx…');
    expect(truncateText('😀'.repeat(10), 3)).toBe('😀😀…');
    expect(cell('<<<<<<', 3)).toBe('&#60;&#60;…');
    expect(code('')).toBe('');
    expect(code('a`b')).toBe('<code>a&#96;b</code>');
  });
});

describe('operationText', () => {
  const base = {
    seq: 1,
    at: '',
    session_id: 's',
    target: null,
    decision: 'allow' as const,
    prev_hash: '',
    hash: '',
  };
  it('prefers the statement, then a request line, then reasons for session events', () => {
    expect(
      operationText({ ...base, kind: 'pg.statement', operation: { statement: 'select 1' }, reasons: [] }),
    ).toBe('select 1');
    expect(
      operationText({
        ...base,
        kind: 'k8s.request',
        operation: { method: 'GET', path: '/api/v1/pods' },
        reasons: [],
      }),
    ).toBe('GET /api/v1/pods');
    expect(
      operationText({
        ...base,
        kind: 'session.opened',
        operation: { identity: {} },
        reasons: ['policy p matched'],
      }),
    ).toBe('policy p matched');
    expect(
      operationText({
        ...base,
        kind: 'pg.connection.opened',
        operation: { conn_id: 'c1', tls: true, n: 2, o: {} },
        reasons: [],
      }),
    ).toBe('conn_id=c1 tls=true n=2');
    expect(operationText({ ...base, kind: 'ssh.exec', operation: { argv: ['ls'] }, reasons: [] })).toBe(
      '{"argv":["ls"]}',
    );
  });
});

describe('job summary', () => {
  it('matches the golden file for a realistic transcript', () => {
    const md = renderJobSummary(reportInput(transcriptOf(chain(realisticEvents()))));
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, md);
    expect(md).toBe(readFileSync(GOLDEN, 'utf8'));
  });

  it('shows who, policy, targets, highlights, every event and the final hash', () => {
    const events = chain(realisticEvents());
    const md = renderJobSummary(reportInput(transcriptOf(events)));
    expect(md).toContain('| Repository | octo-org/octo-repo |');
    expect(md).toContain(
      '[9876543210 (attempt 1)](https://github.com/octo-org/octo-repo/actions/runs/9876543210/attempts/1)',
    );
    expect(md).toContain('| Policy | <code>pull-requests-read-only</code> |');
    expect(md).toContain('| <code>orders-db</code> | postgres | read |');
    expect(md).toContain('### Denied and held (3)');
    expect(md).toContain(`<code>${events.at(-1)!.hash}</code>`);
    expect(md).toContain('**2 denied**');
    for (const e of events) expect(md).toMatch(new RegExp(`^\\| ${e.seq} \\|`, 'm'));
    expect(md).not.toContain('Summarised');
  });

  it('keeps attacker-influenced statements from breaking the table or injecting markup', () => {
    const md = renderJobSummary(reportInput(transcriptOf(chain(realisticEvents()))));
    expect(md).not.toContain('<script>');
    expect(md).not.toContain('@octocat');
    expect(md).not.toContain('](https://evil');
    expect(md).not.toMatch(/`rm/);
    // every table row of the transcript still has exactly 9 cells
    const rows = md.split('\n').filter((l) => /^\| \d+ \|/.test(l));
    for (const r of rows) expect(r.split(' | ').length).toBe(9);
  });

  it('says when the transcript could not be fetched and the revoke failed', () => {
    const md = renderJobSummary(
      reportInput(null, {
        transcriptProblem:
          'broker unreachable: GET http://127.0.0.1:1/v1/sessions/x/transcript: ECONNREFUSED',
        revoke: { ok: false, message: 'broker unreachable: ECONNREFUSED', attempts: 4 },
      }),
    );
    expect(md).toContain('**Transcript unavailable**');
    expect(md).toContain('The transcript could not be fetched: broker unreachable');
    expect(md).toContain('could not be revoked after 4 attempts');
    expect(md).toContain('It stays usable until it expires at 2025-06-01T12:15:00.000Z');
    expect(md).toContain('No transcript, so no hash to check.');
  });

  it('warns loudly when the broker could not verify the chain', () => {
    const t = { ...transcriptOf(chain(realisticEvents())), chain_verified: false };
    expect(renderJobSummary(reportInput(t))).toContain('could **not** verify');
  });

  it('keeps a 50,000-event transcript under 1 MiB and says what was cut', () => {
    const events = chain(hugeEvents(50_000));
    const stats = transcriptStats(events);
    const md = renderJobSummary(reportInput(transcriptOf(events)));
    expect(utf8Bytes(md)).toBeLessThan(1024 * 1024);
    expect(utf8Bytes(md)).toBeLessThanOrEqual(JOB_SUMMARY_LIMITS.max);
    expect(md).toContain("Summarised to fit GitHub's 1 MiB job-summary limit");
    expect(md).toMatch(/showing [\d,]+ of 50,000 events/);
    expect(md).toContain(`${stats.denied.toLocaleString('en-US')} denied`);
    // the first and the last events and the final hash are always there
    expect(md).toMatch(/^\| 1 \|/m);
    expect(md).toMatch(/^\| 50000 \|/m);
    expect(md).toContain(events.at(-1)!.hash);
    expect(md).toMatch(/events omitted \(#\d+–#\d+\)/);
  });

  it('shrinks further when statements are long, and the note counts cut denials', () => {
    const events = chain(
      Array.from({ length: 5000 }, (_, i) => ({
        target: 'db',
        kind: 'pg.denied',
        operation: { statement: `DELETE FROM t WHERE x = '${'<'.repeat(400)}' -- ${i}` },
        decision: 'deny' as const,
        reasons: ['access read: DELETE writes'],
      })),
    );
    const md = renderJobSummary(reportInput(transcriptOf(events)), { ...JOB_SUMMARY_LIMITS, max: 200_000 });
    expect(utf8Bytes(md)).toBeLessThanOrEqual(200_000);
    expect(md).toMatch(/including [\d,]+ denied\/held events/);
    expect(md).toMatch(/and [\d,]+ more denied\/held events \(not listed\)/);
  });
});
