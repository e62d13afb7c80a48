// The real kubectl through the broker's Kubernetes gateway to the API server stand-in, with the
// kubeconfig the action writes: reads, writes, denials as Status objects, Secret masking in every
// output format, logs -f, exec, wait, auth can-i, the transcript, and revocation closing a watch.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideAsAdmin, pendingApproval } from '../../fixtures/approvals.js';
import { type Harness, startHarness, UPSTREAM_TOKEN } from './harness.js';

let h: Harness;
const PASSWORD = 'hunter2-super-secret';
const PASSWORD_B64 = Buffer.from(PASSWORD).toString('base64');

beforeAll(async () => {
  h = await startHarness({
    impersonate: true,
    policies: [
      {
        name: 'pr-read',
        when: { event_name: 'pull_request' },
        grants: [
          {
            target: 'staging',
            access: 'read',
            kubernetes: { deny: [{ resources: ['configmaps'], names: ['forbidden-*'] }] },
          },
        ],
      },
      {
        name: 'main-deploy',
        when: { ref: 'refs/heads/main', event_name: 'push' },
        grants: [
          {
            target: 'staging',
            access: 'write',
            kubernetes: {
              presets: ['debug'],
              approve: [{ verbs: ['delete'], namespaces: ['kube-system'] }],
              ports: [8080],
              record_output: true,
            },
          },
        ],
      },
    ],
  });
  h.api.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } },
    spec: { containers: [{ name: 'main', image: 'nginx' }] },
  });
  h.api.put({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'db',
      namespace: 'default',
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          stringData: { password: PASSWORD },
        }),
      },
    },
    stringData: { password: PASSWORD },
  });
  h.api.appendLog('default', 'web', 'started\n');
});

afterAll(async () => {
  await h?.close();
});

const read = () => h.session({ event_name: 'pull_request', ref: 'refs/pull/1/merge' });
const deploy = () => h.session({ event_name: 'push', ref: 'refs/heads/main' });

describe('kubectl through the broker', () => {
  it('get and describe; what reached the API server is the broker credential and identity', async () => {
    const { s, kubeconfig } = await read();
    const before = h.api.requests.length;
    const r = await h.kubectl(kubeconfig, ['get', 'pods']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^NAME\s+READY\s+STATUS/);
    expect(r.stdout).toMatch(/web\s+1\/1\s+Running/);
    const d = await h.kubectl(kubeconfig, ['describe', 'pod', 'web']);
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('Node:');
    const seen = h.api.requests.slice(before);
    expect(seen.length).toBeGreaterThan(2);
    for (const q of seen) {
      expect(q.headers.authorization).toBe(`Bearer ${UPSTREAM_TOKEN}`);
      expect(q.headers['impersonate-user']).toBe('github:octo-org/octo-repo');
      expect(JSON.stringify(q.headers)).not.toContain(s.secret);
    }
    expect(
      seen.some(
        (q) => q.path === '/api/v1/namespaces/default/pods' && /as=Table/.test(String(q.headers.accept)),
      ),
    ).toBe(true);
    const t = await h.transcript(s);
    const gets = t.events.filter((e) => e.kind === 'k8s.request');
    expect(gets.some((e) => e.operation.verb === 'list' && e.operation.resource === 'pods')).toBe(true);
    expect(JSON.stringify(t)).not.toContain(UPSTREAM_TOKEN);
  });

  it('denies like RBAC: a Status 403 naming the rule, recorded, nothing sent upstream', async () => {
    const { s, kubeconfig } = await read();
    const before = h.api.requests.length;
    const del = await h.kubectl(kubeconfig, ['delete', 'pod', 'web']);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(
      /Error from server \(Forbidden\): hoop: delete pods "web" in namespace "default" is not allowed/,
    );
    const sec = await h.kubectl(kubeconfig, ['get', 'secret', 'db']);
    expect(sec.stderr).toContain('preset read never includes Secrets');
    const cm = await h.kubectl(kubeconfig, ['get', 'configmap', 'forbidden-one']);
    expect(cm.stderr).toContain('kubernetes.deny[0] (resources [configmaps] names [forbidden-*])');
    const ex = await h.kubectl(kubeconfig, ['exec', 'web', '--', 'echo', 'hi']);
    expect(ex.code).not.toBe(0);
    expect(ex.stderr).toContain('exec pods/exec "web"');
    expect(
      h.api.requests
        .slice(before)
        .some((q) => q.method === 'DELETE' || q.path.includes('/secrets') || q.path.includes('/exec')),
    ).toBe(false);
    const t = await h.transcript(s);
    expect(t.events.filter((e) => e.decision === 'deny').length).toBeGreaterThanOrEqual(4);
  });

  it("auth can-i: the broker says no from its policy, yes is the cluster's", async () => {
    const { kubeconfig } = await read();
    const no = await h.kubectl(kubeconfig, ['auth', 'can-i', 'delete', 'pods']);
    expect(no.stdout.trim()).toMatch(/^no - hoop: delete pods in namespace "default" is not allowed/);
    const yes = await h.kubectl(kubeconfig, ['auth', 'can-i', 'list', 'pods']);
    expect(yes.stdout.trim()).toBe('yes');
    const who = await h.kubectl(kubeconfig, ['auth', 'whoami', '-o', 'json']);
    expect(JSON.parse(who.stdout).status.userInfo.username).toBe('github:octo-org/octo-repo');
  });

  it('a client impersonation header is refused', async () => {
    const { s, kubeconfig } = await read();
    const before = h.api.requests.length;
    const r = await h.kubectl(kubeconfig, ['get', 'pods', '--as', 'system:admin']);
    // kubectl words a refused discovery request as "Forbidden: unknown"; the transcript has the reason
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Forbidden');
    expect(h.api.requests.slice(before).some((q) => q.headers['impersonate-user'] === 'system:admin')).toBe(
      false,
    );
    const t = await h.transcript(s);
    expect(
      t.events.some(
        (e) =>
          e.decision === 'deny' &&
          e.reasons[0]?.includes("the client's own impersonation headers are refused (impersonate-user)"),
      ),
    ).toBe(true);
  });

  it('masks Secret values in every output format', async () => {
    const { s, kubeconfig } = await deploy();
    const outputs = await Promise.all([
      h.kubectl(kubeconfig, ['get', 'secret', 'db', '-o', 'json']),
      h.kubectl(kubeconfig, ['get', 'secret', 'db', '-o', 'yaml']),
      h.kubectl(kubeconfig, ['get', 'secrets']),
      h.kubectl(kubeconfig, ['get', 'secrets', '-o', 'wide']),
      h.kubectl(kubeconfig, ['get', 'secret', 'db', '-o', 'jsonpath={.data.password}']),
      h.kubectl(kubeconfig, ['get', 'secrets', '-o', 'json']),
      h.kubectl(kubeconfig, ['describe', 'secret', 'db']),
    ]);
    for (const o of outputs) {
      expect(o.code, o.stderr).toBe(0);
      expect(o.stdout).not.toContain(PASSWORD);
      expect(o.stdout).not.toContain(PASSWORD_B64);
    }
    expect(outputs[1]!.stdout).toContain('password: KioqKioqKio=');
    expect(outputs[4]!.stdout).toBe('KioqKioqKio=');
    expect(outputs[2]!.stdout).toMatch(/db\s+Opaque\s+1/);
    // watch: the first events and the later ones
    const w = h.spawnKubectl(kubeconfig, ['get', 'secrets', '-w', '-o', 'json']);
    let out = '';
    w.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor(() => out.includes('"name": "db"'));
    h.api.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db', namespace: 'default' },
      stringData: { password: `${PASSWORD}-2` },
    });
    await waitFor(() => (out.match(/"name": "db"/g) ?? []).length >= 2);
    w.kill();
    expect(out).not.toContain(PASSWORD);
    expect(out).not.toContain(Buffer.from(`${PASSWORD}-2`).toString('base64'));
    const t = await h.transcript(s);
    expect(t.events.some((e) => (e.masked ?? 0) > 0)).toBe(true);
    // the Secret was asked for as JSON even if the client would take protobuf
    expect(
      h.api.requests
        .filter((q) => q.path.includes('/secrets'))
        .every((q) => !String(q.headers.accept).includes('protobuf')),
    ).toBe(true);
  });

  it('apply (client-side and server-side), scale, wait, delete', async () => {
    const { s, kubeconfig } = await deploy();
    const file = join(h.dir, 'app.yaml');
    const manifest = (image: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: default }
spec:
  replicas: 2
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api } }
    spec: { containers: [{ name: api, image: "${image}" }] }
`;
    writeFileSync(file, manifest('nginx:1'));
    expect((await h.kubectl(kubeconfig, ['apply', '-f', file])).stdout).toContain(
      'deployment.apps/api created',
    );
    writeFileSync(file, manifest('nginx:2'));
    expect((await h.kubectl(kubeconfig, ['apply', '-f', file])).stdout).toContain(
      'deployment.apps/api configured',
    );
    expect(h.api.getObject('deployments', 'default', 'api', 'apps')?.spec).toMatchObject({
      template: { spec: { containers: [{ image: 'nginx:2' }] } },
    });
    writeFileSync(file, manifest('nginx:3'));
    expect((await h.kubectl(kubeconfig, ['apply', '--server-side', '-f', file])).stdout).toContain(
      'serverside-applied',
    );
    expect((await h.kubectl(kubeconfig, ['scale', 'deployment/api', '--replicas=3'])).stdout).toContain(
      'scaled',
    );
    const w = await h.kubectl(kubeconfig, [
      'wait',
      '--for=condition=Available',
      'deployment/api',
      '--timeout=10s',
    ]);
    expect(w.stdout).toContain('condition met');
    const del = await h.kubectl(kubeconfig, ['delete', 'deployment', 'api']);
    expect(del.stdout).toContain('deleted');
    expect(h.api.getObject('deployments', 'default', 'api', 'apps')).toBeUndefined();
    // an approve rule holds the request for the approvals service; denied, kubectl hears who and why
    const holding = h.kubectl(kubeconfig, ['delete', 'pod', 'x', '-n', 'kube-system']);
    const a = await pendingApproval(h.broker.broker, s.id);
    expect(a).toMatchObject({ operation_kind: 'k8s.request' });
    expect(a.summary).toContain('delete pods x in kube-system');
    await decideAsAdmin(h.broker.broker, a.id, 'deny', 'not in kube-system');
    const held = await holding;
    expect(held.stderr).toContain('needs approval');
    expect(held.stderr).toContain(`approval ${a.id} denied by admin:test: not in kube-system`);
  });

  it('logs -f streams as lines arrive', async () => {
    const { kubeconfig } = await read();
    const p = h.spawnKubectl(kubeconfig, ['logs', '-f', 'web']);
    let out = '';
    p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor(() => out.includes('started'));
    h.api.appendLog('default', 'web', 'line two\n');
    await waitFor(() => out.includes('line two'));
    p.kill();
  });

  it('exec over WebSocket: streams, exit codes, stdin; recorded with output', async () => {
    const { s, kubeconfig } = await deploy();
    const ok = await h.kubectl(kubeconfig, [
      'exec',
      'web',
      '--',
      'sh',
      '-c',
      'echo out; echo err >&2; exit 3',
    ]);
    expect(ok.code).toBe(3);
    expect(ok.stdout).toBe('out\n');
    expect(ok.stderr).toContain('err');
    const cat = await h.kubectl(kubeconfig, ['exec', '-i', 'web', '--', 'cat'], { input: 'from stdin\n' });
    expect(cat.code).toBe(0);
    expect(cat.stdout).toBe('from stdin\n');
    expect(h.api.upgrades.filter((u) => u.transport === 'websocket').map((u) => u.protocol)).toContain(
      'v5.channel.k8s.io',
    );
    let execs: Awaited<ReturnType<Harness['transcript']>>['events'] = [];
    await waitForAsync(async () => {
      execs = (await h.transcript(s)).events.filter(
        (e) => e.kind === 'k8s.request' && e.operation.subresource === 'exec',
      );
      return execs.length === 2;
    });
    expect(execs[0]!.operation).toMatchObject({
      command: ['sh', '-c', 'echo out; echo err >&2; exit 3'],
      exit_code: 3,
      transport: 'websocket',
      protocol: 'v5.channel.k8s.io',
    });
    expect(String(execs[0]!.operation.asciicast)).toContain('"o","out\\n"');
    expect(execs[1]!.operation).toMatchObject({ exit_code: 0, stdin_bytes: 11, stdout_bytes: 11 });
  });

  it('revocation closes a live watch and a log stream within a second', async () => {
    const { s, kubeconfig } = await read();
    const w = h.spawnKubectl(kubeconfig, ['get', 'pods', '-w']);
    const logs = h.spawnKubectl(kubeconfig, ['logs', '-f', 'web']);
    let out = '';
    let logOut = '';
    w.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    logs.stdout!.on('data', (c: Buffer) => (logOut += c.toString()));
    await waitFor(() => out.includes('web') && logOut.includes('started'));
    const exited = new Promise<number>((r) => w.on('exit', (code) => r(code ?? -1)));
    const logsExited = new Promise<number>((r) => logs.on('exit', (code) => r(code ?? -1)));
    const t0 = Date.now();
    await h.revoke(s);
    await exited; // kubectl ends a watch whose stream closed (exit 0)
    await logsExited;
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(h.broker.broker.k8sPort).not.toBeNull();
    const again = await h.kubectl(kubeconfig, ['get', 'pods']);
    expect(again.stderr).toMatch(/Unauthorized|revoked/);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForAsync(cond: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
