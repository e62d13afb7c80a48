// sftp and scp through the broker, judged request by request: what the grant's paths allow reaches the
// server (files on its disk, its sftp-server log), what they do not is refused with the reason.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SshHarness, startSshHarness } from './harness.js';

let h: SshHarness;
let pub: string;
let uploads: string;

beforeAll(async () => {
  h = await startSshHarness({
    grants: (sshd) => ({
      push: {
        access: 'write',
        ssh: { sftp: { read: [`${sshd.home}/**`], write: [`${sshd.home}/uploads/**`] } },
      },
      pull_request: { access: 'read', ssh: { sftp: { read: [`${sshd.home}/pub/**`] } } },
    }),
  });
  pub = join(h.home, 'pub');
  uploads = join(h.home, 'uploads');
  mkdirSync(pub);
  mkdirSync(uploads);
  mkdirSync(join(h.home, 'private'));
  writeFileSync(join(pub, 'readme.txt'), 'public file\n');
  writeFileSync(join(h.home, 'private', 'secret.txt'), 'not for you\n');
  h.sshd.own(h.home);
});
afterAll(async () => h?.close());

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('sftp through the ssh gateway', () => {
  it('sftp batch: allowed gets and puts happen, denied ones are refused with the reason', async () => {
    const job = await h.open('push');
    const local = join(job.dir, 'up.bin');
    writeFileSync(local, randomBytes(200_000));
    const batch = join(job.dir, 'batch');
    writeFileSync(
      batch,
      [
        `get ${pub}/readme.txt ${job.dir}/readme.txt`,
        `put ${local} ${uploads}/up.bin`,
        `rename ${uploads}/up.bin ${uploads}/renamed.bin`,
        `mkdir ${uploads}/dir`,
        `-put ${local} ${h.home}/private/dropped.bin`,
        `-rm ${pub}/readme.txt`,
        `-rename ${uploads}/renamed.bin ${h.home}/escaped.bin`,
        `-get ${h.home}/../../etc/hostname ${job.dir}/x`,
        `ls ${uploads}`,
      ].join('\n'),
    );
    const r = await job.run('sftp', ['-F', job.configFile, '-b', batch, 'build-host']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(job.dir, 'readme.txt'), 'utf8')).toBe('public file\n');
    expect(sha(readFileSync(join(uploads, 'renamed.bin')))).toBe(sha(readFileSync(local)));
    expect(existsSync(join(uploads, 'dir'))).toBe(true);
    expect(existsSync(join(h.home, 'private', 'dropped.bin'))).toBe(false);
    expect(existsSync(join(pub, 'readme.txt'))).toBe(true);
    expect(existsSync(join(h.home, 'escaped.bin'))).toBe(false);
    // sftp shows the status code's own words; the broker's reason comes on stderr
    expect(r.stderr).toMatch(/dropped\.bin": Permission denied/);
    expect(r.stderr).toContain(`hoop: writing "${h.home}/private/dropped.bin" refused: no sftp.write rule`);
    // the refused requests never reached the server
    const log = h.sshd.log();
    expect(log).toMatch(/open "[^"]*uploads\/up\.bin" flags WRITE,CREATE,TRUNCATE/);
    expect(log).not.toContain('dropped.bin');
    expect(log).not.toMatch(/remove name "[^"]*readme\.txt"/);
    expect(log).not.toContain('escaped.bin');

    const t = await job.transcriptWhen((x) =>
      x.events.some((e) => e.kind === 'ssh.sftp' && e.operation.op === 'rename'),
    );
    const sftp = t.events.filter((e) => e.kind === 'ssh.sftp');
    const put = sftp.find((e) => e.operation.op === 'open' && e.operation.mode === 'write');
    expect(put?.operation).toMatchObject({ path: `${uploads}/up.bin`, bytes_in: 200_000 });
    const get = sftp.find((e) => e.operation.op === 'open' && e.operation.mode === 'read');
    expect(get?.operation).toMatchObject({ path: `${pub}/readme.txt`, bytes_out: 12 });
    const denied = t.events.filter((e) => e.kind === 'ssh.denied');
    expect(denied.map((e) => [e.operation.op, e.operation.rule])).toEqual([
      ['open', 'sftp.write'],
      ['remove', 'sftp.write'],
      ['rename', 'sftp.write'],
      ['stat', 'sftp.read'],
    ]);
  });

  it('setstat (chmod), symlink and mkdir are writes: allowed under the write globs, refused elsewhere', async () => {
    const job = await h.open('push');
    writeFileSync(join(uploads, 'mode.txt'), 'm\n');
    writeFileSync(join(pub, 'mode.txt'), 'm\n');
    h.sshd.own(h.home);
    const batch = join(job.dir, 'batch-writes');
    writeFileSync(
      batch,
      [
        `chmod 600 ${uploads}/mode.txt`,
        `symlink ${uploads}/mode.txt ${uploads}/link`,
        `-chmod 600 ${pub}/mode.txt`,
        `-symlink ${uploads}/mode.txt ${pub}/link`,
        // a link to a path the grant cannot write would be a second name for it: refused too
        `-symlink ${pub}/readme.txt ${uploads}/alias`,
        `-mkdir ${pub}/newdir`,
      ].join('\n'),
    );
    const r = await job.run('sftp', ['-F', job.configFile, '-b', batch, 'build-host']);
    expect(r.code, r.stderr).toBe(0);
    const { lstatSync, readlinkSync, statSync } = await import('node:fs');
    expect(statSync(join(uploads, 'mode.txt')).mode & 0o777).toBe(0o600);
    expect(readlinkSync(join(uploads, 'link'))).toBe(`${uploads}/mode.txt`);
    expect(() => lstatSync(join(uploads, 'alias'))).toThrow();
    expect(statSync(join(pub, 'mode.txt')).mode & 0o777).not.toBe(0o600);
    expect(() => lstatSync(join(pub, 'link'))).toThrow();
    expect(existsSync(join(pub, 'newdir'))).toBe(false);
    expect(r.stderr).toContain(`hoop: changing attributes of "${pub}/mode.txt" refused: no sftp.write rule`);
    expect(r.stderr).toContain(`hoop: creating symlink "${pub}/readme.txt" refused`);
    const t = await job.transcriptWhen((x) => x.events.filter((e) => e.kind === 'ssh.denied').length >= 4);
    const denied = t.events.filter((e) => e.kind === 'ssh.denied');
    expect(denied.map((e) => [e.operation.op, e.operation.path, e.operation.rule])).toEqual([
      ['setstat', `${pub}/mode.txt`, 'sftp.write'],
      ['symlink', `${pub}/link`, 'sftp.write'],
      ['symlink', `${uploads}/alias`, 'sftp.write'],
      ['mkdir', `${pub}/newdir`, 'sftp.write'],
    ]);
    const done = t.events.filter((e) => e.kind === 'ssh.sftp').map((e) => [e.operation.op, e.operation.path]);
    expect(done).toEqual(
      expect.arrayContaining([
        ['setstat', `${uploads}/mode.txt`],
        ['symlink', `${uploads}/link`],
      ]),
    );
  });

  it('scp in SFTP mode (the default) and legacy mode (-O), both ways, judged by the same paths', async () => {
    const job = await h.open('push');
    const local = join(job.dir, 'payload.bin');
    const data = randomBytes(1_000_000);
    writeFileSync(local, data);
    for (const [mode, flags] of [
      ['sftp', []],
      ['legacy', ['-O']],
    ] as const) {
      const up = await job.run('scp', [
        '-F',
        job.configFile,
        ...flags,
        local,
        `build-host:${uploads}/${mode}.bin`,
      ]);
      expect(up.code, `${mode} upload: ${up.stderr}`).toBe(0);
      expect(sha(readFileSync(join(uploads, `${mode}.bin`)))).toBe(sha(data));
      const down = await job.run('scp', [
        '-F',
        job.configFile,
        ...flags,
        `build-host:${uploads}/${mode}.bin`,
        `${job.dir}/${mode}.back`,
      ]);
      expect(down.code, `${mode} download: ${down.stderr}`).toBe(0);
      expect(sha(readFileSync(join(job.dir, `${mode}.back`)))).toBe(sha(data));
      const refused = await job.run('scp', [
        '-F',
        job.configFile,
        ...flags,
        local,
        `build-host:${h.home}/private/${mode}.bin`,
      ]);
      expect(refused.code, mode).not.toBe(0);
      expect(refused.stderr, mode).toContain('hoop:');
      expect(existsSync(join(h.home, 'private', `${mode}.bin`))).toBe(false);
    }
    const t = await job.transcriptWhen((x) => x.events.filter((e) => e.kind === 'ssh.exec').length >= 2);
    const legacy = t.events.filter((e) => e.kind === 'ssh.exec').map((e) => e.operation.command);
    expect(legacy.some((c) => /^scp .*-t .*legacy\.bin$/.test(String(c)))).toBe(true);
    expect(legacy.some((c) => /^scp .*-f .*legacy\.bin$/.test(String(c)))).toBe(true);
  });

  it('scp (SFTP) of 256 MB up and down: whole on both ends, counted in the transcript, the broker RSS flat', async () => {
    const job = await h.open('push');
    const MB256 = 256 * 1024 * 1024;
    const local = join(job.dir, 'big.bin');
    const remote = join(uploads, 'big.bin');
    const back = join(job.dir, 'big.back');
    // made and compared by programs: this process is the broker's, its RSS must hold only the broker
    await job.run('sh', ['-c', `head -c ${MB256} /dev/urandom > ${local}`], { timeoutMs: 60_000 });
    // warm up with a small file: a copy of the big one would leave its own peak as the baseline
    const warm = join(job.dir, 'warm.bin');
    writeFileSync(warm, Buffer.alloc(4 * 1024 * 1024));
    await job.run('scp', ['-F', job.configFile, warm, `build-host:${uploads}/warm.bin`]);
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 25);
    try {
      const up = await job.run('scp', ['-F', job.configFile, local, `build-host:${remote}`], {
        timeoutMs: 240_000,
      });
      expect(up.code, up.stderr).toBe(0);
      const down = await job.run('scp', ['-F', job.configFile, `build-host:${remote}`, back], {
        timeoutMs: 240_000,
      });
      expect(down.code, down.stderr).toBe(0);
    } finally {
      clearInterval(sampler);
    }
    const same = await job.run('sh', ['-c', `cmp ${local} ${remote} && cmp ${local} ${back} && echo same`]);
    expect(same.stdout.trim()).toBe('same');
    // windows (2 MB a channel each way), socket buffers and garbage: far less than a broker that kept
    // file data (a recording tap, gathered packets) would hold
    expect(peak - baseline).toBeLessThan(96 * 1024 * 1024);
    const t = await job.transcriptWhen(
      (x) =>
        x.events.filter(
          (e) => e.kind === 'ssh.sftp' && e.operation.path === remote && e.operation.op === 'open',
        ).length >= 2,
    );
    const opens = t.events.filter((e) => e.operation.path === remote && e.operation.op === 'open');
    expect(opens.map((e) => [e.operation.mode, e.operation.bytes_in, e.operation.bytes_out])).toEqual([
      ['write', MB256, 0],
      ['read', 0, MB256],
    ]);
  }, 600_000);

  it('a read grant reads its paths and writes nothing', async () => {
    const job = await h.open('pull_request');
    const got = await job.run('scp', [
      '-F',
      job.configFile,
      `build-host:${pub}/readme.txt`,
      `${job.dir}/r.txt`,
    ]);
    expect(got.code, got.stderr).toBe(0);
    const secret = await job.run('scp', [
      '-F',
      job.configFile,
      `build-host:${h.home}/private/secret.txt`,
      `${job.dir}/s.txt`,
    ]);
    expect(secret.code).not.toBe(0);
    const local = join(job.dir, 'x');
    writeFileSync(local, 'x');
    const put = await job.run('scp', ['-F', job.configFile, local, `build-host:${pub}/x`]);
    expect(put.code).not.toBe(0);
    expect(put.stderr).toContain("the grant's access is read");
    expect(existsSync(join(pub, 'x'))).toBe(false);
  });
});
