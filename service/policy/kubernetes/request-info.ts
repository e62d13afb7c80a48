// Request attributes of a Kubernetes API request, resolved the way the API server resolves them
// before authorization (its RequestInfo rules), from the method, the path and the query alone:
//
//   /api/v1/namespaces/{ns}/{resource}/{name}/{subresource}     core group (no group segment)
//   /apis/{group}/{version}/namespaces/{ns}/{resource}/...     named groups
//   /api/v1/namespaces/{name}[/status|/finalize]               a namespace itself
//   /apis/{group}/{version}/watch/{resource}/...                deprecated watch paths
//   anything else (/version, /healthz, /openapi/v3, /api, /apis, /api/v1)   non-resource
//
// Verbs come from the method (GET/HEAD get, POST create, PUT update, PATCH patch, DELETE delete);
// a GET without a name is list, or watch with watch=true; a DELETE without a name is
// deletecollection. A list or watch whose fieldSelector pins metadata.name takes that name.
// Pure: no I/O.

export interface ResourceRequest {
  resourceRequest: true;
  /** lower-case API verb as the API server computes it */
  verb: string;
  apiPrefix: 'api' | 'apis';
  /** '' for the core group */
  apiGroup: string;
  apiVersion: string;
  /** '' for cluster-scoped requests */
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
}

export interface NonResourceRequest {
  resourceRequest: false;
  verb: string;
  path: string;
}

export type KubernetesRequestInfo = ResourceRequest | NonResourceRequest;

const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

const METHOD_VERBS: Record<string, string> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/** Go's strconv.ParseBool, which the API server's query decoding uses for `watch`. */
const parseBool = (v: string | null): boolean =>
  v !== null && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v);

/** A name the API server accepts as one path segment (path.IsValidPathSegmentName). */
export const isValidPathSegmentName = (name: string): boolean =>
  name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('%');

/** metadata.name=X (or ==X) as the only requirement on metadata.name in a field selector. */
function exactName(fieldSelector: string | null): string | null {
  if (!fieldSelector) return null;
  let found: string | null = null;
  for (const term of fieldSelector.split(',')) {
    const m = /^\s*metadata\.name\s*(==|=)\s*(.*?)\s*$/.exec(term);
    if (m) {
      if (found !== null) return null;
      found = m[2] ?? '';
    }
  }
  return found;
}

export function resolveRequestInfo(
  method: string,
  path: string,
  query: URLSearchParams,
): KubernetesRequestInfo {
  const nonResource = (): NonResourceRequest => ({
    resourceRequest: false,
    verb: method.toLowerCase(),
    path,
  });
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  const parts = trimmed === '' ? [] : trimmed.split('/');
  // The API server splits the escaped path; names with an encoded '/' cannot be addressed.
  let decoded: string[];
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    return nonResource();
  }
  // An encoded '/' is one segment here but several to a server that splits the decoded path (the API
  // server does): such a path is not judged as a resource at all (only admin allows non-resource paths).
  if (decoded.some((p) => p.includes('/'))) return nonResource();
  const prefix = decoded[0];
  if (prefix !== 'api' && prefix !== 'apis') return nonResource();
  let rest = decoded.slice(1);
  let apiGroup = '';
  if (prefix === 'apis') {
    if (rest.length < 1) return nonResource();
    apiGroup = rest[0]!;
    rest = rest.slice(1);
  }
  if (rest.length < 1) return nonResource();
  const apiVersion = rest[0]!;
  rest = rest.slice(1);
  if (rest.length < 1) return nonResource(); // discovery: /api/v1, /apis/apps/v1

  let verb = METHOD_VERBS[method.toUpperCase()] ?? method.toLowerCase();
  if (rest[0] === 'watch' && rest.length >= 2) {
    verb = 'watch';
    rest = rest.slice(1);
  }

  let namespace = '';
  if (rest[0] === 'namespaces') {
    if (rest.length > 1) {
      namespace = rest[1]!;
      // /namespaces/{ns}/{resource}: the resource is what follows, unless it is a namespace subresource
      if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) rest = rest.slice(2);
    }
  }

  const resource = rest[0] ?? '';
  let name = rest[1] ?? '';
  const subresource = rest[2] ?? '';
  if (rest.length > 3) {
    // deeper paths are only meaningful for proxy subresources (pods/{name}/proxy/{path}); the
    // API server keeps the first three parts and so do we
  }

  if (name === '' && verb === 'get') {
    verb = parseBool(query.get('watch')) ? 'watch' : 'list';
    const pinned = exactName(query.get('fieldSelector'));
    if (pinned !== null && isValidPathSegmentName(pinned)) name = pinned;
  } else if (name === '' && verb === 'watch') {
    const pinned = exactName(query.get('fieldSelector'));
    if (pinned !== null && isValidPathSegmentName(pinned)) name = pinned;
  }
  if (name === '' && verb === 'delete') verb = 'deletecollection';

  return {
    resourceRequest: true,
    verb,
    apiPrefix: prefix,
    apiGroup,
    apiVersion,
    namespace,
    resource,
    subresource,
    name,
  };
}

/** The subresources that open a stream to a container or a port, named as policy verbs. */
export const CONNECT_SUBRESOURCES = ['exec', 'attach', 'portforward', 'proxy'] as const;

/**
 * The verb rules match: the API verb, except that pods/exec, pods/attach, pods/portforward and
 * {pods,services,nodes}/proxy are their own verbs (`exec`, …), and pods/log is `log`, whatever the
 * method (kubectl ≥ 1.31 opens exec with a GET over WebSocket, older ones with a POST over SPDY).
 */
export function policyVerb(info: KubernetesRequestInfo): string {
  if (!info.resourceRequest) return info.verb;
  if ((CONNECT_SUBRESOURCES as readonly string[]).includes(info.subresource)) return info.subresource;
  if (info.resource === 'pods' && info.subresource === 'log') return 'log';
  return info.verb;
}

/** "pods/exec", "deployments.apps", "deployments.apps/scale": how rules and messages name a resource. */
export function resourceName(info: ResourceRequest): string {
  return `${info.resource}${info.apiGroup ? `.${info.apiGroup}` : ''}${info.subresource ? `/${info.subresource}` : ''}`;
}
