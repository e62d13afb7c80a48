// The audit viewer in a real headless browser (Debian chromium, driven by playwright-core): the admin
// token form, the sessions list with its filters, one session's transcript with the denial highlighted
// and the chain status; values rendered as text; screenshots of both views checked for what they show.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../service/config/schema.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { decodePng, type Image } from '../fixtures/png.js';

const AUD = 'https://hoop.viewer.test';
const ADMIN = 'viewer-admin-token-0123456789abcdef';
const CHROMIUM = process.env.HOOP_CHROMIUM ?? '/usr/bin/chromium';
let issuer: OidcIssuer;
let broker: TestBroker;
let browser: Browser;
let dir: string;
const ids: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-viewer-'));
  issuer = await startOidcIssuer({ audience: AUD });
  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'orders-db',
        kind: 'postgres',
        host: '127.0.0.1',
        database: 'x',
        user: 'x',
        password: { env: 'V_DB_PW' },
      },
    ],
    policies: [
      {
        name: 'prs',
        when: { event_name: 'pull_request' },
        grants: [{ target: 'orders-db', access: 'read' }],
      },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'V_ADMIN' } }] },
  };
  broker = await startBroker({ config, env: { V_DB_PW: 'unused', V_ADMIN: ADMIN } });
  for (const repo of ['octo-org/shop', 'octo-org/billing']) {
    const res = await fetch(`${broker.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        oidc_token: await issuer.mint({ event_name: 'pull_request', repository: repo }),
      }),
    });
    ids.push(((await res.json()) as { id: string }).id);
  }
  // a transcript with an allowed statement and a denial, as the PostgreSQL gateway records them
  await broker.broker.store.appendEvents(ids[0]!, [
    {
      target: 'orders-db',
      kind: 'pg.statement',
      decision: 'allow',
      reasons: [],
      rows: 3,
      masked: 3,
      operation: {
        conn_id: 'pgc_1',
        protocol: 'simple',
        statement: 'SELECT email FROM customers',
        statement_kind: 'SELECT',
      },
    },
    {
      target: 'orders-db',
      kind: 'pg.denied',
      decision: 'deny',
      reasons: ['access read: DELETE modifies data'],
      operation: {
        conn_id: 'pgc_1',
        protocol: 'simple',
        rule: 'access: read',
        statement: "DELETE FROM orders WHERE note = '<img src=x onerror=alert(1)>'",
        statement_kind: 'DELETE',
      },
    },
  ]);
  // the second session: an ssh shell whose recording is stored beside the transcript (named and hashed
  // by its event, as the ssh gateway records it) and a Kubernetes exec with its asciicast in the event
  await broker.broker.store.appendRecordingChunks(ids[1]!, [
    { recording: 'rec_shell1', seq: 0, body: SHELL_CAST.split('\n')[0]! + '\n' },
    { recording: 'rec_shell1', seq: 1, body: SHELL_CAST.split('\n').slice(1).join('\n') },
  ]);
  await broker.broker.store.appendEvents(ids[1]!, [
    {
      target: 'build-host',
      kind: 'ssh.shell',
      decision: 'allow',
      reasons: [],
      operation: {
        conn_id: 'sshc_1',
        recording: {
          bytes: SHELL_CAST.length,
          events: 3,
          id: 'rec_shell1',
          sha256: createHash('sha256').update(SHELL_CAST).digest('hex'),
          truncated: false,
        },
        term: 'xterm-256color',
        type: 'ssh.shell',
      },
    },
    {
      target: 'cluster',
      kind: 'k8s.request',
      decision: 'allow',
      reasons: [],
      operation: {
        api_group: '',
        asciicast: EXEC_CAST,
        command: ['sh', '-c', 'echo exec output'],
        conn_id: 'k8sc_1',
        path: '/api/v1/namespaces/ci/pods/web/exec',
        subresource: 'exec',
        verb: 'create',
      },
    },
  ]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await broker?.close();
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
});

const castHeader = (w: number, h: number) =>
  `${JSON.stringify({ version: 2, width: w, height: h, timestamp: 1765000000 })}\n`;
/** a shell session: a prompt, a command, its output in green (the screenshot looks for the green) */
const SHELL_CAST =
  castHeader(60, 8) +
  [
    [0.1, 'o', '$ ./deploy.sh --dry-run\r\n'],
    [0.3, 'o', '\u001b[42;30m  recording replayed in the viewer  \u001b[0m\r\n'],
    [0.5, 'o', '$ exit\r\n'],
  ]
    .map((e) => JSON.stringify(e))
    .join('\n') +
  '\n';
const EXEC_CAST = castHeader(40, 4) + `${JSON.stringify([0.2, 'o', 'exec output\r\n'])}\n`;

/** where screenshots are kept: HOOP_VIEWER_SHOTS to look at them, else the temp dir */
const shots = () => process.env.HOOP_VIEWER_SHOTS ?? dir;

/** How many pixels of the image are (nearly) this colour. */
function count(img: Image, [r, g, b]: [number, number, number]): number {
  let n = 0;
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++) {
      const p = img.pixel(x, y);
      if (Math.abs(p[0] - r) + Math.abs(p[1] - g) + Math.abs(p[2] - b) < 12) n++;
    }
  return n;
}

describe('audit viewer', () => {
  it('asks for the admin token, lists and filters sessions, shows a transcript with the denial highlighted', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => {
      errors.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    const res = await page.goto(`${broker.url}/ui/`);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.waitForSelector('#login:not([hidden])');
    // a wrong token is refused
    await page.fill('#token', 'not-the-token');
    await page.click('#login-button');
    await page.waitForFunction("document.getElementById('login-error')?.textContent?.includes('refused')");
    await page.fill('#token', ADMIN);
    await page.click('#login-button');
    await page.waitForSelector('#sessions-table tbody tr');
    expect(await page.locator('#sessions-table tbody tr').count()).toBe(2);
    const list = decodePng(await page.screenshot());
    writeFileSync(join(shots(), 'sessions.png'), await page.screenshot());
    expect(list.width).toBe(1200);
    expect(count(list, [0x24, 0x29, 0x2f])).toBeGreaterThan(1200 * 20); // the header bar
    expect(count(list, [0x1a, 0x7f, 0x37])).toBeGreaterThan(20); // "active", green
    // the text filter
    await page.fill('#filter-text', 'billing');
    expect(await page.locator('#sessions-table tbody tr').count()).toBe(1);
    expect(await page.textContent('#count')).toBe('1 of 2');
    await page.fill('#filter-text', '');
    await page.selectOption('#filter-state', 'revoked');
    expect(await page.locator('#sessions-table tbody tr').count()).toBe(0);
    await page.selectOption('#filter-state', '');
    // one session
    await page.click(`#sessions-table tr[data-id="${ids[0]}"]`);
    await page.waitForSelector('#events-table tbody tr');
    expect(await page.textContent('#chain')).toContain('✓ hash chain verified');
    expect(await page.textContent('#summary')).toBe('3 events · 1 denied · 0 held');
    const denied = page.locator('#events-table tbody tr.deny');
    expect(await denied.count()).toBe(1);
    expect(await denied.textContent()).toContain('access read: DELETE modifies data');
    // the statement is text, not markup
    expect(await page.locator('#events-table img').count()).toBe(0);
    expect(await denied.textContent()).toContain('<img src=x onerror=alert(1)>');
    const detail = decodePng(await page.screenshot());
    writeFileSync(join(shots(), 'session.png'), await page.screenshot());
    const deniedBox = (await denied.boundingBox())!;
    // the highlighted row is in the picture, about its size
    const pink = count(detail, [0xff, 0xd7, 0xd5]);
    expect(pink).toBeGreaterThan(deniedBox.width * deniedBox.height * 0.5);
    expect(count(detail, [0xda, 0xfb, 0xe1])).toBeGreaterThan(200); // the green chain badge
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('replays ssh and exec recordings with asciinema-player, served by the broker (no CDN)', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    const external: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(broker.url) && !r.url().startsWith('data:')) external.push(r.url());
    });
    await page.goto(`${broker.url}/ui/`);
    await page.fill('#token', ADMIN);
    await page.click('#login-button');
    await page.waitForSelector('#sessions-table tbody tr');
    await page.click(`#sessions-table tr[data-id="${ids[1]}"]`);
    await page.waitForSelector('#recordings:not([hidden]) .recording .ap-player');
    const recs = page.locator('#recordings .recording');
    expect(await recs.count()).toBe(2);
    expect(await recs.nth(0).locator('h4').textContent()).toContain(
      'ssh.shell · build-host · shell (xterm-256color)',
    );
    expect(await recs.nth(0).locator('.sum').textContent()).toContain('✓ sha256 matches the transcript');
    expect(await recs.nth(1).locator('h4').textContent()).toContain('sh -c echo exec output');
    // the poster is the end of the recording: its text is on the player's screen
    await page.waitForFunction(
      "(document.querySelectorAll('#recordings .ap-player')[0]?.textContent ?? '').includes('recording replayed in the viewer')",
    );
    await page.waitForFunction(
      "(document.querySelectorAll('#recordings .ap-player')[1]?.textContent ?? '').includes('exec output')",
    );
    const player = page.locator('#recordings .recording .ap-player').first();
    await player.scrollIntoViewIfNeeded();
    const png = await page.screenshot();
    writeFileSync(join(shots(), 'recording.png'), png);
    const shot = decodePng(png);
    const box = (await player.boundingBox())!;
    expect(box.width).toBeGreaterThan(300);
    // the terminal's dark background fills most of the player; the green line is drawn on it
    expect(count(shot, [0x12, 0x13, 0x14])).toBeGreaterThan(box.width * box.height * 0.4);
    const greens = [
      [0x4e, 0x9a, 0x06],
      [0x00, 0xcd, 0x00],
      [0x00, 0x80, 0x00],
      [0x98, 0xc3, 0x79],
      [0x4e, 0xbf, 0x22],
    ] as const;
    const green = Math.max(...greens.map((c) => count(shot, [...c])));
    expect(green).toBeGreaterThan(200);
    expect(external).toEqual([]);
    expect(errors, errors.join('\n')).toEqual([]);
    // the player's files come from the installed package
    const js = await fetch(`${broker.url}/ui/vendor/asciinema-player.min.js`);
    expect(js.status).toBe(200);
    expect(await js.text()).toContain('AsciinemaPlayer');
    expect((await fetch(`${broker.url}/ui/vendor/asciinema-player.css`)).status).toBe(200);
    await page.close();
  }, 60_000);

  it('the API behind it still needs the token: the page itself holds no data', async () => {
    const html = await (await fetch(`${broker.url}/ui/`)).text();
    expect(html).not.toContain(ids[0]);
    expect((await fetch(`${broker.url}/v1/sessions`)).status).toBe(401);
  });
});
