// hoop-broker CLI: check-config, explain, sessions, audit — in-process and as the built binary.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionCreated } from '../service/api/schemas.js';
import { main } from '../service/cli.js';
import type { Config } from '../service/config/schema.js';
import { startBroker, type TestBroker } from './fixtures/broker.js';
import { type OidcIssuer, startOidcIssuer } from './fixtures/oidc-issuer.js';

const run = promisify(execFile);
const AUD = 'https://hoop.test';
const ADMIN = 'cli-admin-token-0123456789abcdef0123';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) }, out, err };
}

let dir: string;
let issuer: OidcIssuer;
let broker: TestBroker;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-cli-'));
  issuer = await startOidcIssuer({ audience: AUD });
  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'db',
        kind: 'postgres',
        host: '127.0.0.1',
        database: 'x',
        user: 'x',
        password: { env: 'CLI_DB_PW' },
      },
    ],
    policies: [
      { name: 'main', when: { ref: 'refs/heads/main' }, grants: [{ target: 'db', access: 'read' }] },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'CLI_ADMIN' } }] },
  };
  broker = await startBroker({ config, env: { CLI_DB_PW: 'pw-not-used', CLI_ADMIN: ADMIN } });
  process.env.HOOP_ADMIN_TOKEN = ADMIN;
});
afterAll(async () => {
  delete process.env.HOOP_ADMIN_TOKEN;
  await broker?.close();
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('hoop-broker check-config', () => {
  it('accepts the quick-start config', async () => {
    const c = capture();
    expect(await main(['check-config', 'examples/quickstart.yaml'], c.io)).toBe(0);
    expect(c.out.join('\n')).toContain('examples/quickstart.yaml: ok');
  });

  it('reports every error with file, line and path, and exits 1', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'listen:',
        '  http: { port: 99999 }',
        'issuers:',
        '  - name: github',
        '    issuer: https://token.actions.githubusercontent.com',
        '    audience: x',
        'targets:',
        '  - name: db',
        '    kind: postgres',
        '    host: h',
        '    database: d',
        '    user: u',
        '    password: hunter2',
        'policies: []',
        '',
      ].join('\n'),
    );
    const c = capture();
    expect(await main(['check-config', file], c.io)).toBe(1);
    const text = c.err.join('\n');
    expect(text).toContain(`${file}:2:`);
    expect(text).toContain('listen.http.port');
    expect(text).toContain(`${file}:13:`);
    expect(text).toContain('targets[0].password');
    expect(text).toContain('inline secret refused');
    expect(text).not.toContain('hunter2');
  });

  it('--secrets reports unresolvable references', async () => {
    const c = capture();
    const saved = process.env.ORDERS_DB_PASSWORD;
    delete process.env.ORDERS_DB_PASSWORD;
    const file = join(dir, 'env.yaml');
    writeFileSync(
      file,
      'listen: { http: { port: 0 } }\nissuers: [{ name: g, issuer: "https://token.actions.githubusercontent.com", audience: a }]\n' +
        'targets:\n  - { name: db, kind: postgres, host: h, database: d, user: u, password: { env: ORDERS_DB_PASSWORD } }\npolicies: []\n',
    );
    expect(await main(['check-config', file, '--secrets'], c.io)).toBe(1);
    expect(c.err.join('\n')).toContain('ORDERS_DB_PASSWORD');
    if (saved !== undefined) process.env.ORDERS_DB_PASSWORD = saved;
  });

  it('the built binary prints usage and validates (exit codes)', async () => {
    const bin = 'build/service/cli.js';
    const ok = await run('node', [bin, 'check-config', 'examples/quickstart.yaml']);
    expect(ok.stdout).toContain('ok');
    await expect(run('node', [bin, 'frobnicate'])).rejects.toMatchObject({ code: 2 });
  });
});

describe('hoop-broker explain / sessions / audit against a running broker', () => {
  it('explains a token via the API', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, await issuer.mint({ ref: 'refs/heads/dev' }));
    const c = capture();
    expect(await main(['explain', '--token', tokenFile, '--url', broker.url], c.io)).toBe(1);
    const text = c.out.join('\n');
    expect(text).toContain('matched policy: (none)');
    expect(text).toContain('✗ main');
    expect(text).toContain('refs/heads/dev');
  });

  it('lists, revokes and verifies sessions with the admin token', async () => {
    const res = await fetch(`${broker.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oidc_token: await issuer.mint({ ref: 'refs/heads/main' }) }),
    });
    const s = (await res.json()) as SessionCreated;
    let c = capture();
    expect(await main(['sessions', 'list', '--active', '--url', broker.url], c.io)).toBe(0);
    expect(c.out.join('\n')).toContain(s.id);
    c = capture();
    expect(await main(['sessions', 'revoke', s.id, '--url', broker.url], c.io)).toBe(0);
    expect(c.out.join('\n')).toBe(`${s.id}: revoked`);
    c = capture();
    expect(await main(['audit', 'verify', s.id, '--url', broker.url], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(new RegExp(`${s.id}: 2 events, chain verified, head [0-9a-f]{64}`));
  });

  it('refuses admin commands without the admin token', async () => {
    const c = capture();
    const saved = process.env.HOOP_ADMIN_TOKEN;
    process.env.HOOP_ADMIN_TOKEN = 'wrong';
    expect(await main(['sessions', 'list', '--url', broker.url], c.io)).toBe(1);
    process.env.HOOP_ADMIN_TOKEN = saved;
    expect(c.err.join('\n')).toContain('HTTP 401');
  });
});
