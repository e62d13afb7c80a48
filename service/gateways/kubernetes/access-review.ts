// SelfSubjectAccessReview (kubectl auth can-i): the attributes asked about, read from the request
// body, JSON or protobuf (kubectl sends protobuf), so the broker can answer "no" from its own policy
// before the cluster's RBAC is asked.
import type { KubernetesRequestInfo } from '../../policy/kubernetes/request-info.js';

const PROTOBUF_MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]); // "k8s\0"

/** Length-delimited fields of one protobuf message, by field number (wire types 0, 1, 2, 5 skipped over). */
function fields(buf: Buffer): Map<number, Buffer[]> {
  const out = new Map<number, Buffer[]>();
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
      shift += 7;
      if (shift > 49) throw new Error('varint too long');
    }
  };
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error('truncated field');
      const list = out.get(field) ?? [];
      list.push(buf.subarray(i, i + len));
      out.set(field, list);
      i += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const str = (m: Map<number, Buffer[]>, n: number): string => m.get(n)?.[0]?.toString('utf8') ?? '';

export interface ReviewAttributes {
  info: KubernetesRequestInfo;
  /** the spec as JSON, for the answer */
  spec: Record<string, unknown>;
}

export function readAccessReview(body: Buffer, contentType: string): ReviewAttributes | null {
  try {
    if (contentType.startsWith('application/vnd.kubernetes.protobuf')) {
      if (!body.subarray(0, 4).equals(PROTOBUF_MAGIC)) return null;
      const unknown = fields(body.subarray(4));
      const raw = unknown.get(2)?.[0];
      if (!raw) return null;
      const review = fields(raw);
      const spec = fields(review.get(2)?.[0] ?? Buffer.alloc(0));
      const ra = spec.get(1)?.[0];
      if (ra) {
        const a = fields(ra);
        return fromResource({
          namespace: str(a, 1),
          verb: str(a, 2),
          group: str(a, 3),
          version: str(a, 4),
          resource: str(a, 5),
          subresource: str(a, 6),
          name: str(a, 7),
        });
      }
      const nra = spec.get(2)?.[0];
      if (nra) {
        const a = fields(nra);
        return fromNonResource({ path: str(a, 1), verb: str(a, 2) });
      }
      return null;
    }
    const obj = JSON.parse(body.toString('utf8')) as {
      spec?: {
        resourceAttributes?: Record<string, unknown>;
        nonResourceAttributes?: Record<string, unknown>;
      };
    };
    const s = (v: unknown) => (typeof v === 'string' ? v : '');
    const ra = obj.spec?.resourceAttributes;
    if (ra)
      return fromResource({
        namespace: s(ra.namespace),
        verb: s(ra.verb),
        group: s(ra.group),
        version: s(ra.version),
        resource: s(ra.resource),
        subresource: s(ra.subresource),
        name: s(ra.name),
      });
    const nra = obj.spec?.nonResourceAttributes;
    if (nra) return fromNonResource({ path: s(nra.path), verb: s(nra.verb) });
    return null;
  } catch {
    return null;
  }
}

function fromResource(
  a: Record<'namespace' | 'verb' | 'group' | 'version' | 'resource' | 'subresource' | 'name', string>,
): ReviewAttributes {
  const spec = Object.fromEntries(Object.entries(a).filter(([, v]) => v !== ''));
  return {
    info: {
      resourceRequest: true,
      // RBAC asks `create pods/exec`; the broker's policy calls it `exec`
      verb: a.verb,
      apiPrefix: a.group ? 'apis' : 'api',
      apiGroup: a.group,
      apiVersion: a.version || 'v1',
      namespace: a.namespace,
      resource: a.resource,
      subresource: a.subresource,
      name: a.name,
    },
    spec: { resourceAttributes: spec },
  };
}

function fromNonResource(a: { path: string; verb: string }): ReviewAttributes {
  return { info: { resourceRequest: false, verb: a.verb, path: a.path }, spec: { nonResourceAttributes: a } };
}

/** The answer when the broker's policy says no: the cluster is not asked. */
export function reviewAnswer(spec: Record<string, unknown>, reason: string): string {
  return JSON.stringify({
    kind: 'SelfSubjectAccessReview',
    apiVersion: 'authorization.k8s.io/v1',
    metadata: { creationTimestamp: null },
    spec,
    status: { allowed: false, denied: true, reason },
  });
}
