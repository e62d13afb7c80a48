// The Kubernetes gateway end to end: the API server stand-in, a test OIDC issuer, the real broker
// with a kubernetes target, sessions opened over HTTP, and the kubeconfig the action writes for them
// (src/connect/kubernetes.ts), used by the real kubectl.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionCreated, Transcript } from '../../../service/api/schemas.js';
import type { Config, Policy } from '../../../service/config/schema.js';
import { kubeconfig, kubernetesSettings } from '../../../src/connect/kubernetes.js';
import { startBroker, type TestBroker } from '../../fixtures/broker.js';
import {
  type KubeApiServer,
  type KubeApiServerOptions,
  startKubeApiServer,
} from '../../fixtures/kube-apiserver.js';
import { type OidcIssuer, startOidcIssuer } from '../../fixtures/oidc-issuer.js';

export const AUD = 'https://hoop.k8s.test';
export const UPSTREAM_TOKEN = 'upstream-token-never-shown-0123456789';

export interface Harness {
  api: KubeApiServer;
  issuer: OidcIssuer;
  broker: TestBroker;
  dir: string;
  /** open a session for a token with these claims; returns it and its kubeconfig path */
  session(claims: Record<string, string>): Promise<{ s: SessionCreated; kubeconfig: string }>;
  kubectl(
    kc: string,
    args: string[],
    opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  spawnKubectl(kc: string, args: string[], env?: Record<string, string>): ChildProcess;
  transcript(s: SessionCreated): Promise<Transcript>;
  revoke(s: SessionCreated): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(opts: {
  policies: Policy[];
  api?: KubeApiServerOptions;
  impersonate?: boolean;
  maxStreams?: number;
}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-k8s-'));
  const api = await startKubeApiServer({ tokens: { [UPSTREAM_TOKEN]: 'hoop-broker' }, ...opts.api });
  const issuer = await startOidcIssuer({ audience: AUD });
  writeFileSync(join(dir, 'upstream-ca.pem'), api.caPem);
  const config: Config = {
    listen: { http: { port: 0, host: '127.0.0.1' }, kubernetes: { port: 0, host: '127.0.0.1' } },
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'staging',
        kind: 'kubernetes',
        server: api.url,
        ca_file: join(dir, 'upstream-ca.pem'),
        credentials: { token: { env: 'K8S_UPSTREAM_TOKEN' } },
        namespace: 'default',
        ...(opts.maxStreams ? { max_streams_per_session: opts.maxStreams } : {}),
        ...(opts.impersonate
          ? { impersonate: { user: 'github:{repository}', groups: ['gh-ref:{ref}', 'gh-env:{environment}'] } }
          : {}),
      },
    ],
    policies: opts.policies,
  };
  const broker = await startBroker({ config, env: { K8S_UPSTREAM_TOKEN: UPSTREAM_TOKEN } });
  const env = (kc: string) => ({
    PATH: process.env.PATH,
    HOME: dir,
    KUBECONFIG: kc,
    KUBECACHEDIR: join(dir, 'cache'),
  });
  return {
    api,
    issuer,
    broker,
    dir,
    async session(claims) {
      const res = await fetch(`${broker.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ oidc_token: await issuer.mint(claims) }),
      });
      if (res.status !== 201) throw new Error(`session refused: ${res.status} ${await res.text()}`);
      const s = (await res.json()) as SessionCreated;
      const target = s.targets.find((t) => t.kind === 'kubernetes');
      if (!target) throw new Error('no kubernetes target granted');
      const settings = kubernetesSettings(target, s.ca_pem);
      if (!settings.ok) throw new Error(settings.error);
      const path = join(dir, `${s.id}.kubeconfig`);
      writeFileSync(path, kubeconfig([settings.value], s.secret), { mode: 0o600 });
      return { s, kubeconfig: path };
    },
    kubectl(kc, args, o = {}) {
      return new Promise((resolve) => {
        const child = execFile(
          'kubectl',
          args,
          { env: { ...env(kc), ...o.env }, timeout: o.timeoutMs ?? 20_000, maxBuffer: 64 * 1024 * 1024 },
          (err, stdout, stderr) => {
            const code = err
              ? typeof (err as { code?: unknown }).code === 'number'
                ? (err as { code: number }).code
                : 1
              : 0;
            resolve({ code, stdout, stderr });
          },
        );
        if (o.input !== undefined) child.stdin?.end(o.input);
        else child.stdin?.end();
      });
    },
    spawnKubectl(kc, args, extra = {}) {
      return spawn('kubectl', args, { env: { ...env(kc), ...extra }, stdio: ['pipe', 'pipe', 'pipe'] });
    },
    async transcript(s) {
      const res = await fetch(`${broker.url}/v1/sessions/${s.id}/transcript`, {
        headers: { authorization: `Bearer ${s.secret}` },
      });
      return (await res.json()) as Transcript;
    },
    async revoke(s) {
      const res = await fetch(`${broker.url}/v1/sessions/${s.id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${s.secret}` },
      });
      if (res.status !== 200) throw new Error(`revoke: ${res.status}`);
    },
    async close() {
      await broker.close();
      await api.close();
      await issuer.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
