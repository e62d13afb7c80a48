// approve: rules, approvers and approval timeouts in the config: accepted, and every mistake
// reported with its path.
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../service/config/load.js';

function config(grant: string[], extra: string[] = []): string {
  return [
    'listen: { http: { port: 8080 }, postgres: { port: 6432 } }',
    'issuers:',
    '  - { name: github, issuer: https://token.actions.githubusercontent.com, audience: https://hoop.example.com }',
    'targets:',
    '  - { name: db, kind: postgres, host: 127.0.0.1, database: app, user: app, password: { env: PW } }',
    ...extra,
    'policies:',
    '  - name: migrate',
    '    when: { repository_id: "123456" }',
    '    grants:',
    ...grant,
    '',
  ].join('\n');
}

describe('approve rules in the config', () => {
  it('accepts approve rules with approvers and timeouts, and approver tokens', () => {
    const loaded = loadConfigText(
      config(
        [
          '      - target: db',
          '        access: write',
          '        approve:',
          '          - { statement: [DROP, ALTER TABLE], approvers: { users: [alice, bob], min: 2 }, timeout: 5m }',
          '          - { table: [payments] }',
          '        approvers: { teams: [acme/dba] }',
          '        approval_timeout: 15m',
        ],
        [
          'approvals:',
          '  approver_tokens:',
          '    - { name: alice-laptop, token: { env: ALICE_TOKEN }, github_login: alice }',
          '  notify:',
          '    - { kind: slack, url: { env: SLACK_URL } }',
          '    - { kind: webhook, url: https://hooks.example.com/hoop, secret: { env: HOOK_SECRET } }',
        ],
      ),
      'hoop.yaml',
    );
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
  });

  it('reports a bad rule, an impossible minimum, a bad timeout and an inline token', () => {
    const loaded = loadConfigText(
      config(
        [
          '      - target: db',
          '        access: write',
          '        approve:',
          '          - { statement: [drop] }',
          '          - { table: [payments], approvers: { users: [alice], min: 2 } }',
          '          - { table: [orders], timeout: soon }',
        ],
        ['approvals:', '  approver_tokens:', '    - { name: alice, token: s3cret }'],
      ),
      'hoop.yaml',
    );
    expect(loaded.ok).toBe(false);
    const errors = loaded.ok ? [] : loaded.errors.map((e) => `${e.path}: ${e.message}`);
    expect(errors.join('\n')).toMatch(/approve\[0\]/);
    expect(errors.join('\n')).toMatch(/approvals\.approver_tokens\[0\]\.token/);
    const semantic = loadConfigText(
      config([
        '      - target: db',
        '        access: write',
        '        approve:',
        '          - { table: [payments], approvers: { users: [alice], min: 2 } }',
        '          - { table: [orders], timeout: 0s }',
      ]),
      'hoop.yaml',
    );
    expect(semantic.ok).toBe(false);
    const byPath = Object.fromEntries((semantic.ok ? [] : semantic.errors).map((e) => [e.path, e.message]));
    expect(byPath['policies[0].grants[0].approve[0].approvers.min']).toMatch(
      /no hold could ever be approved/,
    );
    expect(byPath['policies[0].grants[0].approve[1].timeout']).toMatch(/duration greater than zero/);
    const urls = loadConfigText(
      config(
        ['      - { target: db, access: write }'],
        [
          'approvals:',
          '  approver_tokens:',
          '    - { name: a, token: { env: A } }',
          '    - { name: a, token: { env: B } }',
          '  notify:',
          '    - { kind: webhook, url: http://hooks.example.com/x, secret: { env: S } }',
        ],
      ),
      'hoop.yaml',
    );
    const urlErrors = Object.fromEntries((urls.ok ? [] : urls.errors).map((e) => [e.path, e.message]));
    expect(urlErrors['approvals.notify[0].url']).toMatch(/https/);
    expect(Object.keys(urlErrors).some((k) => k.startsWith('approvals.approver_tokens'))).toBe(true);
  });
});

describe('examples/approvals.yaml', () => {
  it('is a valid config', async () => {
    const { readFileSync } = await import('node:fs');
    const loaded = loadConfigText(readFileSync('examples/approvals.yaml', 'utf8'), 'examples/approvals.yaml');
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
  });
});
