// git over ssh through the broker: clone and push to a bare repository on the target, by repository
// rules; a read-only grant fetches but cannot push.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SshHarness, startSshHarness } from './harness.js';

let h: SshHarness;
let app: string;
let other: string;

beforeAll(async () => {
  h = await startSshHarness({
    grants: (sshd) => ({
      push: {
        access: 'write',
        ssh: { git: { read: [`${sshd.home}/*.git`], push: [`${sshd.home}/app.git`] } },
      },
      pull_request: {
        access: 'read',
        ssh: { git: { read: [`${sshd.home}/app.git`], push: [`${sshd.home}/app.git`] } },
      },
    }),
  });
  app = await h.sshd.createBareRepo('app');
  other = await h.sshd.createBareRepo('other');
});
afterAll(async () => h?.close());

const heads = (bare: string) =>
  execFileSync('git', ['--git-dir', bare, 'log', '--format=%s', 'main'], { encoding: 'utf8' });

describe('git over ssh through the gateway', () => {
  it('clones and pushes where the grant allows; pushes elsewhere are refused before git-receive-pack runs', async () => {
    const job = await h.open('push');
    const clone = await job.run('git', ['clone', '-q', `build-host:${app}`, 'app']);
    expect(clone.code, clone.stderr).toBe(0);
    const work = join(job.dir, 'app');
    expect(readFileSync(join(work, 'README'), 'utf8')).toBe('the app repository\n');
    writeFileSync(join(work, 'change.txt'), 'from the job\n');
    await job.run('git', ['-C', work, 'add', 'change.txt']);
    await job.run('git', ['-C', work, 'commit', '-q', '-m', 'pushed through hoop']);
    const push = await job.run('git', ['-C', work, 'push', '-q', 'origin', 'main']);
    expect(push.code, push.stderr).toBe(0);
    expect(heads(app).split('\n')[0]).toBe('pushed through hoop');

    const cloneOther = await job.run('git', ['clone', '-q', `build-host:${other}`, 'other']);
    expect(cloneOther.code, cloneOther.stderr).toBe(0);
    const otherWork = join(job.dir, 'other');
    writeFileSync(join(otherWork, 'x'), 'x');
    await job.run('git', ['-C', otherWork, 'add', 'x']);
    await job.run('git', ['-C', otherWork, 'commit', '-q', '-m', 'not allowed']);
    const refused = await job.run('git', ['-C', otherWork, 'push', 'origin', 'main']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`hoop: git push to "${other}" refused: no git.push rule`);
    expect(heads(other)).not.toContain('not allowed');

    const t = await job.transcriptWhen((x) => x.events.some((e) => e.kind === 'ssh.denied'));
    const cmds = t.events.filter((e) => e.kind === 'ssh.exec').map((e) => e.operation.command);
    expect(cmds).toEqual(expect.arrayContaining([`git-upload-pack '${app}'`, `git-receive-pack '${app}'`]));
    const denied = t.events.find((e) => e.kind === 'ssh.denied');
    expect(denied?.operation).toMatchObject({ command: `git-receive-pack '${other}'`, rule: 'git.push' });
    const upload = t.events.find((e) => e.operation.command === `git-upload-pack '${app}'`);
    expect(upload?.operation.bytes_out).toBeGreaterThan(100);
    // file data, not terminal output: no recording
    expect(upload?.operation.recording).toBeUndefined();
  });

  it('a read-only grant clones but cannot push, whatever its git.push says', async () => {
    const job = await h.open('pull_request');
    const clone = await job.run('git', ['clone', '-q', `build-host:${app}`, 'app']);
    expect(clone.code, clone.stderr).toBe(0);
    const work = join(job.dir, 'app');
    writeFileSync(join(work, 'ro.txt'), 'ro');
    await job.run('git', ['-C', work, 'add', 'ro.txt']);
    await job.run('git', ['-C', work, 'commit', '-q', '-m', 'read-only push']);
    const push = await job.run('git', ['-C', work, 'push', 'origin', 'main']);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain("the grant's access is read");
    expect(heads(app)).not.toContain('read-only push');
    expect(existsSync(join(work, 'ro.txt'))).toBe(true);
    const noRepo = await job.run('git', ['clone', '-q', `build-host:${other}`, 'other']);
    expect(noRepo.code).not.toBe(0);
    expect(noRepo.stderr).toContain('no git.read (or git.push) rule');
  });
});
