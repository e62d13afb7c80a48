// The upstream side: one TLS agent per target (its CA, its client certificate), the headers the
// broker sends instead of the client's credential, and impersonation built from token claims.
import { Agent } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { KubernetesImpersonation, KubernetesTarget } from '../../config/targets/kubernetes.js';
import type { Claims } from '../../sessions/types.js';

export interface KubernetesUpstream {
  target: KubernetesTarget;
  /** the API server's base URL (its path is a prefix, as in a kubeconfig) */
  base: URL;
  agent: Agent;
  /** TLS options for connections the agent does not make (upgrades through `ws` or raw sockets) */
  tls: { ca?: string; cert?: string; key?: string; servername?: string };
  /** bearer token, when the credentials are a token */
  token: string | undefined;
}

export interface UpstreamMaterial {
  caPem?: string | undefined;
  token?: string | undefined;
  certPem?: string | undefined;
  keyPem?: string | undefined;
}

export function makeUpstream(target: KubernetesTarget, m: UpstreamMaterial): KubernetesUpstream {
  const base = new URL(target.server);
  const tls = {
    ...(m.caPem ? { ca: m.caPem } : {}),
    ...(m.certPem ? { cert: m.certPem } : {}),
    ...(m.keyPem ? { key: m.keyPem } : {}),
    ...(target.tls_server_name ? { servername: target.tls_server_name } : {}),
  };
  return {
    target,
    base,
    agent: new Agent({ keepAlive: true, maxSockets: 256, ...tls }),
    tls,
    token: m.token,
  };
}

/** The upstream URL of a request: the server's path prefix + the API path + the query. */
export function upstreamUrl(u: KubernetesUpstream, apiPath: string, search: string): URL {
  const url = new URL(u.base.toString());
  url.pathname = `${u.base.pathname.replace(/\/+$/, '')}${apiPath}`;
  url.search = search;
  return url;
}

/** Headers never passed on: hop-by-hop ones, the client's credential, and any impersonation it asked for. */
const DROPPED = new Set([
  'host',
  'authorization',
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'cookie',
]);

export function isImpersonationHeader(name: string): boolean {
  return name.toLowerCase().startsWith('impersonate-');
}

/** Request-header authentication (front proxy): an identity only the broker may assert, never passed on. */
const isRequestHeaderIdentity = (name: string): boolean => name.toLowerCase().startsWith('x-remote-');

/** `{claim}` placeholders filled from the claims; null when one is missing (or not a plain value). */
export function fillTemplate(template: string, claims: Claims): string | null {
  let missing = false;
  const out = template.replace(/\{([A-Za-z0-9_.-]+)\}/g, (_m, name: string) => {
    const v = claims[name];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
    missing = true;
    return '';
  });
  return missing ? null : out;
}

export type Impersonation = { ok: true; user: string; groups: string[] } | { ok: false; message: string };

export function impersonation(spec: KubernetesImpersonation, claims: Claims): Impersonation {
  const user = fillTemplate(spec.user, claims);
  if (user === null || user === '')
    return {
      ok: false,
      message: `the session's token lacks a claim that impersonate.user (${spec.user}) needs`,
    };
  const groups = (spec.groups ?? []).flatMap((g) => {
    const v = fillTemplate(g, claims);
    return v ? [v] : [];
  });
  return { ok: true, user, groups };
}

export function upstreamHeaders(
  u: KubernetesUpstream,
  incoming: IncomingHttpHeaders,
  imp: { user: string; groups: string[] } | null,
  overrides: { accept?: string; dropEncoding?: boolean } = {},
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(incoming)) {
    if (v === undefined || DROPPED.has(k) || isImpersonationHeader(k) || isRequestHeaderIdentity(k)) continue;
    out[k] = v;
  }
  out.host = u.base.host;
  if (u.token) out.authorization = `Bearer ${u.token}`;
  if (imp) {
    out['impersonate-user'] = imp.user;
    if (imp.groups.length) out['impersonate-group'] = imp.groups;
  }
  if (overrides.accept !== undefined) out.accept = overrides.accept;
  if (overrides.dropEncoding) delete out['accept-encoding'];
  return out;
}
