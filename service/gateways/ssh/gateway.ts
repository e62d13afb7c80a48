// The ssh gateway: an ssh2 Server on listen.ssh whose clients are CI jobs holding a session's
// ephemeral key. It owns the listener, every client connection (connection.ts) and their upstream
// connections; the session guard closes a session's connections when it ends.
import { type AddressInfo, createServer } from 'node:net';
import type { Logger } from 'pino';
import ssh2, { type CipherAlgorithm, type Server } from 'ssh2';
import type { Approver, EventSink } from '../operation-flow.js';
import type { SessionGuard } from '../session-guard.js';
import type { RecordingSink } from './connection-scope.js';
import {
  type ConnectionHost,
  DEFAULT_SSH_LIMITS,
  SshConnection,
  type SshGatewayLimits,
} from './connection.js';
import { coalesceWrites } from './coalesce.js';
import type { HostKey } from './host-key.js';
import type { UpstreamTarget } from './upstream.js';

export interface SshGatewayDeps {
  logger: Logger;
  hostKey: HostKey;
  guard: SessionGuard;
  targets: ReadonlyMap<string, UpstreamTarget>;
  /** the session's transcript */
  sink(sessionId: string): EventSink;
  recordings: RecordingSink;
  approver: Approver;
  now(): Date;
  limits?: Partial<SshGatewayLimits>;
  /** live connections, decisions (metrics) */
  onConnection?(delta: 1 | -1): void;
  count?(decision: 'allow' | 'deny'): void;
}

export interface SshGateway {
  port: number;
  /** "type base64" of the host key clients must pin */
  hostPublicKey: string;
  connectionCount(): number;
  close(): Promise<void>;
}

/**
 * The server's ciphers: AES-GCM only. Without ssh2's native helper chacha20-poly1305's MAC runs in
 * WASM; and OpenSSH clients prefer aes-ctr (with an HMAC, computed separately) over GCM when both are
 * offered, which costs the broker a third more CPU per byte. Every OpenSSH since 6.2 speaks GCM.
 */
const SERVER_CIPHERS: CipherAlgorithm[] = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'];

export async function startSshGateway(
  deps: SshGatewayDeps,
  listen: { host: string; port: number },
): Promise<SshGateway> {
  const logger = deps.logger.child({ component: 'ssh-gateway' });
  const limits = { ...DEFAULT_SSH_LIMITS, ...deps.limits };
  const connections = new Set<SshConnection>();
  const host: ConnectionHost = {
    logger,
    guard: deps.guard,
    targets: deps.targets,
    sink: deps.sink,
    recordings: deps.recordings,
    approver: deps.approver,
    limits,
    now: deps.now,
    ...(deps.count ? { count: deps.count } : {}),
    forget: (conn) => {
      if (connections.delete(conn)) deps.onConnection?.(-1);
    },
  };
  const server: Server = new ssh2.Server(
    {
      hostKeys: [deps.hostKey.privateKey],
      ident: 'hoop-broker',
      algorithms: { cipher: SERVER_CIPHERS },
    },
    (client, info) => {
      // small packets (a command's exit, a keystroke) go out at once, not after a delayed ACK
      // (ssh2 has Connection.setNoDelay; its typings do not)
      (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
      const conn = new SshConnection(client, `${info.ip}:${info.port}`, info.header.identRaw, host);
      connections.add(conn);
      deps.onConnection?.(1);
    },
  );
  // (ssh2's own net.Server never listens, sockets come through injectSocket: an error here is ssh2's)
  server.on('error', (err: Error) => logger.error({ err }, 'ssh gateway: ssh2 server error'));
  // The listener is ours, not ssh2's: each socket's writes are coalesced (coalesce.ts) before ssh2
  // gets it (Server#injectSocket, its public way in).
  const listener = createServer((socket) => server.injectSocket(coalesceWrites(socket)));
  listener.on('error', (err: Error) => logger.error({ err }, 'ssh gateway listener error'));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(listen.port, listen.host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  const port = (listener.address() as AddressInfo).port;
  logger.info({ host: listen.host, port }, 'ssh gateway listening');
  return {
    port,
    hostPublicKey: deps.hostKey.publicKey,
    connectionCount: () => connections.size,
    async close(): Promise<void> {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const conn of [...connections])
        conn.close({
          reason: 'shutdown',
          message: 'hoop: the broker is shutting down',
          why: 'broker shutdown',
        });
      await closed;
    },
  };
}
