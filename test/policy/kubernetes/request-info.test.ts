import { describe, expect, it } from 'vitest';
import { policyVerb, resolveRequestInfo } from '../../../service/policy/kubernetes/request-info.js';

const info = (method: string, url: string) => {
  const u = new URL(url, 'https://x');
  return resolveRequestInfo(method, u.pathname, u.searchParams);
};
const res = (over: Record<string, unknown>) => ({
  resourceRequest: true,
  apiPrefix: 'api',
  apiGroup: '',
  apiVersion: 'v1',
  namespace: '',
  resource: '',
  subresource: '',
  name: '',
  ...over,
});

// The cases of the API server's own RequestInfo tests (k8s.io/apiserver/pkg/endpoints/request).
describe('request attributes as the API server resolves them', () => {
  it.each([
    ['GET', '/api/v1/namespaces', { verb: 'list', resource: 'namespaces' }],
    [
      'GET',
      '/api/v1/namespaces/other',
      { verb: 'get', resource: 'namespaces', namespace: 'other', name: 'other' },
    ],
    [
      'GET',
      '/api/v1/namespaces/other/pods/foo',
      { verb: 'get', resource: 'pods', namespace: 'other', name: 'foo' },
    ],
    ['GET', '/api/v1/namespaces/other/pods', { verb: 'list', resource: 'pods', namespace: 'other' }],
    ['GET', '/api/v1/pods', { verb: 'list', resource: 'pods' }],
    [
      'HEAD',
      '/api/v1/namespaces/other/pods/foo',
      { verb: 'get', resource: 'pods', namespace: 'other', name: 'foo' },
    ],
    [
      'GET',
      '/api/v1/namespaces/other/pods?watch=true',
      { verb: 'watch', resource: 'pods', namespace: 'other' },
    ],
    ['GET', '/api/v1/namespaces/other/pods?watch=1', { verb: 'watch', resource: 'pods', namespace: 'other' }],
    [
      'GET',
      '/api/v1/namespaces/other/pods?watch=false',
      { verb: 'list', resource: 'pods', namespace: 'other' },
    ],
    ['GET', '/api/v1/watch/namespaces/other/pods', { verb: 'watch', resource: 'pods', namespace: 'other' }],
    ['GET', '/api/v1/watch/pods', { verb: 'watch', resource: 'pods' }],
    ['POST', '/api/v1/namespaces/other/pods', { verb: 'create', resource: 'pods', namespace: 'other' }],
    [
      'PUT',
      '/api/v1/namespaces/other/pods/foo',
      { verb: 'update', resource: 'pods', namespace: 'other', name: 'foo' },
    ],
    [
      'PATCH',
      '/api/v1/namespaces/other/pods/foo',
      { verb: 'patch', resource: 'pods', namespace: 'other', name: 'foo' },
    ],
    [
      'DELETE',
      '/api/v1/namespaces/other/pods/foo',
      { verb: 'delete', resource: 'pods', namespace: 'other', name: 'foo' },
    ],
    [
      'DELETE',
      '/api/v1/namespaces/other/pods',
      { verb: 'deletecollection', resource: 'pods', namespace: 'other' },
    ],
    [
      'GET',
      '/api/v1/namespaces/other/pods/foo/log',
      { verb: 'get', resource: 'pods', namespace: 'other', name: 'foo', subresource: 'log' },
    ],
    [
      'POST',
      '/api/v1/namespaces/other/pods/foo/exec',
      { verb: 'create', resource: 'pods', namespace: 'other', name: 'foo', subresource: 'exec' },
    ],
    [
      'GET',
      '/api/v1/namespaces/other/pods/foo/proxy/some/path',
      { verb: 'get', resource: 'pods', namespace: 'other', name: 'foo', subresource: 'proxy' },
    ],
    [
      'PUT',
      '/api/v1/namespaces/other/finalize',
      { verb: 'update', resource: 'namespaces', namespace: 'other', name: 'other', subresource: 'finalize' },
    ],
    [
      'GET',
      '/api/v1/namespaces/other/status',
      { verb: 'get', resource: 'namespaces', namespace: 'other', name: 'other', subresource: 'status' },
    ],
    ['GET', '/api/v1/nodes/node-1', { verb: 'get', resource: 'nodes', name: 'node-1' }],
    [
      'GET',
      '/apis/apps/v1/namespaces/prod/deployments/api',
      {
        verb: 'get',
        apiPrefix: 'apis',
        apiGroup: 'apps',
        resource: 'deployments',
        namespace: 'prod',
        name: 'api',
      },
    ],
    [
      'PATCH',
      '/apis/apps/v1/namespaces/prod/deployments/api/scale',
      {
        verb: 'patch',
        apiPrefix: 'apis',
        apiGroup: 'apps',
        resource: 'deployments',
        namespace: 'prod',
        name: 'api',
        subresource: 'scale',
      },
    ],
    [
      'GET',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles',
      { verb: 'list', apiPrefix: 'apis', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
    ],
    [
      'GET',
      '/apis/apps/v1/watch/namespaces/prod/deployments',
      { verb: 'watch', apiPrefix: 'apis', apiGroup: 'apps', resource: 'deployments', namespace: 'prod' },
    ],
    // a list or watch pinned to one name by fieldSelector takes the name (kubectl wait does this)
    [
      'GET',
      '/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dweb&watch=true',
      { verb: 'watch', resource: 'pods', namespace: 'ns', name: 'web' },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3D%3Dweb',
      { verb: 'list', resource: 'pods', namespace: 'ns', name: 'web' },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%21%3Dweb',
      { verb: 'list', resource: 'pods', namespace: 'ns' },
    ],
  ])('%s %s', (method, url, want) => {
    const apiVersion = url.startsWith('/apis/') ? 'v1' : 'v1';
    expect(info(method, url)).toEqual(res({ apiVersion, ...want }));
  });

  it.each([
    ['GET', '/'],
    ['GET', '/api'],
    ['GET', '/apis'],
    ['GET', '/api/v1'],
    ['GET', '/apis/apps'],
    ['GET', '/apis/apps/v1'],
    ['GET', '/version'],
    ['GET', '/healthz'],
    ['GET', '/openapi/v3/apis/apps/v1'],
    ['POST', '/logs/foo'],
    // an encoded slash would be split by the API server into other segments: never a resource here
    ['GET', '/api/v1/namespaces/a/pods%2Fweb%2Fexec'],
  ])('non-resource: %s %s', (method, path) => {
    expect(info(method, path)).toEqual({ resourceRequest: false, verb: method.toLowerCase(), path });
  });

  it('names exec, attach, portforward, proxy and log as policy verbs', () => {
    expect(policyVerb(info('GET', '/api/v1/namespaces/a/pods/p/exec?command=ls'))).toBe('exec');
    expect(policyVerb(info('POST', '/api/v1/namespaces/a/pods/p/attach'))).toBe('attach');
    expect(policyVerb(info('GET', '/api/v1/namespaces/a/pods/p/portforward'))).toBe('portforward');
    expect(policyVerb(info('GET', '/api/v1/namespaces/a/services/s/proxy/x'))).toBe('proxy');
    expect(policyVerb(info('GET', '/api/v1/namespaces/a/pods/p/log'))).toBe('log');
    expect(policyVerb(info('PATCH', '/api/v1/namespaces/a/pods/p/status'))).toBe('patch');
  });
});
