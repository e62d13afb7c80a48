import { describe, expect, it } from 'vitest';
import {
  acceptWithoutProtobuf,
  MASKED_SECRET_DATA,
  maskObject,
} from '../../../service/policy/kubernetes/mask.js';
import { resolveRequestInfo } from '../../../service/policy/kubernetes/request-info.js';
import {
  decideKubernetesRequest,
  decidePorts,
  globMatch,
  type KubernetesGrant,
} from '../../../service/policy/kubernetes/rules.js';

const req = (method: string, url: string) => {
  const u = new URL(url, 'https://x');
  return resolveRequestInfo(method, u.pathname, u.searchParams);
};
const decide = (grant: KubernetesGrant, method: string, url: string) =>
  decideKubernetesRequest(grant, req(method, url));

describe('kubernetes rules', () => {
  const read: KubernetesGrant = { access: 'read' };
  it('read: get/list/watch/log on everything but Secrets; discovery and can-i', () => {
    expect(decide(read, 'GET', '/api/v1/namespaces/a/pods').effect).toBe('allow');
    expect(decide(read, 'GET', '/api/v1/namespaces/a/pods?watch=true').effect).toBe('allow');
    expect(decide(read, 'GET', '/api/v1/namespaces/a/pods/p/log?follow=true').effect).toBe('allow');
    expect(decide(read, 'GET', '/apis/apps/v1/namespaces/a/deployments/d/scale').effect).toBe('allow');
    expect(decide(read, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews').effect).toBe(
      'allow',
    );
    for (const p of [
      '/api',
      '/apis',
      '/api/v1',
      '/apis/apps/v1',
      '/version',
      '/openapi/v3',
      '/openapi/v3/api/v1',
    ])
      expect(decide(read, 'GET', p).effect).toBe('allow');
    const secret = decide(read, 'GET', '/api/v1/namespaces/a/secrets/db');
    expect(secret.effect).toBe('deny');
    expect(secret.reasons[0]).toContain('get secrets "db" in namespace "a"');
    expect(secret.reasons[0]).toContain('preset read never includes Secrets');
    expect(decide(read, 'DELETE', '/api/v1/namespaces/a/pods/p').effect).toBe('deny');
    expect(decide(read, 'GET', '/api/v1/namespaces/a/pods/p/exec?command=ls').effect).toBe('deny');
    expect(decide(read, 'GET', '/metrics').effect).toBe('deny');
    expect(decide(read, 'POST', '/api').effect).toBe('deny');
  });

  it('write: changes and masked Secrets, no exec, no service account tokens', () => {
    const write: KubernetesGrant = { access: 'write' };
    expect(decide(write, 'DELETE', '/api/v1/namespaces/a/pods').effect).toBe('allow');
    expect(decide(write, 'GET', '/api/v1/namespaces/a/secrets').effect).toBe('allow');
    expect(decide(write, 'POST', '/api/v1/namespaces/a/pods/p/exec').effect).toBe('deny');
    expect(decide(write, 'POST', '/api/v1/namespaces/a/serviceaccounts/default/token').effect).toBe('deny');
  });

  it('deny beats presets, approve holds, allow adds; namespaces and names by glob', () => {
    const g: KubernetesGrant = {
      access: 'write',
      kubernetes: {
        presets: ['debug'],
        deny: [{ verbs: ['delete', 'deletecollection'], namespaces: ['kube-*'] }],
        approve: [{ verbs: ['delete'], namespaces: ['prod'] }],
        allow: [{ verbs: ['proxy'], resources: ['services/proxy'], names: ['grafana'] }],
      },
    };
    const d = decide(g, 'DELETE', '/api/v1/namespaces/kube-system/pods/x');
    expect(d).toMatchObject({ effect: 'deny', rule: 'kubernetes.deny[0]' });
    expect(d.reasons[0]).toContain('verbs [delete, deletecollection] namespaces [kube-*]');
    expect(decide(g, 'DELETE', '/api/v1/namespaces/prod/pods/x')).toMatchObject({
      effect: 'hold',
      rule: 'kubernetes.approve[0]',
    });
    expect(decide(g, 'DELETE', '/api/v1/namespaces/dev/pods/x').effect).toBe('allow');
    expect(decide(g, 'GET', '/api/v1/namespaces/a/pods/p/exec').effect).toBe('allow');
    expect(decide(g, 'GET', '/api/v1/namespaces/a/services/grafana/proxy/').effect).toBe('allow');
    expect(decide(g, 'GET', '/api/v1/namespaces/a/services/other/proxy/').effect).toBe('deny');
    // a namespace rule never matches a cluster-scoped request
    expect(decide(g, 'DELETE', '/api/v1/nodes/n1').effect).toBe('allow');
  });

  it('resource patterns: bare names in any group, .group, subresources only when named', () => {
    const g = (resources: string[]): KubernetesGrant => ({
      access: 'read',
      kubernetes: { deny: [{ resources }] },
    });
    expect(decide(g(['deployments']), 'GET', '/apis/apps/v1/namespaces/a/deployments').effect).toBe('deny');
    expect(decide(g(['deployments.apps']), 'GET', '/apis/apps/v1/namespaces/a/deployments').effect).toBe(
      'deny',
    );
    expect(
      decide(g(['deployments.extensions']), 'GET', '/apis/apps/v1/namespaces/a/deployments').effect,
    ).toBe('allow');
    expect(decide(g(['pods']), 'GET', '/api/v1/namespaces/a/pods/p/log').effect).toBe('allow');
    expect(decide(g(['pods/*']), 'GET', '/api/v1/namespaces/a/pods/p/log').effect).toBe('deny');
    expect(decide(g(['*.apps']), 'GET', '/apis/apps/v1/namespaces/a/statefulsets').effect).toBe('deny');
    expect(globMatch('ci-*', 'ci-123')).toBe(true);
    expect(globMatch('ci-?', 'ci-12')).toBe(false);
    expect(globMatch('a.b', 'aXb')).toBe(false);
  });

  it('port-forward ports', () => {
    expect(decidePorts({ access: 'read', kubernetes: { ports: [8080] } }, [8080]).effect).toBe('allow');
    const d = decidePorts({ access: 'read', kubernetes: { ports: [8080] } }, [8080, 5432]);
    expect(d).toMatchObject({ effect: 'deny', rule: 'kubernetes.ports' });
    expect(d.reasons[0]).toContain('port 5432');
    expect(decidePorts({ access: 'admin' }, [80]).effect).toBe('deny');
  });
});

describe('kubernetes masking', () => {
  const ctx = (resource: string, detectors: ('email' | 'api_key')[] = []) => ({ resource, detectors });
  const secret = () => ({
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: {
      name: 'db',
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          stringData: { password: 'hunter2' },
        }),
      },
    },
    data: { password: Buffer.from('hunter2').toString('base64'), user: 'YWRtaW4=' },
    type: 'Opaque',
  });

  it('a Secret: data, stringData and the last-applied copy', () => {
    const s = secret();
    expect(maskObject(s, ctx('secrets'))).toBe(3);
    expect(s.data).toEqual({ password: MASKED_SECRET_DATA, user: MASKED_SECRET_DATA });
    expect(JSON.stringify(s)).not.toContain('hunter2');
    expect(JSON.stringify(s)).not.toContain(Buffer.from('hunter2').toString('base64'));
    expect(Buffer.from(MASKED_SECRET_DATA, 'base64').toString()).toBe('********');
  });

  it('a SecretList (items without kind), a List of kinds, a watch event', () => {
    const { kind: _k, apiVersion: _a, ...item } = secret();
    const list = { kind: 'SecretList', apiVersion: 'v1', metadata: {}, items: [item, { ...item }] };
    expect(maskObject(list, ctx('secrets'))).toBe(6);
    const mixed = {
      kind: 'List',
      apiVersion: 'v1',
      items: [secret(), { kind: 'ConfigMap', data: { a: 'x' } }],
    };
    expect(maskObject(mixed, ctx(''))).toBe(3);
    const ev = { type: 'MODIFIED', object: secret() };
    expect(maskObject(ev, ctx('secrets'))).toBe(3);
    expect(JSON.stringify([list, mixed, ev])).not.toContain('aHVudGVyMg');
  });

  it('a Table of Secrets: value cells and row objects (metadata or full)', () => {
    const t = {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      columnDefinitions: [
        { name: 'Name' },
        { name: 'Type' },
        { name: 'Data' },
        { name: 'Password' },
        { name: 'Age' },
      ],
      rows: [
        {
          cells: ['db', 'Opaque', '2', 'hunter2', '1m'],
          object: { kind: 'PartialObjectMetadata', metadata: secret().metadata },
        },
        { cells: ['db2', 'Opaque', '2', 'hunter3', '1m'], object: secret() },
      ],
    };
    maskObject(t, ctx('secrets'));
    expect(t.rows[0]!.cells).toEqual(['db', 'Opaque', '2', '********', '1m']);
    expect(JSON.stringify(t)).not.toMatch(/hunter|aHVudGVy/);
    // a later watch event's Table without column definitions: the first event's are used
    const c = ctx('secrets');
    maskObject(
      { type: 'ADDED', object: { kind: 'Table', columnDefinitions: t.columnDefinitions, rows: [] } },
      c,
    );
    const later = { kind: 'Table', rows: [{ cells: ['db', 'Opaque', '2', 'hunter2', '1m'] }] };
    maskObject({ type: 'MODIFIED', object: later }, c);
    expect(later.rows[0]!.cells).toEqual(['db', 'Opaque', '2', '********', '1m']);
  });

  it('ConfigMaps only with detectors', () => {
    const cm = () => ({
      kind: 'ConfigMap',
      data: { contact: 'ops alice@example.com', key: 'ghp_0123456789abcdefghijABCDEFGHIJ012345' },
    });
    const a = cm();
    expect(maskObject(a, ctx('configmaps'))).toBe(0);
    const b = cm();
    expect(maskObject(b, ctx('configmaps', ['email', 'api_key']))).toBe(2);
    expect(b.data.contact).toBe('ops ***@***.***');
    expect(b.data.key).not.toContain('0123456789');
  });

  it('Accept without protobuf', () => {
    expect(acceptWithoutProtobuf('application/vnd.kubernetes.protobuf,application/json')).toBe(
      'application/json',
    );
    expect(
      acceptWithoutProtobuf(
        'application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
      ),
    ).toBe('application/json;as=Table;v=v1;g=meta.k8s.io,application/json');
    expect(acceptWithoutProtobuf('application/vnd.kubernetes.protobuf')).toBe('application/json');
    expect(acceptWithoutProtobuf(undefined)).toBe('application/json');
  });
});
