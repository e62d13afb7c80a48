// One client connection to the ssh gateway: publickey authentication against the session the user name
// names, then the session's grant for the target decides every channel. One upstream connection per
// client connection, opened right after authentication; each client channel gets its own upstream
// channel.
//
// Authentication: publickey only, and only the key the session registered (`ssh_public_key`). An
// unknown session, a malformed user name and a wrong key look the same ("Permission denied"). Once the
// key is proven, a session that has ended, a target that does not exist or is not granted are said on
// the first session channel ("hoop: session … was revoked"), then the connection is closed: the client
// learns why, and nothing is reachable.
//
// Session end (revocation, expiry, shutdown): every channel gets the reason on stderr and exit status
// 255, then the connection and its upstream are closed: within milliseconds of the session's 'ended'.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import ssh2, { type AuthContext, type Client, type Connection, type ServerChannel, type Session } from 'ssh2';
import type { SessionRecord } from '../../sessions/types.js';
import { decide } from '../../policy/decide.js';
import type { SshRules } from '../../policy/ssh/decide.js';
import type { SshOperation } from '../../policy/operation.js';
import { type Approver, type EventSink, OperationFlow } from '../operation-flow.js';
import type {
  Attachment,
  Authorization,
  ConnectionEnd,
  LiveConnection,
  SessionGuard,
} from '../session-guard.js';
import type { ConnectionScope, RecordingSink } from './connection-scope.js';
import { relayForward } from './relay.js';
import { SessionChannel } from './session-channel.js';
import { connectUpstream, UpstreamError, type UpstreamTarget } from './upstream.js';
import { parseSshUserName } from './user-name.js';

const { utils } = ssh2;

export interface SshGatewayLimits {
  /** authentication must succeed within this, or the connection is closed */
  authTimeoutMs: number;
  /** failed authentication attempts before the connection is closed */
  maxAuthAttempts: number;
  /** connect + login to the target */
  upstreamTimeoutMs: number;
  /** per recording (asciicast text) */
  maxRecordingBytes: number;
  /** a connection refused after authentication is closed after this (or its first session channel) */
  refusalLingerMs: number;
}

export const DEFAULT_SSH_LIMITS: SshGatewayLimits = {
  authTimeoutMs: 30_000,
  maxAuthAttempts: 6,
  upstreamTimeoutMs: 15_000,
  maxRecordingBytes: 16 * 1024 * 1024,
  refusalLingerMs: 10_000,
};

/** What every connection shares (the gateway). */
export interface ConnectionHost {
  logger: Logger;
  guard: SessionGuard;
  targets: ReadonlyMap<string, UpstreamTarget>;
  sink(sessionId: string): EventSink;
  recordings: RecordingSink;
  approver: Approver;
  limits: SshGatewayLimits;
  now(): Date;
  count?(decision: 'allow' | 'deny'): void;
  /** the connection is gone (listener bookkeeping) */
  forget(conn: SshConnection): void;
}

type Authenticated =
  | { kind: 'granted'; session: SessionRecord; target: string; auth: Extract<Authorization, { ok: true }> }
  | { kind: 'refused'; session: SessionRecord; target: string; message: string };

export class SshConnection implements LiveConnection {
  readonly connId = `ssh_${randomBytes(6).toString('hex')}`;
  readonly #client: Connection;
  readonly #host: ConnectionHost;
  readonly #peer: string;
  readonly #log: Logger;
  readonly #openedAt = performance.now();
  #clientIdent = '';
  #authAttempts = 0;
  #authTimer: NodeJS.Timeout | null;
  #authenticated: Authenticated | null = null;
  #attachment: Attachment | null = null;
  #flow: OperationFlow | null = null;
  #upstream: Client | null = null;
  #upstreamReady: Promise<Client> | null = null;
  readonly #channels = new Set<SessionChannel>();
  readonly #abort = new AbortController();
  #closed = false;
  #closeReason = 'client disconnected';

  constructor(client: Connection, peer: string, clientIdent: string, host: ConnectionHost) {
    this.#client = client;
    // the client's software, e.g. "OpenSSH_9.2p1 Debian-2+deb12u3" (its own words: shown, never trusted)
    this.#clientIdent = clientIdent
      .replace(/^SSH-2\.0-/, '')
      .replace(/\p{Cc}/gu, '?')
      .slice(0, 100);
    this.#host = host;
    this.#peer = peer;
    this.#log = host.logger.child({ conn_id: this.connId });
    this.#authTimer = setTimeout(() => this.#end('authentication timed out'), host.limits.authTimeoutMs);
    this.#authTimer.unref();
    client.on('authentication', (ctx) => {
      this.#authenticate(ctx).catch((err: unknown) => {
        this.#log.error({ err }, 'ssh authentication failed unexpectedly');
        ctx.reject(['publickey']);
      });
    });
    client.on('ready', () => this.#ready());
    client.on('error', (err) => this.#log.debug({ err: err.message }, 'ssh client connection error'));
    client.on('close', () => this.#closedByPeer());
  }

  async #authenticate(ctx: AuthContext): Promise<void> {
    if (this.#closed) return;
    if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
    if (++this.#authAttempts > this.#host.limits.maxAuthAttempts) {
      ctx.reject(['publickey']);
      return this.#end('too many authentication attempts');
    }
    const named = parseSshUserName(ctx.username);
    const session = named ? await this.#host.guard.lookup(named.sessionId) : null;
    const registered = session?.ssh_public_key ? utils.parseKey(session.ssh_public_key) : null;
    const key =
      registered && !(registered instanceof Error)
        ? Array.isArray(registered)
          ? registered[0]
          : registered
        : null;
    if (!named || !session || !key || !key.getPublicSSH().equals(ctx.key.data))
      return ctx.reject(['publickey']);
    // Without a signature the client only asks whether the key would do.
    if (!ctx.signature || !ctx.blob) return ctx.accept();
    if (!key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) return ctx.reject(['publickey']);
    const auth = this.#host.guard.authorize(session, named.target, this.#host.targets.has(named.target));
    this.#authenticated = auth.ok
      ? { kind: 'granted', session, target: named.target, auth }
      : { kind: 'refused', session, target: named.target, message: refusalMessage(auth, named.target) };
    ctx.accept();
  }

  #ready(): void {
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    const a = this.#authenticated;
    if (!a) return this.#end('no authentication');
    if (a.kind === 'refused') return this.#refuseAll(a.message);
    const up = this.#host.targets.get(a.target)!;
    this.#attachment = this.#host.guard.attach(
      a.session,
      a.target,
      this,
      up.target.max_connections_per_session,
    );
    if (!this.#attachment)
      return this.#refuseAll(
        `hoop: session ${a.session.id} already has ${up.target.max_connections_per_session} connections to ${a.target}`,
      );
    const rules: SshRules = { target: a.target, access: a.auth.grant.access, ssh: a.auth.grant.ssh };
    const flow = new OperationFlow({
      sessionId: a.session.id,
      target: a.target,
      connId: this.connId,
      gateway: 'ssh',
      sink: this.#host.sink(a.session.id),
      approver: this.#host.approver,
      signal: this.#abort.signal,
      ...(this.#host.count ? { count: this.#host.count } : {}),
      onRecordFailed: (err) => {
        this.#log.error({ err }, 'ssh: the transcript could not be written; closing the connection');
        this.close({
          reason: 'shutdown',
          message: 'hoop: the transcript could not be written',
          why: 'recorder failed',
        });
      },
    });
    this.#flow = flow;
    const client = this.#client;
    // channels wait for the opening to be recorded and the upstream to be connected
    const opened = flow.connectionOpened({
      application_name: this.#clientIdent,
      client: this.#peer,
      conn_id: this.connId,
      tls: false,
    });
    this.#upstreamReady = opened.then(() =>
      connectUpstream(up, {
        timeoutMs: this.#host.limits.upstreamTimeoutMs,
        onClient: (c) => {
          this.#upstream = c;
          // after a failed connect the channels say why (and the connection ends with them)
          c.on('ready', () =>
            c.on('close', () => {
              if (!this.#closed) this.#end('the target closed the connection');
            }),
          );
          c.on('error', (err) => this.#log.debug({ err: err.message }, 'ssh upstream error'));
        },
      }),
    );
    this.#upstreamReady.catch((err: unknown) => {
      this.#log.warn(
        { target: a.target, err: err instanceof Error ? err.message : String(err) },
        'ssh upstream failed',
      );
    });
    const scope: ConnectionScope = {
      sessionId: a.session.id,
      target: a.target,
      connId: this.connId,
      rules,
      flow,
      recordings: this.#host.recordings,
      maxRecordingBytes: this.#host.limits.maxRecordingBytes,
      logger: this.#log,
      now: () => this.#host.now(),
      upstream: () => this.#upstreamReady!,
      upstreamMessage: (err) =>
        err instanceof UpstreamError
          ? err.message
          : `the target could not run this: ${(err as Error)?.message ?? err}`,
    };
    client.on('session', (accept) => {
      const session: Session = accept();
      const channel = new SessionChannel(scope, session);
      this.#channels.add(channel);
      session.on('close', () => this.#channels.delete(channel));
    });
    client.on('tcpip', (accept, reject, info) => {
      void this.#forward(scope, accept, reject, info.destIP, info.destPort, info.srcIP, info.srcPort);
    });
    client.on('request', (_accept, reject, name, info) => {
      if (name !== 'tcpip-forward' && (name as string) !== 'streamlocal-forward@openssh.com')
        return reject?.();
      const bind = info as { bindAddr?: string; bindPort?: number; socketPath?: string };
      const op: SshOperation = {
        kind: 'ssh.forward',
        direction: 'remote',
        host: bind.bindAddr ?? bind.socketPath ?? '',
        port: bind.bindPort ?? 0,
      };
      const decision = decide(rules, op, { kind: 'ssh' });
      void flow.refuse(op, decision).then(() => reject?.());
    });
    client.on('openssh.streamlocal', (_accept, reject, info) => {
      const op: SshOperation = { kind: 'ssh.forward', direction: 'local', host: info.socketPath, port: 0 };
      void flow.refuse(op, decide(rules, op, { kind: 'ssh', unixSocket: true })).then(() => reject());
    });
  }

  async #forward(
    scope: ConnectionScope,
    accept: () => ServerChannel,
    reject: () => void,
    host: string,
    port: number,
    srcIP: string,
    srcPort: number,
  ): Promise<void> {
    const op: SshOperation = { kind: 'ssh.forward', direction: 'local', host, port };
    const decision = decide(scope.rules, op, { kind: 'ssh' });
    const settled = await scope.flow.settle(op, decision);
    if (settled.effect !== 'allow') {
      await scope.flow.refuse(op, settled);
      return reject();
    }
    const startedAt = performance.now();
    let up: ServerChannel | import('ssh2').ClientChannel;
    try {
      const upstream = await scope.upstream();
      up = await new Promise((resolve, rejectUp) =>
        upstream.forwardOut(srcIP, srcPort, host, port, (err, stream) =>
          err ? rejectUp(err) : resolve(stream),
        ),
      );
    } catch (err) {
      scope.flow.completed(op, settled.reasons, {
        duration_ms: performance.now() - startedAt,
        error: err instanceof UpstreamError ? err.kind : 'connect failed',
      });
      return reject();
    }
    const ch = accept();
    const counts = await relayForward(ch, up);
    scope.flow.completed(op, settled.reasons, {
      duration_ms: performance.now() - startedAt,
      bytes: counts.bytes_in + counts.bytes_out,
      bytes_in: counts.bytes_in,
      bytes_out: counts.bytes_out,
    });
  }

  /** Authenticated, but nothing may be used: say why on the first session channel, then close. */
  #refuseAll(message: string): void {
    const client = this.#client;
    const linger = setTimeout(() => this.#end('refused'), this.#host.limits.refusalLingerMs);
    linger.unref();
    client.on('session', (accept) => {
      const session = accept();
      const refuse = (acceptStart: () => ServerChannel) => {
        const ch = acceptStart();
        ch.stderr.write(`${message}\r\n`);
        ch.exit(255);
        ch.end();
        setTimeout(() => this.#end('refused'), 50).unref();
      };
      session.on('exec', (a) => refuse(a));
      session.on('shell', (a) => refuse(a));
      session.on('subsystem', (a) => refuse(a));
      for (const ev of ['pty', 'env', 'auth-agent', 'x11'] as const)
        session.on(ev, (_a: unknown, r: (() => void) | undefined) => r?.());
    });
    client.on('tcpip', (_a, reject) => reject());
    client.on('request', (_a, reject) => reject?.());
  }

  /** The session ended or the broker is shutting down: tell every channel, then close everything. */
  close(end: ConnectionEnd): void {
    if (this.#closed) return;
    this.#closeReason = end.why;
    const message = end.message.startsWith('hoop: ') ? end.message : `hoop: ${end.message}`;
    for (const ch of this.#channels) ch.end(message);
    // let the messages out before the disconnect
    setTimeout(() => this.#end(end.why), 50).unref();
  }

  #end(why: string): void {
    if (this.#closed) return;
    this.#closeReason = why;
    this.#shutdown();
    try {
      this.#client.end();
    } catch {
      /* already gone */
    }
  }

  #closedByPeer(): void {
    this.#shutdown();
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#abort.abort();
    this.#upstream?.end();
    this.#attachment?.detach();
    this.#host.forget(this);
    const flow = this.#flow;
    if (flow) {
      flow.connectionClosed(
        {
          application_name: this.#clientIdent,
          client: this.#peer,
          conn_id: this.connId,
          reason: this.#closeReason,
        },
        performance.now() - this.#openedAt,
        (err) => this.#log.warn({ err }, 'ssh connection close could not be recorded'),
      );
    }
  }
}

function refusalMessage(auth: Extract<Authorization, { ok: false }>, target: string): string {
  const id = auth.session.id;
  switch (auth.refusal) {
    case 'revoked':
      return `hoop: session ${id} was revoked`;
    case 'expired':
      return `hoop: session ${id} has expired`;
    case 'unknown-target':
      return `hoop: there is no ssh target named ${JSON.stringify(target)}`;
    case 'not-granted':
      return `hoop: session ${id} has no grant for target ${JSON.stringify(target)}`;
  }
}
