// The broker's ssh host key: generated once (ed25519) and kept in data_dir/ssh/, or given by reference
// (listen.ssh.host_key: {file} or {env}, an OpenSSH or PEM private key). Its public half goes into
// every session's connection settings, so the action pins it in known_hosts.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';

const { utils } = ssh2;

export interface HostKey {
  /** the private key text, for ssh2's Server */
  privateKey: string;
  /** "type base64", as known_hosts and the connection settings carry it */
  publicKey: string;
}

/** Parse a private key text; a description of the problem when it is not a usable unencrypted key. */
export function parseHostKey(text: string): HostKey | string {
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error) return `not a private key ssh can use: ${parsed.message}`;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) return 'no key in it';
  if (!key.isPrivateKey()) return 'a public key, not a private key';
  return { privateKey: text, publicKey: `${key.type} ${key.getPublicSSH().toString('base64')}` };
}

/**
 * A new ed25519 key in OpenSSH format. ssh2's generator writes, now and then (about one key in a
 * hundred), a key its own parser calls malformed: keep only one that reads back.
 */
function generateEd25519(): string {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'hoop-broker host key' });
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair.private;
  }
  throw new Error('could not generate an ed25519 host key that parses');
}

export const HOST_KEY_FILE = join('ssh', 'host_ed25519_key');

/**
 * The key in data_dir/ssh/host_ed25519_key, created (0600, directory 0700) when it does not exist.
 * Throws when the file exists but holds no usable key (the operator's to fix; never overwritten).
 */
export function ensureHostKey(dataDir: string): HostKey {
  const path = join(dataDir, HOST_KEY_FILE);
  let text: string | null = null;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === null) {
    const pair = generateEd25519();
    mkdirSync(join(dataDir, 'ssh'), { recursive: true, mode: 0o700 });
    // 'wx': two brokers starting at once must not overwrite each other's key
    try {
      writeFileSync(path, pair, { mode: 0o600, flag: 'wx' });
      text = pair;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      text = readFileSync(path, 'utf8');
    }
  }
  const key = parseHostKey(text);
  if (typeof key === 'string') throw new Error(`${path}: ${key}`);
  return key;
}
