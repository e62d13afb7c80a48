// The broker's own ssh connection to a target: ssh2's Client, the target's host key pinned (any other
// key refuses the connection: there is no trust on first use), logging in with the target's private
// key or password (resolved from their references at start-up; never logged, never sent to clients).
import { connect } from 'node:net';
import ssh2, { type Client, type ConnectConfig } from 'ssh2';
import { coalesceWrites } from './coalesce.js';
import type { SshTarget } from '../../config/targets/ssh.js';

const { utils } = ssh2;

/** A target as the gateway uses it: its settings and the resolved credential. */
export interface UpstreamTarget {
  target: SshTarget & { port: number };
  /** the pinned host keys' public blobs */
  hostKeys: Buffer[];
  credential: { privateKey: string } | { password: string };
}

/** Ciphers both sides are fast at without native helpers (AES-GCM runs in OpenSSL, via node:crypto). */
export const FAST_CIPHERS = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'aes128-ctr',
  'aes256-ctr',
] as const;

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly kind: 'host-key' | 'auth' | 'connect',
  ) {
    super(message);
  }
}

/** The public blobs of pinned "type base64" keys; a description of the first bad one otherwise. */
export function pinnedHostKeys(keys: string | readonly string[]): Buffer[] | string {
  const out: Buffer[] = [];
  for (const line of typeof keys === 'string' ? [keys] : keys) {
    const parsed = utils.parseKey(line.trim());
    if (parsed instanceof Error) return `host_key ${JSON.stringify(line.slice(0, 40))}…: ${parsed.message}`;
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key) return 'host_key holds no key';
    out.push(key.getPublicSSH());
  }
  return out;
}

/** Whether a credential text is a usable (unencrypted) private key. */
export function privateKeyProblem(text: string): string | null {
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error) return parsed.message;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || !key.isPrivateKey()) return 'not a private key';
  return null;
}

/** Connect and log in; rejects with an UpstreamError whose message is safe to show the client. */
export function connectUpstream(
  up: UpstreamTarget,
  opts: { timeoutMs: number; onClient: (client: Client) => void },
): Promise<Client> {
  const client = new ssh2.Client();
  opts.onClient(client);
  const { target } = up;
  let hostKeyRefused = false;
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    // our own socket (ssh2 waits for its 'connect'), so its writes are coalesced (coalesce.ts)
    sock: coalesceWrites(connect({ host: target.host, port: target.port })),
    username: target.user,
    readyTimeout: opts.timeoutMs,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    algorithms: { cipher: [...FAST_CIPHERS] },
    hostVerifier: (key: Buffer) => {
      const ok = up.hostKeys.some((pinned) => pinned.equals(key));
      if (!ok) hostKeyRefused = true;
      return ok;
    },
    ...('privateKey' in up.credential
      ? { privateKey: up.credential.privateKey }
      : { password: up.credential.password, tryKeyboard: false }),
  };
  return new Promise<Client>((resolve, reject) => {
    const onError = (err: Error & { level?: string }) => {
      client.removeListener('ready', onReady);
      client.end();
      if (hostKeyRefused)
        reject(
          new UpstreamError(
            `the ssh server of target ${target.name} presented a host key that is not the pinned host_key; refusing to connect`,
            'host-key',
          ),
        );
      else if (err.level === 'client-authentication')
        reject(new UpstreamError(`the broker could not log in to target ${target.name}`, 'auth'));
      else
        reject(
          new UpstreamError(
            `the broker could not reach target ${target.name} (${target.host}:${target.port}): ${err.message}`,
            'connect',
          ),
        );
    };
    const onReady = () => {
      client.removeListener('error', onError);
      resolve(client);
    };
    client.once('error', onError);
    client.once('ready', onReady);
    client.connect(config);
    client.setNoDelay(true);
  });
}
