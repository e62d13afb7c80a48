// The LOCAL development issuer and `hoop-broker dev`: GitHub-shaped tokens a broker accepts only when its
// config names the issuer; `--help` on every command; the binary run through a symlink (npx, .bin).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../service/cli.js';
import type { Config } from '../../service/config/schema.js';
import { parseClaimsArgument } from '../../service/dev/claims.js';
import {
  type DevIssuer,
  DEV_TOKEN_CLAIM,
  requestDevToken,
  startDevIssuer,
} from '../../service/dev/issuer.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';

const run = promisify(execFile);
const AUD = 'https://hoop.dev.test';
const BIN = resolve('build/service/cli.js');

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) }, out, err };
}

const baseConfig = (issuer: string): Config => ({
  listen: { http: { port: 0, host: '127.0.0.1' } },
  issuers: [{ name: 'dev', issuer, audience: AUD }],
  targets: [
    {
      name: 'db',
      kind: 'postgres',
      host: '127.0.0.1',
      database: 'x',
      user: 'x',
      password: { env: 'DEV_DB_PW' },
    },
  ],
  policies: [
    { name: 'prs', when: { event_name: 'pull_request' }, grants: [{ target: 'db', access: 'read' }] },
  ],
});

let issuer: DevIssuer;
let trusting: TestBroker;
let githubOnly: TestBroker;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-dev-'));
  issuer = await startDevIssuer({ audience: AUD });
  [trusting, githubOnly] = await Promise.all([
    startBroker({ config: baseConfig(issuer.issuer), env: { DEV_DB_PW: 'unused' } }),
    startBroker({
      config: baseConfig('https://token.actions.githubusercontent.com'),
      env: { DEV_DB_PW: 'unused' },
    }),
  ]);
});
afterAll(async () => {
  await Promise.all([trusting?.close(), githubOnly?.close()]);
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function openSession(broker: TestBroker, token: string) {
  const res = await fetch(`${broker.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ oidc_token: token }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { reasons?: { message: string }[]; policy?: string },
  };
}

describe('the development issuer', () => {
  it('mints GitHub-shaped tokens, marked as development tokens, with claims overridden or removed', async () => {
    const token = await requestDevToken(issuer.issuer, {
      event_name: 'push',
      environment: 'staging',
      actor_id: null,
    });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: issuer.issuer,
      aud: AUD,
      repository: 'octo-org/octo-repo',
      repository_id: '123456',
      event_name: 'push',
      environment: 'staging',
      sub: 'repo:octo-org/octo-repo:environment:staging',
      [DEV_TOKEN_CLAIM]: true,
    });
    expect(claims).not.toHaveProperty('actor_id');
    expect(typeof claims.jti).toBe('string');
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300);
  });

  it('is accepted by a broker whose config names it', async () => {
    const r = await openSession(trusting, await issuer.mint({ event_name: 'pull_request' }));
    expect(r.status).toBe(201);
    expect(r.body.policy).toBe('prs');
  });

  it("is refused by a broker whose config names only GitHub's issuer", async () => {
    const r = await openSession(githubOnly, await issuer.mint({ event_name: 'pull_request' }));
    expect(r.status).toBe(401);
    expect(r.body.reasons?.map((x) => x.message).join('\n')).toContain('is not configured');
  });

  it('listens on loopback only, and hands tokens only to loopback callers', async () => {
    await expect(startDevIssuer({ host: '0.0.0.0' })).rejects.toThrow(/loopback only/);
    await expect(requestDevToken('http://192.0.2.1:8091', {})).rejects.toThrow(/loopback issuer only/);
  });

  it('parses --claims as JSON or name=value pairs', () => {
    expect(parseClaimsArgument('event_name=push,ref=refs/heads/main')).toEqual({
      event_name: 'push',
      ref: 'refs/heads/main',
    });
    expect(parseClaimsArgument('{"run_attempt": "2", "sha": null}')).toEqual({ run_attempt: '2', sha: null });
    expect(() => parseClaimsArgument('nonsense')).toThrow(/name=value/);
    expect(() => parseClaimsArgument('[1]')).toThrow();
  });

  it('`hoop-broker dev token` prints a token from a running issuer; explains it against the broker', async () => {
    const c = capture();
    expect(
      await main(
        ['dev', 'token', '--issuer', issuer.issuer, '--audience', AUD, '--claims', 'event_name=push'],
        c.io,
      ),
    ).toBe(0);
    expect(decodeJwt(c.out[0]!).event_name).toBe('push');
    const bad = capture();
    expect(await main(['dev', 'token', '--issuer', 'http://127.0.0.1:1'], bad.io)).toBe(1);
    expect(bad.err.join('\n')).toContain('hoop-broker dev issuer');
  });

  it('`hoop-broker dev issuer` runs as a process until SIGTERM, printing its URL', async () => {
    const child = spawn(process.execPath, [BIN, 'dev', 'issuer', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const url = await new Promise<string>((res, rej) => {
        const t = setTimeout(() => rej(new Error('no URL within 10 s')), 10_000);
        createInterface({ input: child.stdout }).on('line', (l) => {
          const m = /issuer at (http:\/\/127\.0\.0\.1:\d+)/.exec(l);
          if (m) {
            clearTimeout(t);
            res(m[1]!);
          }
        });
      });
      const out = await run(process.execPath, [BIN, 'dev', 'token', '--issuer', url]);
      expect(decodeJwt(out.stdout.trim()).iss).toBe(url);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    expect(child.exitCode).toBe(0);
  });
});

describe('hoop-broker --help', () => {
  it('prints the usage for --help, -h and help, exit 0; no command is a usage error', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const c = capture();
      expect(await main(args, c.io)).toBe(0);
      expect(c.out.join('\n')).toContain('hoop-broker serve --config FILE');
    }
    const none = capture();
    expect(await main([], none.io)).toBe(2);
  });

  it.each(['serve', 'check-config', 'explain', 'sessions', 'audit', 'dev'])(
    '%s --help and -h',
    async (cmd) => {
      for (const flag of ['--help', '-h']) {
        const c = capture();
        expect(await main([cmd, flag], c.io)).toBe(0);
        expect(c.out.join('\n')).toMatch(new RegExp(`^hoop-broker ${cmd}`));
        expect(c.out.join('\n')).toContain('-h, --help');
      }
      const c = capture();
      expect(await main(['help', cmd], c.io)).toBe(0);
      expect(c.out.join('\n')).toMatch(new RegExp(`^hoop-broker ${cmd}`));
    },
  );

  it('an unknown option is a usage error naming it, with the command usage', async () => {
    const c = capture();
    expect(await main(['sessions', '--frobnicate'], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('--frobnicate');
    expect(c.err.join('\n')).toContain('hoop-broker sessions list');
  });

  it('the built binary runs through a symlink, as npx and node_modules/.bin start it', async () => {
    const link = join(dir, 'hoop-broker');
    symlinkSync(BIN, link);
    const out = await run(process.execPath, [link, '--help']);
    expect(out.stdout).toContain('hoop-broker serve --config FILE');
    const sub = await run(process.execPath, [link, 'check-config', '--help']);
    expect(sub.stdout).toMatch(/^hoop-broker check-config FILE/);
  });
});
