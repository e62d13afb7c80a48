// Kubernetes targets: a kubeconfig whose user is a bearer token (the session secret) and whose clusters
// are the broker's Kubernetes endpoints. Written as JSON: kubectl reads JSON kubeconfigs (YAML is a
// superset), and no YAML library has to ship in the bundle. Pure: returns the file's text.
import type { SessionTarget } from '../../service/api/schemas.js';
import { matches } from './postgres.js';

export type KubernetesSessionTarget = Extract<SessionTarget, { kind: 'kubernetes' }>;

export interface KubernetesSettings {
  target: string;
  /** https URL of the broker's endpoint for this target */
  server: string;
  /** CA (PEM) that signed the endpoint's certificate; none: publicly trusted */
  caPem: string | undefined;
  namespace: string | undefined;
}

/** the kubeconfig user every context shares: the session is one credential */
export const KUBE_USER = 'hoop-session';

export function kubernetesSettings(
  target: KubernetesSessionTarget,
  brokerCaPem: string | undefined,
): { ok: true; value: KubernetesSettings } | { ok: false; error: string } {
  const c = target.connection;
  const where = `target ${target.name}: connection`;
  if (!c || !matches(/./, c.server)) return { ok: false, error: `${where}.server is missing` };
  let server: URL;
  try {
    server = new URL(c.server);
  } catch {
    return { ok: false, error: `${where}.server is not a URL` };
  }
  // The token is the session secret: never send it in clear text.
  if (server.protocol !== 'https:') return { ok: false, error: `${where}.server must be https` };
  if (c.ca !== undefined && !matches(/-----BEGIN CERTIFICATE-----/, c.ca))
    return { ok: false, error: `${where}.ca is not a PEM certificate` };
  if (c.namespace !== undefined && !matches(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, c.namespace))
    return { ok: false, error: `${where}.namespace is not a namespace name` };
  return {
    ok: true,
    value: { target: target.name, server: c.server, caPem: c.ca ?? brokerCaPem, namespace: c.namespace },
  };
}

/** One cluster and one context per target (named after it), the first target as the current context. */
export function kubeconfig(targets: readonly KubernetesSettings[], token: string): string {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: targets.map((t) => ({
      name: t.target,
      cluster: {
        server: t.server,
        ...(t.caPem ? { 'certificate-authority-data': Buffer.from(t.caPem).toString('base64') } : {}),
      },
    })),
    users: [{ name: KUBE_USER, user: { token } }],
    contexts: targets.map((t) => ({
      name: t.target,
      context: { cluster: t.target, user: KUBE_USER, ...(t.namespace ? { namespace: t.namespace } : {}) },
    })),
    'current-context': targets[0]?.target ?? '',
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}
