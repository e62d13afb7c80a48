import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionTarget } from '../../../service/api/schemas.js';
import {
  generateSshKeyPair,
  knownHosts,
  parseHostKey,
  sshConfig,
  sshSettings,
} from '../../../src/connect/ssh.js';

const run = promisify(execFile);
const { Server, utils } = ssh2;

function sshTarget(
  hostKey: string,
  port = 2222,
  name = 'build-host',
): Extract<SessionTarget, { kind: 'ssh' }> {
  return {
    name,
    kind: 'ssh',
    access: 'write',
    connection: { host: '127.0.0.1', port, user: 's_1', host_key: hostKey },
  };
}

describe('ephemeral ed25519 key', () => {
  it('writes an OpenSSH private key that ssh-keygen and ssh2 read back to the same public key', async () => {
    const pair = generateSshKeyPair('hoop-action@octo-org/octo-repo#1');
    expect(pair.privateKey).toMatch(
      /^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END OPENSSH PRIVATE KEY-----\n$/,
    );
    expect(pair.publicKey).toMatch(
      /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* hoop-action@octo-org\/octo-repo#1$/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'hoop-key-'));
    try {
      writeFileSync(join(dir, 'id'), pair.privateKey, { mode: 0o600 });
      const { stdout } = await run('ssh-keygen', ['-y', '-f', join(dir, 'id')]);
      expect(stdout.trim().split(' ').slice(0, 2)).toEqual(pair.publicKey.split(' ').slice(0, 2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const parsed = utils.parseKey(pair.privateKey);
    if (parsed instanceof Error) throw parsed;
    const key = Array.isArray(parsed) ? parsed[0]! : parsed;
    expect(key.type).toBe('ssh-ed25519');
    expect(key.getPublicSSH().toString('base64')).toBe(pair.publicKey.split(' ')[1]);
    // and it signs: the private half really is the seed of the public half
    const data = Buffer.from('challenge');
    expect(key.verify(data, key.sign(data))).toBe(true);
  });

  it('differs every time', () => {
    expect(generateSshKeyPair('x').publicKey).not.toBe(generateSshKeyPair('x').publicKey);
  });
});

describe('host key, known_hosts and ssh config', () => {
  const hostKey = utils.generateKeyPairSync('ed25519').public;

  it('accepts OpenSSH public key lines whose blob names the same type', () => {
    expect(parseHostKey(`${hostKey} comment`)).toBe(hostKey.split(' ').slice(0, 2).join(' '));
    expect(parseHostKey(hostKey.replace('ssh-ed25519', 'ssh-rsa'))).toBeNull();
    expect(parseHostKey('ssh-ed25519 !!!')).toBeNull();
    expect(parseHostKey('')).toBeNull();
  });

  it('pins [host]:port, or the bare host on port 22', () => {
    const a = sshSettings(sshTarget(hostKey, 2222));
    const b = sshSettings(sshTarget(hostKey, 22, 'other'));
    if (!a.ok || !b.ok) throw new Error('settings');
    const key = hostKey.split(' ').slice(0, 2).join(' ');
    expect(knownHosts([a.value, b.value])).toBe(`[127.0.0.1]:2222 ${key}\n127.0.0.1 ${key}\n`);
  });

  it('refuses values that could inject ssh_config lines or %-tokens', () => {
    const t = sshTarget(hostKey);
    expect(
      sshSettings({ ...t, connection: { ...t.connection!, user: 'x\n  ProxyCommand evil' } }),
    ).toMatchObject({ ok: false });
    expect(sshSettings({ ...t, connection: { ...t.connection!, host: '%d' } })).toMatchObject({ ok: false });
    expect(sshSettings({ ...t, name: 'a b' })).toMatchObject({ ok: false });
    expect(sshSettings({ ...t, connection: { ...t.connection!, host_key: 'nope' } })).toEqual({
      ok: false,
      error: 'target build-host: connection.host_key is not an OpenSSH public key',
    });
    const s = sshSettings(t);
    if (!s.ok) throw new Error(s.error);
    expect(() => sshConfig([s.value], { identityFile: '/tmp/a"b', knownHostsFile: '/tmp/k' }, 's_1')).toThrow(
      /cannot be written/,
    );
    expect(sshConfig([s.value], { identityFile: '/tmp/100%/id', knownHostsFile: '/tmp/k' }, 's_1')).toContain(
      'IdentityFile "/tmp/100%%/id"',
    );
  });
});

describe('ssh reaches a server through the written config (ssh2 server standing in for the gateway)', () => {
  const host = utils.generateKeyPairSync('ed25519');
  const client = generateSshKeyPair('test');
  let server: InstanceType<typeof Server>;
  let port = 0;
  let dir: string;

  beforeAll(async () => {
    const allowed = utils.parseKey(client.publicKey);
    if (allowed instanceof Error || Array.isArray(allowed)) throw new Error('parse');
    server = new Server({ hostKeys: [host.private] }, (conn) => {
      conn.on('authentication', (ctx) => {
        if (
          ctx.method === 'publickey' &&
          ctx.username === 's_1' &&
          ctx.key.data.equals(allowed.getPublicSSH())
        ) {
          if (!ctx.signature) return ctx.accept();
          return allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) ? ctx.accept() : ctx.reject();
        }
        ctx.reject(['publickey']);
      });
      conn.on('ready', () => {
        conn.on('session', (accept) => {
          accept().once('exec', (acceptExec, _reject, info) => {
            const stream = acceptExec();
            stream.write(`ran: ${info.command}\n`);
            stream.exit(0);
            stream.end();
          });
        });
      });
      conn.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
    dir = mkdtempSync(join(tmpdir(), 'hoop-ssh-'));
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  function writeConfig(hostKey: string): string {
    const s = sshSettings(sshTarget(hostKey, port));
    if (!s.ok) throw new Error(s.error);
    const files = { identityFile: join(dir, 'id_ed25519'), knownHostsFile: join(dir, 'known_hosts') };
    writeFileSync(files.identityFile, client.privateKey, { mode: 0o600 });
    writeFileSync(files.knownHostsFile, knownHosts([s.value]));
    writeFileSync(join(dir, 'ssh_config'), sshConfig([s.value], files, 's_1'));
    return join(dir, 'ssh_config');
  }

  it('authenticates with the ephemeral key and the pinned host key', async () => {
    const config = writeConfig(host.public);
    const { stdout } = await run('ssh', ['-F', config, 'build-host', 'echo hi'], {
      env: { PATH: process.env.PATH ?? '', HOME: dir },
    });
    expect(stdout).toBe('ran: echo hi\n');
  });

  it('refuses a server whose host key is not the pinned one', async () => {
    const config = writeConfig(utils.generateKeyPairSync('ed25519').public);
    await expect(
      run('ssh', ['-F', config, 'build-host', 'true'], { env: { PATH: process.env.PATH ?? '', HOME: dir } }),
    ).rejects.toMatchObject({
      stderr: expect.stringMatching(/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/),
    });
  });
});
