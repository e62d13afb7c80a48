// The broker's ssh host key as a job meets it: generated once and kept in data_dir (the same key after
// a restart), or given by reference (listen.ssh.host_key: {file}); either way the session's connection
// settings carry its public half, and the real ssh client, pinning it, logs in.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HOST_KEY_FILE } from '../../../service/gateways/ssh/host-key.js';
import { type SshHarness, startSshHarness } from './harness.js';

const grants = { push: { access: 'write' as const, ssh: { commands: { allow: ['echo *'] } } } };
const scratch = mkdtempSync(join(tmpdir(), 'hoop-ssh-hostkey-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function hostKeyOf(created: { targets: { name: string; connection?: unknown }[] }): string {
  return (created.targets.find((t) => t.name === 'build-host')!.connection as { host_key: string }).host_key;
}

async function loginWorks(h: SshHarness): Promise<string> {
  const job = await h.open('push');
  const r = await job.ssh(['build-host', 'echo pinned']);
  expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'pinned\n' });
  return hostKeyOf(job.created);
}

describe('the broker ssh host key', () => {
  it('is generated once into data_dir (0600) and is the same key after a restart', async () => {
    const dataDir = join(scratch, 'data');
    let h = await startSshHarness({ grants, dataDir });
    let first: string;
    try {
      first = await loginWorks(h);
    } finally {
      await h.close();
    }
    const file = join(dataDir, HOST_KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    h = await startSshHarness({ grants, dataDir });
    try {
      expect(await loginWorks(h)).toBe(first);
    } finally {
      await h.close();
    }
    expect(first).toMatch(/^ssh-ed25519 AAAA/);
  }, 60_000);

  it('is taken from a file by reference, its public half in the connection settings', async () => {
    const keyFile = join(scratch, 'broker_host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'x', '-f', keyFile]);
    const pub = readFileSync(`${keyFile}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const h = await startSshHarness({ grants, brokerHostKey: { file: keyFile } });
    try {
      expect(await loginWorks(h)).toBe(pub);
      // nothing was generated in data_dir when a key is given
      expect(() => statSync(join(h.broker.dataDir, HOST_KEY_FILE))).toThrow();
    } finally {
      await h.close();
    }
  }, 60_000);
});
