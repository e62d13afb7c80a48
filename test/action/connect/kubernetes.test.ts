import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionTarget } from '../../../service/api/schemas.js';
import { KUBE_USER, kubeconfig, kubernetesSettings } from '../../../src/connect/kubernetes.js';
import { makeTestPki, type TestPki } from '../tls.js';

const run = promisify(execFile);
const TOKEN = 'hoop_k8s-session-secret_0123456789';

function kubeTarget(
  server: string,
  extra: { ca?: string; namespace?: string } = {},
  name = 'staging',
): Extract<SessionTarget, { kind: 'kubernetes' }> {
  return { name, kind: 'kubernetes', access: 'read', connection: { server, ...extra } };
}

describe('kubeconfig', () => {
  it('has one cluster and context per target, one token user, the first target current', () => {
    const a = kubernetesSettings(
      kubeTarget('https://127.0.0.1:8443/k8s/staging', { namespace: 'web' }),
      'BROKER CA',
    );
    const b = kubernetesSettings(
      kubeTarget('https://127.0.0.1:8443/k8s/prod', { ca: '-----BEGIN CERTIFICATE-----\nX' }, 'prod'),
      'BROKER CA',
    );
    if (!a.ok || !b.ok) throw new Error('settings');
    const config = JSON.parse(kubeconfig([a.value, b.value], TOKEN));
    expect(config['current-context']).toBe('staging');
    expect(config.users).toEqual([{ name: KUBE_USER, user: { token: TOKEN } }]);
    expect(config.contexts).toEqual([
      { name: 'staging', context: { cluster: 'staging', user: KUBE_USER, namespace: 'web' } },
      { name: 'prod', context: { cluster: 'prod', user: KUBE_USER } },
    ]);
    expect(Buffer.from(config.clusters[0].cluster['certificate-authority-data'], 'base64').toString()).toBe(
      'BROKER CA',
    );
    expect(
      Buffer.from(config.clusters[1].cluster['certificate-authority-data'], 'base64').toString(),
    ).toContain('BEGIN CERTIFICATE');
  });

  it('refuses a server that is not https (the token is the session secret) and names bad fields', () => {
    expect(kubernetesSettings(kubeTarget('http://127.0.0.1:8080'), undefined)).toEqual({
      ok: false,
      error: 'target staging: connection.server must be https',
    });
    expect(kubernetesSettings(kubeTarget('https://x', { namespace: 'Bad_NS' }), undefined)).toMatchObject({
      ok: false,
    });
    expect(kubernetesSettings({ ...kubeTarget('x'), connection: {} as never }, undefined)).toEqual({
      ok: false,
      error: 'target staging: connection.server is missing',
    });
  });
});

describe('kubectl uses the kubeconfig (https API stand-in signed by a private CA)', () => {
  let pki: TestPki;
  let server: Server;
  let dir: string;
  const seen: string[] = [];
  beforeAll(async () => {
    pki = makeTestPki();
    server = createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ major: '1', minor: '31', gitVersion: 'v1.31.0' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    dir = mkdtempSync(join(tmpdir(), 'hoop-kube-'));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the session secret as bearer token and trusts the broker CA', async () => {
    const port = (server.address() as AddressInfo).port;
    const s = kubernetesSettings(kubeTarget(`https://127.0.0.1:${port}`, { namespace: 'web' }), pki.caPem);
    if (!s.ok) throw new Error(s.error);
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, kubeconfig([s.value], TOKEN), { mode: 0o600 });
    const env = { PATH: process.env.PATH ?? '', HOME: dir, KUBECONFIG: path };
    const { stdout } = await run('kubectl', ['get', '--raw', '/version'], { env });
    expect(JSON.parse(stdout)).toMatchObject({ gitVersion: 'v1.31.0' });
    expect(seen.at(-1)).toBe(`GET /version Bearer ${TOKEN}`);
    const ns = await run('kubectl', ['config', 'view', '--minify', '-o', 'jsonpath={..namespace}'], { env });
    expect(ns.stdout).toBe('web');
  });
});
