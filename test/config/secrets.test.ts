import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type LoadedConfig, loadConfigText } from '../../service/config/load.js';
import { resolveAllSecrets, resolveSecret } from '../../service/config/secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(passwordLine: string, extra = ''): LoadedConfig {
  const yaml = [
    'listen: { http: { port: 8080 } }',
    'issuers: [{ name: github, issuer: https://token.actions.githubusercontent.com, audience: hoop }]',
    'targets:',
    '  - name: orders-db',
    '    kind: postgres',
    '    host: db.internal',
    '    database: orders',
    '    user: ci',
    passwordLine,
    'policies: []',
    extra,
  ].join('\n');
  const result = loadConfigText(yaml, 'hoop.yaml');
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result;
}

describe('resolveSecret', () => {
  it('reads an env var, refusing unset and empty ones by name', async () => {
    expect(await resolveSecret({ env: 'PW' }, { PW: 's3cret' })).toEqual({ ok: true, value: 's3cret' });
    expect(await resolveSecret({ env: 'PW' }, {})).toEqual({
      ok: false,
      message: 'environment variable PW is not set',
    });
    expect(await resolveSecret({ env: 'PW' }, { PW: '' })).toEqual({
      ok: false,
      message: 'environment variable PW is empty',
    });
  });

  it('reads a file, trimming exactly one trailing newline', async () => {
    const cases: [string, string][] = [
      ['plain', 'pw'],
      ['lf', 'pw\n'],
      ['crlf', 'pw\r\n'],
      ['two', 'pw\n\n'],
    ];
    for (const [name, content] of cases) writeFileSync(join(dir, name), content);
    expect(await resolveSecret({ file: join(dir, 'plain') })).toEqual({ ok: true, value: 'pw' });
    expect(await resolveSecret({ file: join(dir, 'lf') })).toEqual({ ok: true, value: 'pw' });
    expect(await resolveSecret({ file: join(dir, 'crlf') })).toEqual({ ok: true, value: 'pw' });
    expect(await resolveSecret({ file: join(dir, 'two') })).toEqual({ ok: true, value: 'pw\n' });
    // relative paths resolve against baseDir
    expect(await resolveSecret({ file: 'lf' }, {}, dir)).toEqual({ ok: true, value: 'pw' });
  });

  it('refuses missing, empty, oversized and directory files by path', async () => {
    writeFileSync(join(dir, 'empty'), '\n');
    writeFileSync(join(dir, 'huge'), 'x'.repeat(70_000));
    const missing = join(dir, 'missing');
    expect(await resolveSecret({ file: missing })).toEqual({
      ok: false,
      message: `cannot read secret file ${missing}: no such file`,
    });
    expect(await resolveSecret({ file: join(dir, 'empty') })).toEqual({
      ok: false,
      message: `secret file ${join(dir, 'empty')} is empty`,
    });
    expect(await resolveSecret({ file: join(dir, 'huge') })).toEqual({
      ok: false,
      message: `cannot read secret file ${join(dir, 'huge')}: larger than 64 KiB`,
    });
    expect(await resolveSecret({ file: dir })).toEqual({
      ok: false,
      message: `cannot read secret file ${dir}: is a directory, not a file`,
    });
  });
});

describe('resolveAllSecrets', () => {
  it('resolves every reference, keyed by config path', async () => {
    writeFileSync(join(dir, 'admin-token'), 'tok-123\n');
    const loaded = load(
      '    password: { env: ORDERS_DB_PASSWORD }',
      `store: { url: { env: HOOP_STORE_URL } }\nadmin: { tokens: [{ name: ops, token: { file: ${join(dir, 'admin-token')} } }] }`,
    );
    const result = await resolveAllSecrets(
      loaded.config,
      { ORDERS_DB_PASSWORD: 'orders-pw', HOOP_STORE_URL: 'postgres://hoop:pw@db/hoop' },
      loaded.locate,
    );
    expect(result).toEqual({
      ok: true,
      secrets: new Map([
        ['store.url', 'postgres://hoop:pw@db/hoop'],
        ['targets[0].password', 'orders-pw'],
        ['admin.tokens[0].token', 'tok-123'],
      ]),
    });
  });

  it('reports a missing env var with its path and line, never a value', async () => {
    const loaded = load(
      '    password: { env: ORDERS_DB_PASSWORD }',
      'admin: { tokens: [{ name: ops, token: { env: ADMIN } }] }',
    );
    const result = await resolveAllSecrets(loaded.config, { ADMIN: 'admin-secret-value' }, loaded.locate);
    expect(result).toEqual({
      ok: false,
      errors: [
        {
          path: 'targets[0].password',
          line: 9,
          column: 15,
          message: 'environment variable ORDERS_DB_PASSWORD is not set',
        },
      ],
    });
    expect(JSON.stringify(result)).not.toContain('admin-secret-value');
  });

  it('reports every failure at once, sorted by line; without locate the line is 0', async () => {
    const missing = join(dir, 'no-such-secret');
    const loaded = load(
      `    password: { file: ${missing} }`,
      'admin: { tokens: [{ name: ops, token: { env: ADMIN } }] }',
    );
    const located = await resolveAllSecrets(loaded.config, {}, loaded.locate);
    expect(located).toEqual({
      ok: false,
      errors: [
        {
          path: 'targets[0].password',
          line: 9,
          column: 15,
          message: `cannot read secret file ${missing}: no such file`,
        },
        {
          path: 'admin.tokens[0].token',
          line: 11,
          column: 39,
          message: 'environment variable ADMIN is not set',
        },
      ],
    });
    const unlocated = await resolveAllSecrets(loaded.config, {});
    expect(unlocated.ok === false && unlocated.errors.map((error) => [error.line, error.column])).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });
});
