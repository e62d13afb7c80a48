// decide(grant, operation, facts): every operation kind through the policy's one entry point, with
// the cases the end-to-end tests drive through the real gateways (no database, no sshd, no cluster).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../service/config/schema.js';
import { catalogUnreadable, decide, type PgFacts, type StatementMemo } from '../../service/policy/decide.js';
import type { Decision } from '../../service/policy/decision.js';
import { resolveRequestInfo } from '../../service/policy/kubernetes/request-info.js';
import type { K8sRequestOperation, PgOperation } from '../../service/policy/operation.js';
import { initSqlParser } from '../../service/policy/sql/index.js';
import type { ClassifiedStatement } from '../../service/policy/sql/types.js';
import { emailView, stmt, stmts, targetViews, userObjects } from './pg/helpers.js';

beforeAll(async () => {
  await initSqlParser();
});

// ---- PostgreSQL ----------------------------------------------------------------------------------

function pg(over: Partial<PgFacts> = {}): PgFacts {
  return {
    kind: 'pg',
    views: targetViews(),
    unnameable: [],
    relationsSettled: false,
    userObjects: () => userObjects(),
    userObjectsFresh: false,
    approved: false,
    ...over,
  };
}
const q = (s: ClassifiedStatement | null, protocol: 'simple' | 'extended' = 'simple'): PgOperation =>
  s?.copy
    ? { kind: 'pg.copy', protocol, statement: s, direction: s.copy.direction }
    : { kind: 'pg.statement', protocol, statement: s };
const message = (sql: string, over: Partial<PgFacts> = {}, grant: Grant = write): Decision => {
  const all = stmts(sql);
  return decide(grant, q(all[0] ?? null), pg({ message: all, ...over }));
};

const read: Grant = { target: 'db', access: 'read' };
const write: Grant = { target: 'db', access: 'write' };
const masked: Grant = { target: 'db', access: 'write', mask: [{ column: 'customers.email' }] };
const approving: Grant = { target: 'db', access: 'write', approve: [{ statement: ['DROP'] }] };

describe('decide: pg.statement', () => {
  it('allows what the grant allows, denies writes under read (access: read)', () => {
    expect(message('SELECT name FROM customers', {}, read)).toEqual({ effect: 'allow', reasons: [] });
    expect(message('DELETE FROM orders', {}, read)).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
      statement: 0,
    });
    expect(message('DELETE FROM orders')).toMatchObject({ effect: 'allow' });
  });

  it('a message passes or fails whole, and names the statement that decided', () => {
    const d = message('SELECT 1; DROP TABLE orders', {}, read);
    expect(d).toMatchObject({ effect: 'deny', rule: 'access: read', statement: 1 });
  });

  it('holds an approve match, lets it pass once approved, and a denial elsewhere wins over the hold', () => {
    expect(message('DROP TABLE orders', {}, approving)).toMatchObject({ effect: 'hold', statement: 0 });
    expect(message('DROP TABLE orders', { approved: true }, approving)).toMatchObject({ effect: 'allow' });
    const both: Grant = { ...approving, deny: [{ statement: ['TRUNCATE'] }] };
    expect(message('DROP TABLE orders; TRUNCATE orders', {}, both)).toMatchObject({
      effect: 'deny',
      rule: 'deny.statement: TRUNCATE',
      statement: 1,
    });
  });

  it('masked column in an expression is refused; a plain reference is allowed (the gateway masks it)', () => {
    expect(message('SELECT email FROM customers', {}, masked)).toMatchObject({ effect: 'allow' });
    expect(message('SELECT upper(email) FROM customers', {}, masked)).toMatchObject({
      effect: 'deny',
      rule: 'mask: customers.email',
    });
  });

  it('a relation the lineage does not know: read the views again first (deny until then)', () => {
    const d = message('SELECT * FROM brand_new', {}, masked);
    expect(d).toMatchObject({ effect: 'deny', needs: { facts: 'views', refresh: true } });
    // once a reading that started after the message is in, it is judged on what is known
    expect(message('SELECT * FROM brand_new', { relationsSettled: true }, masked).effect).toBe('allow');
  });

  it('a view no mask rule can name, and a view read must refuse', () => {
    expect(message('SELECT * FROM contact_view', { unnameable: [emailView()] }, masked)).toMatchObject({
      effect: 'deny',
    });
    const notReadOnly = [{ view: 'public.orders', relname: 'orders', why: 'calls a function' }];
    expect(message('SELECT * FROM orders', { views: targetViews({ notReadOnly }) }, read)).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
  });

  it("user code: read the user objects first, then refuse a user's function behind a trusted name", () => {
    const first = message('SELECT lower(name) FROM customers', { userObjects: () => undefined }, read);
    expect(first).toMatchObject({ effect: 'deny', needs: { facts: 'user-objects' } });
    const shadowed = userObjects({ functions: new Set(['lower']) });
    const d = message(
      'SELECT lower(name) FROM customers',
      { userObjects: () => shadowed, userObjectsFresh: true },
      read,
    );
    expect(d).toMatchObject({ effect: 'deny', rule: 'access: read' });
    expect(d.reasons[0]).toContain('user-defined function');
  });

  it('an unreadable statement is denied', () => {
    expect(decide(write, q(null), pg())).toMatchObject({ effect: 'deny', rule: 'parser' });
  });

  it('memoizes the grant rules of a one-statement message in the gateway memo', () => {
    const memo: StatementMemo = { decisions: new WeakMap() };
    const s = stmt('DELETE FROM orders');
    expect(decide(read, q(s), pg({ memo })).effect).toBe('deny');
    expect(memo.decisions.get(read)).toMatchObject({ effect: 'deny', rule: 'access: read' });
  });
});

describe('decide: pg.copy', () => {
  it('COPY TO STDOUT: allowed in the simple protocol, unsupported when masked in the extended one', () => {
    const s = stmt('COPY customers TO STDOUT');
    expect(decide(masked, q(s, 'simple'), pg()).effect).toBe('allow');
    expect(decide(masked, q(s, 'extended'), pg())).toMatchObject({
      effect: 'deny',
      rule: 'mask',
      unsupported: true,
    });
    expect(decide(write, q(s, 'extended'), pg()).effect).toBe('allow');
  });

  it('COPY to a server file is forbidden at every access level; COPY FROM STDIN needs write', () => {
    expect(decide({ target: 'db', access: 'admin' }, q(stmt("COPY orders TO '/tmp/x'")), pg())).toMatchObject(
      { effect: 'deny', rule: 'forbidden' },
    );
    expect(decide(read, q(stmt('COPY orders FROM STDIN')), pg())).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
  });
});

describe('decide: pg.function_call', () => {
  const call = (schema: string, name: string): PgOperation => ({
    kind: 'pg.function_call',
    oid: 1,
    function: { schema, name },
    statement: stmt(`SELECT "${schema}"."${name}"($1)`),
  });
  it('judged as the equivalent SELECT; outside pg_catalog refused under column masks (bypass)', () => {
    expect(decide(write, call('pg_catalog', 'lower'), pg()).effect).toBe('allow');
    expect(decide(masked, call('pg_catalog', 'lower'), pg()).effect).toBe('allow');
    expect(decide(masked, call('public', 'leak'), pg())).toMatchObject({
      effect: 'deny',
      rule: 'mask: bypass',
    });
    expect(decide(read, call('pg_catalog', 'pg_terminate_backend'), pg())).toMatchObject({ effect: 'deny' });
  });
  it('a hold on the call, approved; a call that could not be resolved', () => {
    const g: Grant = { target: 'db', access: 'write', approve: [{ function: ['refresh_stats'] }] };
    expect(decide(g, call('public', 'refresh_stats'), pg()).effect).toBe('hold');
    expect(decide(g, call('public', 'refresh_stats'), pg({ approved: true })).effect).toBe('allow');
    expect(
      decide(write, { kind: 'pg.function_call', oid: 9, function: null, statement: null }, pg()),
    ).toMatchObject({ effect: 'deny', rule: 'protocol: FunctionCall' });
  });
});

describe('catalogUnreadable', () => {
  it('names the rule the reading was for (fail closed)', () => {
    expect(catalogUnreadable(masked, 'views')).toMatchObject({ effect: 'deny', rule: 'mask' });
    expect(catalogUnreadable(read, 'views')).toMatchObject({ effect: 'deny', rule: 'policy' });
    expect(catalogUnreadable(read, 'user-objects')).toMatchObject({ effect: 'deny', rule: 'access: read' });
    expect(catalogUnreadable(masked, 'user-objects')).toMatchObject({ effect: 'deny', rule: 'mask: bypass' });
  });
});

// ---- ssh -----------------------------------------------------------------------------------------

const SSH = { kind: 'ssh' } as const;
const host: Grant = {
  target: 'build-host',
  access: 'write',
  ssh: {
    commands: { allow: ['make *', 'uptime'], approve: ['make deploy*'], deny: ['rm *'] },
    sftp: { read: ['/srv/app/**'], write: ['/srv/app/uploads/**'] },
    git: { read: ['/srv/git/*.git'], push: ['/srv/git/app.git'] },
    forwards: ['db.internal:5432'],
    env: ['LANG'],
    shell: true,
    pty: true,
  },
};
const readHost: Grant = { ...host, access: 'read' };

describe('decide: ssh', () => {
  it('ssh.exec: allow, hold, deny, git push, legacy scp', () => {
    expect(decide(host, { kind: 'ssh.exec', command: 'make test' }, SSH).effect).toBe('allow');
    expect(decide(host, { kind: 'ssh.exec', command: 'make deploy prod' }, SSH)).toMatchObject({
      effect: 'hold',
      rule: 'commands.approve',
    });
    expect(decide(host, { kind: 'ssh.exec', command: 'uptime; rm -rf /' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'commands.deny',
    });
    expect(decide(host, { kind: 'ssh.exec', command: 'id' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'commands.allow',
    });
    const push = { kind: 'ssh.exec', command: "git-receive-pack '/srv/git/app.git'" } as const;
    expect(decide(host, push, SSH).effect).toBe('allow');
    expect(decide(readHost, push, SSH)).toMatchObject({ effect: 'deny', rule: 'access: read' });
    expect(decide(host, { kind: 'ssh.exec', command: 'scp -t /etc' }, SSH)).toMatchObject({ effect: 'deny' });
  });

  it('ssh.shell: shell: true and write access', () => {
    expect(decide(host, { kind: 'ssh.shell', term: 'xterm' }, SSH).effect).toBe('allow');
    expect(decide(readHost, { kind: 'ssh.shell' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
    expect(decide({ ...host, ssh: {} }, { kind: 'ssh.shell' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'shell',
    });
  });

  it('ssh.sftp: reads by sftp.read, writes by sftp.write, renames need both ends', () => {
    const op = (o: object) => ({ kind: 'ssh.sftp', ...o }) as Parameters<typeof decide>[1];
    expect(decide(host, op({ op: 'open', path: '/srv/app/a.txt', mode: 'read' }), SSH).effect).toBe('allow');
    expect(decide(host, op({ op: 'open', path: '/etc/passwd', mode: 'read' }), SSH)).toMatchObject({
      effect: 'deny',
      rule: 'sftp.read',
    });
    expect(decide(host, op({ op: 'open', path: '/srv/app/x', mode: 'write' }), SSH)).toMatchObject({
      effect: 'deny',
      rule: 'sftp.write',
    });
    expect(decide(host, op({ op: 'open', path: '/srv/app/uploads/x', mode: 'write' }), SSH).effect).toBe(
      'allow',
    );
    expect(decide(readHost, op({ op: 'remove', path: '/srv/app/uploads/x' }), SSH)).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
    expect(
      decide(host, op({ op: 'rename', path: '/srv/app/uploads/x', target_path: '/srv/app/y' }), SSH),
    ).toMatchObject({ effect: 'deny', rule: 'sftp.write' });
    expect(decide(host, op({ op: 'realpath', path: '.' }), SSH).effect).toBe('allow');
  });

  it('ssh.forward: listed local destinations only; remote and unix sockets never', () => {
    const fwd = (direction: 'local' | 'remote', h: string, port: number) =>
      ({ kind: 'ssh.forward', direction, host: h, port }) as const;
    expect(decide(host, fwd('local', 'db.internal', 5432), SSH).effect).toBe('allow');
    expect(decide(host, fwd('local', 'db.internal', 22), SSH)).toMatchObject({
      effect: 'deny',
      rule: 'forwards',
    });
    expect(decide(host, fwd('remote', '0.0.0.0', 80), SSH)).toMatchObject({
      effect: 'deny',
      rule: 'ssh.forward.remote',
    });
    expect(
      decide(host, fwd('local', '/run/docker.sock', 0), { kind: 'ssh', unixSocket: true }),
    ).toMatchObject({
      effect: 'deny',
      rule: 'forwards',
    });
  });

  it('ssh.request: pty, env (by name and value), agent, X11, subsystems', () => {
    expect(decide(host, { kind: 'ssh.request', request: 'pty', name: 'xterm' }, SSH).effect).toBe('allow');
    expect(decide({ ...host, ssh: {} }, { kind: 'ssh.request', request: 'pty' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'pty',
    });
    const env = (name: string, envValue: string) =>
      decide(host, { kind: 'ssh.request', request: 'env', name }, { kind: 'ssh', envValue });
    expect(env('LANG', 'C').effect).toBe('allow');
    expect(env('LD_PRELOAD', '/x.so')).toMatchObject({ effect: 'deny', rule: 'env' });
    expect(env('GIT_PROTOCOL', 'version=2').effect).toBe('allow');
    expect(env('GIT_PROTOCOL', 'evil')).toMatchObject({ effect: 'deny', rule: 'env' });
    expect(env('LD_PRELOAD', 'secret-value').reasons.join(' ')).not.toContain('secret-value');
    expect(decide(host, { kind: 'ssh.request', request: 'agent-forwarding' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'ssh.agent',
    });
    expect(decide(host, { kind: 'ssh.request', request: 'x11' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'ssh.x11',
    });
    expect(decide(host, { kind: 'ssh.request', request: 'subsystem', name: 'sftp' }, SSH).effect).toBe(
      'allow',
    );
    expect(decide(host, { kind: 'ssh.request', request: 'subsystem', name: 'netconf' }, SSH)).toMatchObject({
      effect: 'deny',
      rule: 'ssh.subsystem',
    });
  });
});

// ---- Kubernetes ----------------------------------------------------------------------------------

function k8s(grant: Grant, method: string, url: string, ports?: number[]): Decision {
  const u = new URL(url, 'https://x');
  const info = resolveRequestInfo(method, u.pathname, u.searchParams);
  const op: K8sRequestOperation = {
    kind: 'k8s.request',
    verb: info.verb,
    apiGroup: info.resourceRequest ? info.apiGroup : '',
    path: u.pathname,
    ...(ports ? { ports } : {}),
  };
  return decide(grant, op, { kind: 'k8s', info });
}

describe('decide: k8s.request', () => {
  const cluster: Grant = { target: 'prod', access: 'read' };
  it("the client's own impersonation headers are denied whatever the grant allows", () => {
    const admin: Grant = { target: 'prod', access: 'admin' };
    const u = new URL('https://x/api/v1/namespaces/a/pods');
    const info = resolveRequestInfo('GET', u.pathname, u.searchParams);
    const op: K8sRequestOperation = { kind: 'k8s.request', verb: info.verb, apiGroup: '', path: u.pathname };
    expect(decide(admin, op, { kind: 'k8s', info, impersonationHeaders: [] }).effect).toBe('allow');
    expect(
      decide(admin, op, {
        kind: 'k8s',
        info,
        impersonationHeaders: ['impersonate-user', 'impersonate-group'],
      }),
    ).toMatchObject({
      effect: 'deny',
      rule: 'impersonation',
      reasons: [expect.stringContaining('impersonate-user, impersonate-group')],
    });
  });
  it('presets allow, Secrets need more than read, deny and approve rules', () => {
    expect(k8s(cluster, 'GET', '/api/v1/namespaces/a/pods').effect).toBe('allow');
    expect(k8s(cluster, 'GET', '/version').effect).toBe('allow');
    expect(k8s(cluster, 'GET', '/api/v1/namespaces/a/secrets/x')).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
    expect(k8s(cluster, 'DELETE', '/api/v1/namespaces/a/pods/web').effect).toBe('deny');
    const g: Grant = {
      target: 'prod',
      access: 'write',
      kubernetes: {
        deny: [{ resources: ['namespaces'], verbs: ['delete'] }],
        approve: [{ verbs: ['delete'], namespaces: ['prod'] }],
      },
    };
    expect(k8s(g, 'DELETE', '/api/v1/namespaces/prod/pods/web')).toMatchObject({
      effect: 'hold',
      rule: 'kubernetes.approve[0]',
    });
    expect(k8s(g, 'DELETE', '/api/v1/namespaces/prod')).toMatchObject({
      effect: 'deny',
      rule: 'kubernetes.deny[0]',
    });
  });

  it('port-forward: every port in kubernetes.ports; a stream judged on its port alone', () => {
    const g: Grant = { target: 'prod', access: 'read', kubernetes: { presets: ['debug'], ports: [8080] } };
    expect(k8s(g, 'POST', '/api/v1/namespaces/a/pods/web/portforward', [8080]).effect).toBe('allow');
    expect(k8s(g, 'POST', '/api/v1/namespaces/a/pods/web/portforward', [8080, 22])).toMatchObject({
      effect: 'deny',
      rule: 'kubernetes.ports',
    });
    const u = new URL('https://x/api/v1/namespaces/a/pods/web/portforward');
    const info = resolveRequestInfo('POST', u.pathname, u.searchParams);
    const op: K8sRequestOperation = {
      kind: 'k8s.request',
      verb: 'portforward',
      apiGroup: '',
      path: u.pathname,
    };
    expect(decide(g, { ...op, ports: [22] }, { kind: 'k8s', info, portsOnly: true })).toMatchObject({
      effect: 'deny',
      rule: 'kubernetes.ports',
    });
  });

  it('facts of the wrong kind are denied (fail closed)', () => {
    expect(decide(cluster, { kind: 'ssh.exec', command: 'id' }, { kind: 'pg' } as never).effect).toBe('deny');
  });
});
