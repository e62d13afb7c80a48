// @kubernetes/client-node through the broker with the kubeconfig the action writes: typed reads,
// masked Secrets (object, list, watch), a denial as an ApiException carrying the Status, exec over
// WebSocket with its exit status, and detectors on ConfigMap values and pod logs.
import { request } from 'node:https';
import { PassThrough, Writable } from 'node:stream';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './harness.js';

let h: Harness;
let kc: k8s.KubeConfig;
const EMAIL = 'alice.ops@example.com';

beforeAll(async () => {
  h = await startHarness({
    policies: [
      {
        name: 'deploy',
        when: { ref: 'refs/heads/main' },
        grants: [
          {
            target: 'staging',
            access: 'write',
            mask: [{ detector: 'email' }],
            kubernetes: { presets: ['debug'] },
          },
        ],
      },
    ],
  });
  h.api.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: { containers: [{ name: 'main', image: 'nginx' }] },
  });
  h.api.put({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'api-key', namespace: 'default' },
    stringData: { key: 'sk-live-123456' },
  });
  h.api.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'contacts', namespace: 'default' },
    data: { oncall: `page ${EMAIL}`, plain: 'nothing here' },
  });
  h.api.appendLog('default', 'web', `user ${EMAIL} logged in\n`);
  const { kubeconfig } = await h.session({ ref: 'refs/heads/main' });
  kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
});

afterAll(async () => {
  await h?.close();
});

describe('@kubernetes/client-node through the broker', () => {
  it('reads pods; Secrets come back masked, one by one and in lists', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const pods = await core.listNamespacedPod({ namespace: 'default' });
    expect(pods.items.map((p) => p.metadata?.name)).toContain('web');
    const s = await core.readNamespacedSecret({ name: 'api-key', namespace: 'default' });
    expect(s.data?.key).toBe('KioqKioqKio=');
    const list = await core.listNamespacedSecret({ namespace: 'default' });
    expect(JSON.stringify(list)).not.toContain(Buffer.from('sk-live-123456').toString('base64'));
  });

  it('a watch of Secrets delivers masked events', async () => {
    const watch = new k8s.Watch(kc);
    const seen: k8s.V1Secret[] = [];
    const req = await watch.watch(
      '/api/v1/namespaces/default/secrets',
      {},
      (_type, obj: k8s.V1Secret) => seen.push(obj),
      () => undefined,
    );
    h.api.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'api-key', namespace: 'default' },
      stringData: { key: 'sk-live-999' },
    });
    const end = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    req.abort();
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const s of seen) expect(s.data?.key).toBe('KioqKioqKio=');
  });

  it('a denial is an ApiException whose body is the Status', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const err = await core
      .createNamespacedServiceAccountToken({
        name: 'default',
        namespace: 'default',
        body: { spec: { audiences: [] } },
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(k8s.ApiException);
    const e = err as k8s.ApiException<string>;
    expect(e.code).toBe(403);
    const status = JSON.parse(e.body) as { reason: string; message: string };
    expect(status.reason).toBe('Forbidden');
    expect(status.message).toContain('serviceaccounts/token');
  });

  it('exec over WebSocket: output and exit status', async () => {
    const exec = new k8s.Exec(kc);
    let out = '';
    const stdout = new Writable({ write: (c, _e, cb) => ((out += c.toString()), cb()) });
    const status = await new Promise<k8s.V1Status>((resolve, reject) => {
      exec
        .exec('default', 'web', 'main', ['sh', '-c', 'echo hello; exit 2'], stdout, null, null, false, (st) =>
          resolve(st),
        )
        .catch(reject);
    });
    expect(out).toBe('hello\n');
    expect(status.status).toBe('Failure');
    expect(status.details?.causes?.[0]).toMatchObject({ reason: 'ExitCode', message: '2' });
  });

  it('detectors mask ConfigMap values and pod logs', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const cm = await core.readNamespacedConfigMap({ name: 'contacts', namespace: 'default' });
    expect(cm.data).toEqual({ oncall: 'page ***@***.***', plain: 'nothing here' });
    const log = await core.readNamespacedPodLog({ name: 'web', namespace: 'default' });
    expect(log).toBe('user ***@***.*** logged in\n');
    const follow = new PassThrough();
    let text = '';
    follow.on('data', (c: Buffer) => (text += c.toString()));
    const req = await new k8s.Log(kc).log('default', 'web', 'main', follow, { follow: true });
    h.api.appendLog('default', 'web', `second ${EMAIL}\n`);
    const end = Date.now() + 5000;
    while (!text.includes('second') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    req.abort();
    expect(text).toContain('second ***@***.***');
    expect(text).not.toContain(EMAIL);
  });
});

function raw(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; body: string }> {
  const cluster = kc.getCurrentCluster()!;
  const user = kc.getCurrentUser()!;
  return new Promise((resolve, reject) => {
    const req = request(
      `${cluster.server}${path}`,
      {
        ca: Buffer.from(cluster.caData!, 'base64'),
        headers: { authorization: `Bearer ${user.token}`, ...headers },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('latin1')));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('raw requests', () => {
  it('a Secret asked for as protobuf only is served as masked JSON', async () => {
    const before = h.api.requests.length;
    const r = await raw('/api/v1/namespaces/default/secrets/api-key', {
      accept: 'application/vnd.kubernetes.protobuf',
    });
    expect(r.status).toBe(200);
    expect(r.type).toContain('application/json');
    expect(JSON.parse(r.body).data.key).toBe('KioqKioqKio=');
    const seen = h.api.requests.slice(before).find((q) => q.path.endsWith('/secrets/api-key'));
    expect(seen?.headers.accept).toBe('application/json');
  });

  it('an encoded slash in the path is refused before anything goes upstream', async () => {
    const before = h.api.requests.length;
    const r = await raw('/api/v1/namespaces/default/pods%2Fweb%2Fexec?command=ls');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ kind: 'Status', reason: 'BadRequest' });
    expect(h.api.requests.length).toBe(before);
  });

  it('without the session secret: 401 Status, nothing upstream', async () => {
    const cluster = kc.getCurrentCluster()!;
    const before = h.api.requests.length;
    const r = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${cluster.server}/api/v1/namespaces/default/pods`,
        { ca: Buffer.from(cluster.caData!, 'base64'), headers: { authorization: 'Bearer hoop_wrong' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(r).toBe(401);
    expect(h.api.requests.length).toBe(before);
  });
});

describe('upgrades that are not container streams', () => {
  it('a watch of Secrets over WebSocket is refused (it would pass the masking)', async () => {
    const cluster = kc.getCurrentCluster()!;
    const user = kc.getCurrentUser()!;
    const { WebSocket } = await import('ws');
    const before = h.api.requests.length;
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(
        `${cluster.server.replace('https:', 'wss:')}/api/v1/namespaces/default/secrets?watch=true`,
        {
          ca: Buffer.from(cluster.caData!, 'base64'),
          headers: { authorization: `Bearer ${user.token}` },
        },
      );
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('error', () => undefined);
    });
    expect(status).toBe(400);
    expect(h.api.requests.slice(before).some((q) => q.path.endsWith('/secrets'))).toBe(false);
  });
});
