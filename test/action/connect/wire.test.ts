import { readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { SessionCreated } from '../../../service/api/schemas.js';
import { generateSshKeyPair } from '../../../src/connect/ssh.js';
import {
  createSessionDir,
  planWiring,
  sessionDirPath,
  writeSessionFiles,
} from '../../../src/connect/wire.js';
import { postgresTarget } from '../fake-broker.js';

const hostKey = ssh2.utils.generateKeyPairSync('ed25519').public;

function session(targets: SessionCreated['targets'], caPem?: string): SessionCreated {
  return {
    id: 's_1',
    secret: 'hoop_secret_value_1234',
    expires_at: '2025-06-01T12:15:00.000Z',
    identity: {},
    policy: 'p',
    targets,
    ...(caPem ? { ca_pem: caPem } : {}),
  };
}

const kube = {
  name: 'staging',
  kind: 'kubernetes' as const,
  access: 'read' as const,
  connection: { server: 'https://127.0.0.1:8443/k8s/staging' },
};
const ssh = {
  name: 'build-host',
  kind: 'ssh' as const,
  access: 'write' as const,
  connection: { host: '127.0.0.1', port: 2222, user: 's_1', host_key: hostKey },
};

describe('planWiring', () => {
  const sshKey = generateSshKeyPair('t');

  it('wires postgres, kubernetes and ssh targets of one session', () => {
    const plan = planWiring(session([postgresTarget('s_1'), kube, ssh], 'CA PEM'), {
      dir: '/r/hoop-x',
      sshKey,
      caCertPem: undefined,
    });
    if (!plan.ok) throw new Error(plan.errors.join());
    expect(plan.value.files.map((f) => f.path)).toEqual([
      '/r/hoop-x/broker-ca.pem',
      '/r/hoop-x/kubeconfig',
      '/r/hoop-x/id_ed25519',
      '/r/hoop-x/id_ed25519.pub',
      '/r/hoop-x/known_hosts',
      '/r/hoop-x/ssh_config',
    ]);
    expect(plan.value.env).toMatchObject({
      PGSSLROOTCERT: '/r/hoop-x/broker-ca.pem',
      KUBECONFIG: '/r/hoop-x/kubeconfig',
      HOOP_SSH_CONFIG: '/r/hoop-x/ssh_config',
    });
    expect(plan.value.outputs).toEqual({
      'session-id': 's_1',
      'expires-at': '2025-06-01T12:15:00.000Z',
      'database-url': plan.value.env.DATABASE_URL,
      kubeconfig: '/r/hoop-x/kubeconfig',
      'ssh-config': '/r/hoop-x/ssh_config',
    });
    expect(plan.value.notes).toEqual([]);
  });

  it('falls back to the ca-cert input, then to the system roots, for PGSSLROOTCERT', () => {
    const withInput = planWiring(session([postgresTarget('s_1')]), {
      dir: '/d',
      sshKey,
      caCertPem: 'INPUT CA',
    });
    const none = planWiring(session([postgresTarget('s_1')]), { dir: '/d', sshKey, caCertPem: undefined });
    if (!withInput.ok || !none.ok) throw new Error('plan');
    expect(withInput.value.files).toEqual([{ path: '/d/broker-ca.pem', content: 'INPUT CA' }]);
    expect(none.value.files).toEqual([]);
    expect(none.value.env.PGSSLROOTCERT).toBe('system');
  });

  it('notes kinds it cannot wire and collects every bad target', () => {
    // a kind this version does not know (a newer broker's), so outside the contract's types
    const odd = { name: 'q', kind: 'mysql', access: 'read' as const, connection: {} } as never;
    const ok = planWiring(session([odd]), { dir: '/d', sshKey, caCertPem: undefined });
    expect(ok).toMatchObject({
      ok: true,
      value: { notes: ['target q has kind "mysql", which this version of the action does not wire'] },
    });
    const bad = planWiring(
      session([
        { ...kube, connection: { server: 'http://x' } },
        { ...ssh, connection: {} as never },
      ]),
      {
        dir: '/d',
        sshKey,
        caCertPem: undefined,
      },
    );
    expect(bad).toEqual({
      ok: false,
      errors: [
        'target staging: connection.server must be https',
        'target build-host: connection.host is not a host name',
      ],
    });
  });
});

describe('session files', () => {
  it('live in a fresh 0700 directory, each file 0600', () => {
    const dir = sessionDirPath(join(tmpdir(), 'hoop-wire-test'));
    expect(dir).toMatch(/\/hoop-[A-Za-z0-9]{6}$/);
    try {
      createSessionDir(dir);
      expect(() => createSessionDir(dir)).toThrow(/EEXIST/);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      const plan = planWiring(session([postgresTarget('s_1'), kube, ssh], 'CA'), {
        dir,
        sshKey: generateSshKeyPair('t'),
        caCertPem: undefined,
      });
      if (!plan.ok) throw new Error('plan');
      writeSessionFiles(plan.value.files);
      for (const f of plan.value.files) {
        expect(statSync(f.path).mode & 0o777).toBe(0o600);
        expect(readFileSync(f.path, 'utf8')).toBe(f.content);
      }
    } finally {
      rmSync(join(tmpdir(), 'hoop-wire-test'), { recursive: true, force: true });
    }
  });
});
