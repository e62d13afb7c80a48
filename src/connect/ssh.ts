// SSH targets: an ephemeral ed25519 key (its public half goes to the broker with the session request),
// known_hosts pinning the broker's host key, and an ssh config with one `Host <target>` per target.
// The OpenSSH private key format is written here (it is short) so no SSH library ships in the bundle.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { SessionTarget } from '../../service/api/schemas.js';
import { isPort, matches, noConnection } from './postgres.js';

export type SshSessionTarget = Extract<SessionTarget, { kind: 'ssh' }>;

export interface SshKeyPair {
  /** "-----BEGIN OPENSSH PRIVATE KEY-----…", unencrypted */
  privateKey: string;
  /** "ssh-ed25519 AAAA… comment" */
  publicKey: string;
}

export interface SshSettings {
  target: string;
  host: string;
  port: number;
  user: string;
  /** "type base64", the key the broker's ssh endpoint presents */
  hostKey: string;
}

export interface SshFiles {
  identityFile: string;
  knownHostsFile: string;
}

function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function ed25519PublicBlob(publicKey: Buffer): Buffer {
  return Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
}

/**
 * The "openssh-key-v1" container (PROTOCOL.key in OpenSSH): no cipher, no KDF, one key; the private
 * section holds a repeated check integer, the key (seed || public) and the comment, padded to 8 bytes.
 */
export function opensshPrivateKey(
  seed: Buffer,
  publicKey: Buffer,
  comment: string,
  checkInt: number,
): string {
  const priv = Buffer.concat([
    uint32(checkInt),
    uint32(checkInt),
    sshString('ssh-ed25519'),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])),
    sshString(comment),
  ]);
  const padLength = (8 - (priv.length % 8)) % 8;
  const padding = Buffer.from(Array.from({ length: padLength }, (_, i) => i + 1));
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    uint32(1),
    sshString(ed25519PublicBlob(publicKey)),
    sshString(Buffer.concat([priv, padding])),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

export function generateSshKeyPair(comment: string): SshKeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  if (!jwk.d || !jwk.x) throw new Error('ed25519 key export lacks d or x');
  const seed = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  const safeComment = comment.replace(/[^\x21-\x7e]/g, '_');
  return {
    privateKey: opensshPrivateKey(seed, pub, safeComment, randomBytes(4).readUInt32BE()),
    publicKey: `ssh-ed25519 ${ed25519PublicBlob(pub).toString('base64')} ${safeComment}`,
  };
}

const HOST_KEY_TYPES = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]);

/** "type base64" from an OpenSSH public key line, checked: the blob must name the same key type. */
export function parseHostKey(line: string): string | null {
  const [type, b64] = line.trim().split(/\s+/);
  if (!type || !b64 || !HOST_KEY_TYPES.has(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return null;
  const blob = Buffer.from(b64, 'base64');
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (4 + len > blob.length) return null;
  const blobType = blob.subarray(4, 4 + len).toString('latin1');
  // RSA keys are stored as "ssh-rsa" whatever signature algorithm is negotiated.
  if (blobType !== (type.startsWith('rsa-sha2') ? 'ssh-rsa' : type)) return null;
  return `${blobType} ${b64}`;
}

// Values that end up in ssh_config: no whitespace, quotes or %-tokens (ssh expands %d, %h, … in some keywords).
const SAFE_WORD = /^[A-Za-z0-9._@:+-]+$/;
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function sshSettings(
  target: SshSessionTarget,
): { ok: true; value: SshSettings } | { ok: false; error: string } {
  const c = target.connection;
  const where = `target ${target.name}: connection`;
  if (!ALIAS.test(target.name))
    return { ok: false, error: `target ${target.name}: name cannot be an ssh Host alias` };
  if (!c) return { ok: false, error: noConnection(target) };
  if (!matches(SAFE_WORD, c.host)) return { ok: false, error: `${where}.host is not a host name` };
  if (!isPort(c.port)) return { ok: false, error: `${where}.port is not a port number` };
  if (!matches(SAFE_WORD, c.user)) return { ok: false, error: `${where}.user is not a user name` };
  const hostKey = matches(/./, c.host_key) ? parseHostKey(c.host_key) : null;
  if (!hostKey) return { ok: false, error: `${where}.host_key is not an OpenSSH public key` };
  return { ok: true, value: { target: target.name, host: c.host, port: c.port, user: c.user, hostKey } };
}

/** known_hosts: `host` for port 22, `[host]:port` otherwise (how ssh looks the key up). */
export function knownHosts(settings: readonly SshSettings[]): string {
  const lines = new Set(
    settings.map((s) => `${s.port === 22 ? s.host : `[${s.host}]:${s.port}`} ${s.hostKey}`),
  );
  return `${[...lines].join('\n')}\n`;
}

function configPath(path: string): string {
  if (/["\n\r]/.test(path))
    throw new Error(`path cannot be written into an ssh config: ${JSON.stringify(path)}`);
  return `"${path.replace(/%/g, '%%')}"`;
}

/** `ssh -F <this file> <target>` reaches the target through the broker, with only this key and host key. */
export function sshConfig(settings: readonly SshSettings[], files: SshFiles, sessionId: string): string {
  const blocks = settings.map((s) =>
    [
      `Host ${s.target}`,
      `  HostName ${s.host}`,
      `  Port ${s.port}`,
      `  User ${s.user}`,
      `  IdentityFile ${configPath(files.identityFile)}`,
      '  IdentitiesOnly yes',
      '  IdentityAgent none',
      `  UserKnownHostsFile ${configPath(files.knownHostsFile)}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  UpdateHostKeys no',
      '  BatchMode yes',
      '  PasswordAuthentication no',
      '  KbdInteractiveAuthentication no',
    ].join('\n'),
  );
  const header = `# hoop session ${sessionId.replace(/[^A-Za-z0-9_-]/g, '_')}: ssh -F "$HOOP_SSH_CONFIG" <target>`;
  return `${header}\n\n${blocks.join('\n\n')}\n`;
}
