// The broker's own connection to the real database: TCP, TLS as the target asks, the startup
// packet with the target's user and database, and password authentication (SCRAM-SHA-256[-PLUS],
// md5, cleartext). After ReadyForQuery the socket is handed to the relay.
import { frame } from './backend-messages.js';
import { createHash } from 'node:crypto';
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { checkServerIdentity, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { serialize } from 'pg-protocol';
import { tlsServerEndPointFromDer } from './auth/channel-binding.js';
import { BackendType, readNoticeFields } from './backend-messages.js';
import type { GatewayTarget } from './deps.js';
import { ScramClient } from './scram-client.js';

export interface UpstreamConnection {
  socket: Socket | TLSSocket;
  /** raw ParameterStatus frames, to relay to the client as they are */
  parameterStatus: Buffer[];
  /** raw NoticeResponse frames received during startup */
  notices: Buffer[];
  backendKey: { processId: number; secretKey: Buffer } | null;
  transactionStatus: 'I' | 'T' | 'E';
  /** bytes that arrived after ReadyForQuery (normally none) */
  leftover: Buffer;
}

export type UpstreamResult =
  | { ok: true; conn: UpstreamConnection }
  /** message: for the broker's log (never contains the password); sqlstate: the upstream's, if any */
  | { ok: false; message: string; sqlstate?: string };

export interface UpstreamOptions {
  /** startup parameters besides user/database (already filtered by the caller) */
  parameters: Map<string, string>;
  timeoutMs: number;
}

export function startupPacket(params: Map<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of params) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeInt32BE(8 + body.length, 0);
  out.writeInt32BE(196608, 4); // protocol 3.0
  body.copy(out, 8);
  return out;
}

/** Reads whole backend frames off a socket during the handshake. */
class HandshakeReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;

  constructor(private socket: Socket) {
    this.attach(socket);
  }

  attach(socket: Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
  }

  private onData = (chunk: Buffer): void => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.wake();
  };
  private onError = (err: Error): void => {
    this.failure ??= err;
    this.wake();
  };
  private onClose = (): void => {
    this.failure ??= new Error('upstream closed the connection during startup');
    this.wake();
  };
  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private async waitForBytes(n: number): Promise<void> {
    while (this.buf.length < n) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** the single byte answer to SSLRequest */
  async byte(): Promise<number> {
    await this.waitForBytes(1);
    const b = this.buf[0]!;
    this.buf = this.buf.subarray(1);
    return b;
  }

  hasBuffered(): boolean {
    return this.buf.length > 0;
  }

  async frame(): Promise<{ type: number; body: Buffer }> {
    await this.waitForBytes(5);
    const length = this.buf.readInt32BE(1);
    if (length < 4 || length > 1 << 20)
      throw new Error(`upstream sent a malformed message during startup (length ${length})`);
    await this.waitForBytes(length + 1);
    const type = this.buf[0]!;
    const body = this.buf.subarray(5, length + 1);
    this.buf = this.buf.subarray(length + 1);
    return { type, body };
  }

  rest(): Buffer {
    const r = this.buf;
    this.buf = Buffer.alloc(0);
    return r;
  }
}

function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5')
    .update(password + user)
    .digest('hex');
  return `md5${createHash('md5').update(inner).update(salt).digest('hex')}`;
}

async function tlsUpgrade(socket: Socket, gt: GatewayTarget): Promise<TLSSocket> {
  const tls = gt.target.tls!;
  const host = gt.target.host;
  const serverName = tls.server_name ?? host;
  const verify = tls.mode === 'verify-full';
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      socket,
      ...(isIP(serverName) ? {} : { servername: serverName }),
      ...(gt.caPem ? { ca: gt.caPem } : {}),
      rejectUnauthorized: verify,
      checkServerIdentity: verify ? (_h, cert) => checkServerIdentity(serverName, cert) : () => undefined,
      ALPNProtocols: ['postgresql'],
    });
    s.once('secureConnect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export async function connectUpstream(gt: GatewayTarget, opts: UpstreamOptions): Promise<UpstreamResult> {
  const t = gt.target;
  let socket: Socket | TLSSocket = tcpConnect({ host: t.host, port: t.port ?? 5432 });
  socket.setNoDelay(true);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy(new Error(`upstream did not complete startup within ${opts.timeoutMs} ms`));
  }, opts.timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve();
      });
      socket.once('error', reject);
    });
    let reader = new HandshakeReader(socket);
    const mode = t.tls?.mode ?? 'disable';
    let channelBinding: Buffer | null = null;
    if (mode !== 'disable') {
      socket.write(serialize.requestSsl());
      const answer = await reader.byte();
      if (answer !== 0x53)
        return { ok: false, message: `target "${t.name}" does not support TLS (tls.mode is ${mode})` };
      if (reader.hasBuffered())
        return { ok: false, message: 'upstream sent unencrypted data after accepting TLS' };
      reader.detach();
      const tlsSocket = await tlsUpgrade(socket, gt);
      socket = tlsSocket;
      const der = tlsSocket.getPeerCertificate(false)?.raw;
      channelBinding = der ? tlsServerEndPointFromDer(der) : null;
      reader = new HandshakeReader(socket);
    }
    const params = new Map<string, string>([
      ['user', t.user],
      ['database', t.database],
    ]);
    for (const [k, v] of opts.parameters) params.set(k, v);
    socket.write(startupPacket(params));

    const parameterStatus: Buffer[] = [];
    const notices: Buffer[] = [];
    let backendKey: UpstreamConnection['backendKey'] = null;
    let scram: ScramClient | null = null;
    for (;;) {
      const { type, body } = await reader.frame();
      if (type === BackendType.authentication) {
        const code = body.readInt32BE(0);
        if (code === 0) continue; // AuthenticationOk
        if (code === 3) {
          socket.write(serialize.password(gt.password));
        } else if (code === 5) {
          socket.write(serialize.password(md5Password(t.user, gt.password, body.subarray(4, 8))));
        } else if (code === 10) {
          const mechanisms = body
            .toString('utf8', 4)
            .split('\0')
            .filter((m) => m.length > 0);
          scram = new ScramClient(gt.password, mechanisms, channelBinding);
          const first = scram.start();
          socket.write(serialize.sendSASLInitialResponseMessage(first.mechanism, first.clientFirst));
        } else if (code === 11) {
          if (!scram) return { ok: false, message: 'upstream sent SASLContinue before SASL' };
          socket.write(serialize.sendSCRAMClientFinalMessage(await scram.continue(body.toString('utf8', 4))));
        } else if (code === 12) {
          if (!scram) return { ok: false, message: 'upstream sent SASLFinal before SASL' };
          scram.verifyFinal(body.toString('utf8', 4));
        } else {
          return { ok: false, message: `upstream asked for an unsupported authentication method (${code})` };
        }
      } else if (type === BackendType.errorResponse) {
        const fields = new Map(readNoticeFields(body, 0, body.length));
        return {
          ok: false,
          message: `upstream refused the connection: ${fields.get('C') ?? ''} ${fields.get('M') ?? ''}`,
          ...(fields.get('C') ? { sqlstate: fields.get('C')! } : {}),
        };
      } else if (type === BackendType.parameterStatus) {
        parameterStatus.push(frame(type, body));
      } else if (type === BackendType.noticeResponse) {
        notices.push(frame(type, body));
      } else if (type === BackendType.backendKeyData) {
        backendKey = { processId: body.readInt32BE(0), secretKey: Buffer.from(body.subarray(4)) };
      } else if (type === BackendType.negotiateProtocolVersion) {
        // we only ever ask for 3.0 without options; nothing to adjust
      } else if (type === BackendType.readyForQuery) {
        const status = String.fromCharCode(body[0] ?? 0x49) as 'I' | 'T' | 'E';
        // Paused until the relay attaches, so nothing sent meanwhile is lost.
        socket.pause();
        reader.detach();
        const leftover = reader.rest();
        clearTimeout(timer);
        return {
          ok: true,
          conn: { socket, parameterStatus, notices, backendKey, transactionStatus: status, leftover },
        };
      } else {
        return {
          ok: false,
          message: `upstream sent an unexpected message during startup (${String.fromCharCode(type)})`,
        };
      }
    }
  } catch (err) {
    socket.destroy();
    const message = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      message: timedOut ? `upstream did not complete startup within ${opts.timeoutMs} ms` : message,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Send a CancelRequest for an upstream backend (TLS first when the target requires it). */
export async function cancelUpstream(
  gt: GatewayTarget,
  key: { processId: number; secretKey: Buffer },
  timeoutMs: number,
): Promise<void> {
  const t = gt.target;
  let socket: Socket | TLSSocket = tcpConnect({ host: t.host, port: t.port ?? 5432 });
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    if ((t.tls?.mode ?? 'disable') !== 'disable') {
      const reader = new HandshakeReader(socket);
      socket.write(serialize.requestSsl());
      const answer = await reader.byte();
      reader.detach();
      if (answer !== 0x53) throw new Error('upstream refused TLS for the cancel request');
      socket = await tlsUpgrade(socket, gt);
    }
    const packet = Buffer.allocUnsafe(12 + key.secretKey.length);
    packet.writeInt32BE(packet.length, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(key.processId, 8);
    key.secretKey.copy(packet, 12);
    await new Promise<void>((resolve) => socket.end(packet, resolve));
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}
