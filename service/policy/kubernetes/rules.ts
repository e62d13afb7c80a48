// Kubernetes grants: which request attributes a session may use. Pure.
//
// Order: a matching `deny` rule denies; else a matching `approve` rule holds; else the grant's
// presets or an `allow` rule allow; else the request is denied ("no rule allows"). Discovery
// (GET /api, /apis, /api/v1, /openapi/…, /version) is always allowed: kubectl cannot work without
// it, and it carries no object data.
import type { Access, Detector, MaskRule } from '../../config/schema.js';
import type {
  KubernetesGrantRules,
  KubernetesPreset,
  KubernetesRule,
} from '../../config/targets/kubernetes.js';
import type { KubernetesRequestInfo } from './request-info.js';
import { policyVerb } from './request-info.js';

export type KubernetesDecision =
  | { effect: 'allow'; reasons: string[]; rule?: string }
  | { effect: 'deny' | 'hold'; reasons: string[]; rule: string };

export interface KubernetesGrant {
  access: Access;
  mask?: readonly MaskRule[] | undefined;
  kubernetes?: KubernetesGrantRules | undefined;
}

const READ_VERBS = ['get', 'list', 'watch'];
const WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'];
/** Reviews a client asks about itself (kubectl auth can-i, auth whoami): no cluster data. */
const SELF_REVIEWS = ['selfsubjectaccessreviews', 'selfsubjectrulesreviews', 'selfsubjectreviews'];

/**
 * The presets, as rules:
 *   read   get, list, watch and log on every resource except Secrets; self reviews (auth can-i)
 *   write  read, and get/list/watch on Secrets (their values masked), and create, update, patch,
 *          delete, deletecollection on everything, Secrets included, except creating service
 *          account tokens (serviceaccounts/token: a credential that outlives the session)
 *   debug  exec, attach, portforward and log on pods, get/list/watch on pods
 *   admin  every verb on every resource and non-resource path (Secret values still masked)
 */
export const PRESETS: Record<KubernetesPreset, { allow: KubernetesRule[]; except?: KubernetesRule[] }> = {
  read: {
    allow: [
      { verbs: [...READ_VERBS, 'log'], resources: ['*', '*/*'] },
      { verbs: ['create'], resources: SELF_REVIEWS },
    ],
    except: [{ resources: ['secrets', 'secrets/*'] }],
  },
  write: {
    allow: [{ verbs: [...READ_VERBS, 'log', ...WRITE_VERBS], resources: ['*', '*/*'] }],
    // a service account token is a credential of its own, outliving the session
    except: [{ resources: ['serviceaccounts/token'] }],
  },
  debug: {
    allow: [
      { verbs: ['exec', 'attach', 'portforward', 'log', ...READ_VERBS], resources: ['pods', 'pods/*'] },
      { verbs: ['create'], resources: SELF_REVIEWS },
    ],
  },
  admin: { allow: [{ verbs: ['*'], resources: ['*', '*/*'] }, { verbs: ['*'] }] },
};

const ACCESS_PRESET: Record<Access, KubernetesPreset> = { read: 'read', write: 'write', admin: 'admin' };

const DISCOVERY = [
  /^\/api\/?$/,
  /^\/apis\/?$/,
  /^\/version\/?$/,
  /^\/openapi\/v[23](\/.*)?$/,
  /^\/(healthz|livez|readyz)\/?$/,
];
/** /api/v1 and /apis/{group}[/{version}]: discovery documents, non-resource by the API server's rules */
const GROUP_DISCOVERY = [/^\/api\/[^/]+\/?$/, /^\/apis\/[^/]+(\/[^/]+)?\/?$/];

/** `*` any run of characters (slashes included), `?` one; everything else literal. */
export function globMatch(pattern: string, text: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === text;
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return re.test(text);
}

/** Does a rule's resource pattern name this request's resource? `deployments` matches in any group. */
function resourceMatches(pattern: string, resource: string, group: string, subresource: string): boolean {
  const [base, sub] = pattern.split('/', 2) as [string, string | undefined];
  if (sub === undefined && subresource !== '') return false;
  if (sub !== undefined && !globMatch(sub, subresource)) return false;
  if (base === '*') return true;
  const dot = base.indexOf('.');
  if (dot === -1) return globMatch(base, resource);
  return globMatch(base.slice(0, dot), resource) && globMatch(base.slice(dot + 1), group);
}

export function ruleMatches(rule: KubernetesRule, info: KubernetesRequestInfo): boolean {
  const verb = policyVerb(info);
  if (rule.verbs && !rule.verbs.some((v) => v === '*' || v === verb)) return false;
  if (!info.resourceRequest) {
    // non-resource paths (/metrics, /logs, …): only rules naming no resources, namespaces or names
    return !rule.resources && !rule.namespaces && !rule.names;
  }
  if (
    rule.resources &&
    !rule.resources.some((r) => resourceMatches(r, info.resource, info.apiGroup, info.subresource))
  )
    return false;
  if (
    rule.namespaces &&
    (info.namespace === '' || !rule.namespaces.some((n) => globMatch(n, info.namespace)))
  )
    return false;
  if (rule.names && (info.name === '' || !rule.names.some((n) => globMatch(n, info.name)))) return false;
  return true;
}

export function describeRule(rule: KubernetesRule): string {
  const parts: string[] = [];
  if (rule.verbs) parts.push(`verbs [${rule.verbs.join(', ')}]`);
  if (rule.resources) parts.push(`resources [${rule.resources.join(', ')}]`);
  if (rule.namespaces) parts.push(`namespaces [${rule.namespaces.join(', ')}]`);
  if (rule.names) parts.push(`names [${rule.names.join(', ')}]`);
  return parts.join(' ');
}

/** How the request reads in a message: `delete pods "web" in namespace "prod"`. */
export function describeRequest(info: KubernetesRequestInfo): string {
  if (!info.resourceRequest) return `${info.verb} ${info.path}`;
  const res = `${info.resource}${info.apiGroup ? `.${info.apiGroup}` : ''}${info.subresource ? `/${info.subresource}` : ''}`;
  return `${policyVerb(info)} ${res}${info.name ? ` "${info.name}"` : ''}${info.namespace ? ` in namespace "${info.namespace}"` : info.resource === 'namespaces' ? '' : ' (cluster-wide)'}`;
}

export function presetsOf(grant: KubernetesGrant): KubernetesPreset[] {
  return [...new Set([ACCESS_PRESET[grant.access], ...(grant.kubernetes?.presets ?? [])])];
}

export function decideKubernetesRequest(
  grant: KubernetesGrant,
  info: KubernetesRequestInfo,
): KubernetesDecision {
  const what = describeRequest(info);
  const k = grant.kubernetes ?? {};
  for (const [i, rule] of (k.deny ?? []).entries()) {
    if (ruleMatches(rule, info))
      return {
        effect: 'deny',
        rule: `kubernetes.deny[${i}]`,
        reasons: [`${what} is denied by kubernetes.deny[${i}] (${describeRule(rule)})`],
      };
  }
  if (!info.resourceRequest && (info.verb === 'get' || info.verb === 'head')) {
    if (DISCOVERY.some((re) => re.test(info.path)) || GROUP_DISCOVERY.some((re) => re.test(info.path)))
      return { effect: 'allow', reasons: [] };
  }
  for (const [i, rule] of (k.approve ?? []).entries()) {
    if (ruleMatches(rule, info))
      return {
        effect: 'hold',
        rule: `kubernetes.approve[${i}]`,
        reasons: [`${what} needs approval (kubernetes.approve[${i}]: ${describeRule(rule)})`],
      };
  }
  for (const preset of presetsOf(grant)) {
    const p = PRESETS[preset];
    if (p.except?.some((r) => ruleMatches(r, info))) continue;
    if (p.allow.some((r) => ruleMatches(r, info))) return { effect: 'allow', reasons: [`preset ${preset}`] };
  }
  for (const [i, rule] of (k.allow ?? []).entries()) {
    if (ruleMatches(rule, info)) return { effect: 'allow', reasons: [`kubernetes.allow[${i}]`] };
  }
  const presets = presetsOf(grant).join(', ');
  const secretNote =
    info.resourceRequest &&
    info.resource === 'secrets' &&
    presetsOf(grant).every((p) => p === 'read' || p === 'debug')
      ? ' (preset read never includes Secrets)'
      : '';
  return {
    effect: 'deny',
    rule: `access: ${grant.access}`,
    reasons: [
      `${what} is not allowed: no rule of this grant allows it (presets: ${presets}${k.allow?.length ? `, ${k.allow.length} allow rule(s)` : ''})${secretNote}`,
    ],
  };
}

/** Port-forward: every requested port must be in the grant's `ports`. */
export function decidePorts(grant: KubernetesGrant, ports: readonly number[]): KubernetesDecision {
  const allowed = grant.kubernetes?.ports ?? [];
  if (ports.length === 0)
    return { effect: 'deny', rule: 'kubernetes.ports', reasons: ['port-forward names no port'] };
  const refused = ports.filter((p) => !allowed.includes(p));
  if (refused.length === 0) return { effect: 'allow', reasons: [] };
  return {
    effect: 'deny',
    rule: 'kubernetes.ports',
    reasons: [
      `port-forward to port ${refused.join(', ')} is not allowed (kubernetes.ports: ${allowed.length ? allowed.join(', ') : 'none'})`,
    ],
  };
}

/** The content detectors a grant turns on (its `mask` detector rules): for ConfigMap values and pod logs. */
export function grantDetectors(grant: KubernetesGrant): Detector[] {
  return (grant.mask ?? []).flatMap((m) => ('detector' in m ? [m.detector] : []));
}
