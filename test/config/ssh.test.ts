// SSH targets and the ssh part of grants in the config: accepted, defaulted, and every mistake
// reported with its path and line.
import { describe, expect, it } from 'vitest';
import { loadConfigText, withDefaults } from '../../service/config/load.js';

const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ7rWsnR1Vn3Zl3K8M1b9QFv3o3LtqKZ2nqZJ9Yt5lQ3';

function config(target: string[], grant: string[]): string {
  return [
    'listen: { http: { port: 8080 }, ssh: { port: 2222 } }',
    'issuers:',
    '  - { name: github, issuer: https://token.actions.githubusercontent.com, audience: https://hoop.example.com }',
    'targets:',
    ...target,
    'policies:',
    '  - name: deploy',
    '    when: { repository_id: "123456" }',
    '    grants:',
    ...grant,
    '',
  ].join('\n');
}

const TARGET = [
  '  - name: build-host', // 5
  '    kind: ssh',
  '    host: build.internal',
  '    user: deploy',
  `    host_key: ${HOST_KEY}`,
  '    private_key: { file: /run/secrets/deploy_key }', // 10
];

describe('ssh targets in the config', () => {
  it('accepts an ssh target with its grant rules, and fills the port', () => {
    const loaded = loadConfigText(
      config(TARGET, [
        '      - target: build-host',
        '        access: write',
        '        ssh:',
        '          commands: { allow: ["make *", { regex: "systemctl (status|restart) app" }], deny: ["rm *"], approve: ["make deploy*"] }',
        '          sftp: { read: [/srv/app/**], write: [/srv/app/uploads/**] }',
        '          git: { read: [/srv/git/*.git], push: [/srv/git/app.git] }',
        '          forwards: ["db.internal:5432", "127.0.0.1:*"]',
        '          shell: true',
        '          pty: true',
        '          env: [LANG, "LC_*"]',
        '          record_input: true',
      ]),
      'hoop.yaml',
    );
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
    if (!loaded.ok) return;
    const resolved = withDefaults(loaded.config);
    expect(resolved.targets[0]).toMatchObject({ kind: 'ssh', port: 22, max_connections_per_session: 10 });
    expect(resolved.listen.ssh).toEqual({ port: 2222, host: '127.0.0.1' });
  });

  it('refuses a target without a pinned host key, without or with two credentials, and inline secrets', () => {
    const noKey = loadConfigText(
      config(
        TARGET.filter((l) => !l.includes('host_key')),
        ['      - { target: build-host, access: read }'],
      ),
      'hoop.yaml',
    );
    expect(!noKey.ok && noKey.errors).toEqual([
      expect.objectContaining({
        path: 'targets[0].host_key',
        line: 5,
        message: "missing required property 'host_key'",
      }),
    ]);
    const noCredential = loadConfigText(
      config(TARGET.slice(0, 5), ['      - { target: build-host, access: read }']),
      'hoop.yaml',
    );
    expect(!noCredential.ok && noCredential.errors).toEqual([
      expect.objectContaining({ path: 'targets[0]', message: expect.stringContaining('needs a credential') }),
    ]);
    const both = loadConfigText(
      config(
        [...TARGET, '    password: { env: DEPLOY_PASSWORD }'],
        ['      - { target: build-host, access: read }'],
      ),
      'hoop.yaml',
    );
    expect(!both.ok && both.errors).toEqual([
      expect.objectContaining({ message: expect.stringContaining('not both') }),
    ]);
    const inline = loadConfigText(
      config(
        [...TARGET.slice(0, 5), '    password: hunter2'],
        ['      - { target: build-host, access: read }'],
      ),
      'hoop.yaml',
    );
    expect(!inline.ok && inline.errors).toEqual([
      expect.objectContaining({
        path: 'targets[0].password',
        line: 10,
        message: 'inline secret refused: use {env: NAME} or {file: PATH}',
      }),
    ]);
    expect(JSON.stringify(inline)).not.toContain('hunter2');
    const badKey = loadConfigText(
      config(
        [...TARGET.slice(0, 4), '    host_key: not-a-key', TARGET[5]!],
        ['      - { target: build-host, access: read }'],
      ),
      'hoop.yaml',
    );
    expect(!badKey.ok && badKey.errors).toEqual([
      expect.objectContaining({ path: 'targets[0].host_key', line: 9 }),
    ]);
  });

  it('reports misplaced and malformed grant rules by path and line', () => {
    const loaded = loadConfigText(
      config(
        [...TARGET, '  - { name: db, kind: postgres, host: db, database: d, user: u, password: { env: P } }'],
        [
          '      - target: build-host', // 16
          '        access: write',
          '        mask: [{ column: "a.b" }]',
          '        ssh:',
          '          commands: { allow: ["/unclosed(/"] }', // 20
          '          sftp: { read: [relative/**] }',
          '          forwards: ["db:99999"]',
          '          shel: true',
          '      - target: db',
          '        access: read', // 25
          '        ssh: { shell: true }',
        ],
      ),
      'hoop.yaml',
    );
    expect(loaded.ok).toBe(false);
    if (loaded.ok) return;
    const byPath = Object.fromEntries(loaded.errors.map((e) => [e.path, `${e.line}: ${e.message}`]));
    expect(byPath).toMatchObject({
      'policies[0].grants[0].ssh.shel': "23: unknown property 'shel' (did you mean 'shell'?)",
    });
    // the schema errors come first; fix them and the semantic ones show
    const semantic = loadConfigText(
      config(
        [...TARGET, '  - { name: db, kind: postgres, host: db, database: d, user: u, password: { env: P } }'],
        [
          '      - target: build-host',
          '        access: write',
          '        mask: [{ column: "a.b" }]',
          '        ssh:',
          '          commands: { allow: ["/unclosed(/"] }',
          '          sftp: { read: [relative/**] }',
          '          forwards: ["db:99999"]',
          '      - target: db',
          '        access: read',
          '        ssh: { shell: true }',
        ],
      ),
      'hoop.yaml',
    );
    expect(semantic.ok).toBe(false);
    if (semantic.ok) return;
    const lines = Object.fromEntries(semantic.errors.map((e) => [e.path, `${e.line}: ${e.message}`]));
    expect(lines).toEqual({
      'policies[0].grants[0].mask': "18: mask rules are for postgres targets; 'build-host' is an ssh target",
      'policies[0].grants[0].ssh.commands.allow[0]': expect.stringMatching(/^20: invalid regular expression/),
      'policies[0].grants[0].ssh.sftp.read[0]': expect.stringMatching(/^21: must be an absolute path glob/),
      'policies[0].grants[0].ssh.forwards[0]': '22: port 99999 is not between 1 and 65535',
      'policies[0].grants[1].ssh': "25: ssh rules are for ssh targets; 'db' is a postgres target",
    });
  });
});
