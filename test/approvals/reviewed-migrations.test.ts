// The reviewed-migrations Approver: the grant's migration files read at the token's sha through the
// contents API (the OpenAPI-checked stand-in), parsed with the real parser; a held statement equal to a
// reviewed one (whitespace, comments, keyword case aside; identifiers and constants exact) is approved
// without a human, naming file and statement; anything else goes to the inner Approver.
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitHubAppClient } from '../../service/approvals/github/client.js';
import {
  GET_CONTENTS,
  globMatches,
  heldStatementKey,
  ReviewedMigrations,
} from '../../service/approvals/reviewed-migrations.js';
import type { Grant } from '../../service/config/schema.js';
import type { ApprovalOutcome, HoldRequest } from '../../service/gateways/operation-flow.js';
import { classifySql } from '../../service/policy/sql/classify.js';
import { initSqlParser } from '../../service/policy/sql/parser.js';
import { type GitHubApiStandIn, startGitHubApi } from '../fixtures/github-api.js';
import { APP_ID, APP_PRIVATE_KEY } from './github/app-key.js';

const TOKENS = 'POST /app/installations/{installation_id}/access_tokens';
const SHA = '1'.repeat(40);
const FILES: Record<string, string> = {
  'db/migrations/001_init.sql': `-- migrate:up
CREATE TABLE accounts (id int PRIMARY KEY, email text);
/* a comment */ ALTER TABLE accounts ADD COLUMN role text DEFAULT 'user';
`,
  'db/migrations/002_drop.sql': 'DROP TABLE legacy;\nUPDATE accounts SET role = $$admin$$ WHERE id = 1;\n',
  'db/migrations/003_broken.sql': 'THIS IS NOT SQL;',
  'db/migrations/README.md': 'DROP TABLE accounts;',
};

let api: GitHubApiStandIn;
let failContents = false;
let inner: HoldRequest[] = [];
const innerAnswer: ApprovalOutcome = { decision: 'deny', by: 'human', reason: 'asked a human' };

const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeAll(async () => {
  await initSqlParser();
  api = await startGitHubApi({
    operations: [TOKENS, GET_CONTENTS],
    respond: (r) => {
      if (r.operation === TOKENS)
        return {
          status: 201,
          body: { token: 'ghs_m', expires_at: new Date(Date.now() + 3.6e6).toISOString() },
        };
      if (failContents) return { status: 500, body: { message: 'Server Error' } };
      const path = r.params.path!;
      if (path === 'db/migrations')
        return {
          status: 200,
          body: [
            ...Object.keys(FILES).map((p) => ({
              type: 'file',
              name: p.split('/').at(-1),
              path: p,
              size: FILES[p]!.length,
            })),
            { type: 'dir', name: 'old.sql', path: 'db/migrations/old.sql' },
          ],
        };
      const text = FILES[path];
      return text === undefined
        ? { status: 404, body: { message: 'Not Found' } }
        : {
            status: 200,
            body: {
              type: 'file',
              name: path.split('/').at(-1),
              path,
              encoding: 'base64',
              content: b64(text),
            },
          };
    },
  });
});
afterAll(async () => {
  await api?.close();
});
beforeEach(() => {
  inner = [];
  failContents = false;
});

function approver(grant: Partial<Grant> = { migrations: { paths: ['db/migrations/*.sql'] } }) {
  const client = new GitHubAppClient({
    appId: APP_ID,
    privateKey: APP_PRIVATE_KEY,
    apiUrl: api.url,
    installationId: 2,
  });
  return new ReviewedMigrations({
    client,
    logger: pino({ level: 'silent' }),
    inner: {
      request: (h) => {
        inner.push(h);
        return Promise.resolve(innerAnswer);
      },
    },
    session: () =>
      Promise.resolve({
        grants: [{ target: 'db', access: 'write', ...grant } as Grant],
        identity: { repository: 'octo-org/app', sha: SHA },
      }),
  });
}

function hold(sql: string, target = 'db'): HoldRequest {
  const c = classifySql(sql);
  if (!c.ok) throw new Error(c.error);
  return {
    session_id: 'ses_1',
    target,
    conn_id: 'c1',
    operation: { kind: 'pg.statement', protocol: 'simple', statement: c.statements[0]! },
    decision: { effect: 'hold', rule: 'approve[0]', reasons: ['approve.statement: DROP'] },
    signal: new AbortController().signal,
  };
}

describe('ReviewedMigrations', () => {
  it('approves a statement of a reviewed file at once, naming file and statement number', async () => {
    const a = approver();
    expect(await a.request(hold('drop   TABLE Legacy'))).toEqual({
      decision: 'approve',
      by: 'reviewed-migration',
      reason: `matches statement 1 of db/migrations/002_drop.sql at ${SHA.slice(0, 12)} (reviewed migration)`,
    });
    expect(
      await a.request(hold("alter table accounts add column role text default 'user' -- same")),
    ).toMatchObject({
      decision: 'approve',
      reason: expect.stringContaining('statement 2 of db/migrations/001_init.sql'),
    });
    expect(await a.request(hold("UPDATE accounts SET role = 'admin' WHERE id = 1"))).toMatchObject({
      decision: 'approve',
    });
    expect(inner).toEqual([]);
    // read once, at the token's sha, through the contents API
    const reads = api.requests.filter((r) => r.operation === GET_CONTENTS);
    expect(reads.map((r) => r.params.path)).toEqual([
      'db/migrations',
      'db/migrations/001_init.sql',
      'db/migrations/002_drop.sql',
      'db/migrations/003_broken.sql',
    ]);
    expect(reads.every((r) => r.params.owner === 'octo-org' && r.params.repo === 'app')).toBe(true);
    expect(api.violations).toEqual([]);
  });

  it('sends anything not reviewed exactly to the inner approver: other constants, other options, other tables, parameters', async () => {
    const a = approver();
    for (const sql of [
      "ALTER TABLE accounts ADD COLUMN role text DEFAULT 'admin'",
      'DROP TABLE legacy CASCADE',
      'DROP TABLE accounts',
      "UPDATE accounts SET role = 'admin' WHERE id = 2",
      'UPDATE accounts SET role = $1 WHERE id = 1',
      'DROP TABLE IF EXISTS legacy',
    ])
      expect(await a.request(hold(sql))).toEqual(innerAnswer);
    expect(inner).toHaveLength(6);
  });

  it('a grant without migrations, another target, or an unreadable repository asks the inner approver', async () => {
    expect(await approver({}).request(hold('DROP TABLE legacy'))).toEqual(innerAnswer);
    expect(await approver().request(hold('DROP TABLE legacy', 'other'))).toEqual(innerAnswer);
    failContents = true;
    const a = approver();
    expect(await a.request(hold('DROP TABLE legacy'))).toEqual(innerAnswer);
    failContents = false; // a failure is not cached
    expect(await a.request(hold('DROP TABLE legacy'))).toMatchObject({ decision: 'approve' });
  });

  it('globs match file names only', () => {
    expect(globMatches('*.sql', '001_init.sql')).toBe(true);
    expect(globMatches('*.sql', 'README.md')).toBe(false);
    expect(globMatches('V?__*.sql', 'V1__init.sql')).toBe(true);
    expect(globMatches('*.sql', 'a.sqlx')).toBe(false);
    expect(heldStatementKey('SELECT 1; SELECT 2')).toBeNull();
  });
});
