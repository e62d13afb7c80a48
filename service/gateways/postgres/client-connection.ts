// One client connection, as an explicit state machine:
//
//   startup ──SSLRequest──▶ tls ──▶ startup ──StartupMessage──▶ authenticating ──proof──▶ authorizing
//      │  (GSSENCRequest → 'N', stay)                                               │
//      └─CancelRequest──▶ closed                                                     ▼
//                                                            connecting (upstream) ──▶ ready (Relay)
//
// Any failure sends one ErrorResponse that says what was wrong (with a SQLSTATE) and closes.
//
// Size (just over 600 lines): the startup state machine, one state per step above; the session side
// is gateways/session-guard.ts, authentication auth/, upstream upstream.ts, the ready phase relay.ts.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Grant } from '../../config/schema.js';
import { parseScramVerifier } from '../../sessions/secret.js';
import type { SessionRecord } from '../../sessions/types.js';
import { type Approver, OperationFlow } from '../operation-flow.js';
import type { Attachment, ConnectionEnd, LiveConnection, SessionGuard } from '../session-guard.js';
import type { AuthMethod } from './auth/auth-method.js';
import { CleartextPassword } from './auth/cleartext.js';
import { mockVerifier, ScramServer } from './auth/scram-server.js';
import { authFailed, type BackendError, fatal, printable, SQLSTATE } from './backend-error.js';
import {
  authenticationOk,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  readyForQuery,
} from './backend-messages.js';
import type { CatalogResolver } from './catalog/resolver.js';
import type { ClassificationCache } from './classification-cache.js';
import type { GatewayLimits, GatewayTarget, PgGatewayDeps } from './deps.js';
import { FrontendReader, FrontendType, type StartupPacket } from './frontend-reader.js';
import { Relay } from './relay.js';
import { withStatementTextMasks } from '../../policy/mask/activity.js';
import type { BufferBudget } from './limits.js';
import type { SessionCredentials } from './session-roles.js';
import {
  clientEncodingProblem,
  filterStartupParameters,
  reportedSettingProblem,
  upstreamOptions,
} from './startup-params.js';
import { cancelUpstream, connectUpstream, type UpstreamConnection, type UpstreamResult } from './upstream.js';

export type ConnectionState =
  'startup' | 'tls' | 'authenticating' | 'authorizing' | 'connecting' | 'ready' | 'closed';

export interface CancelKey {
  processId: number;
  secretKey: Buffer;
}

/** What the gateway gives each connection. */
export interface ConnectionHost {
  deps: PgGatewayDeps;
  limits: GatewayLimits;
  secureContext: SecureContext;
  /** tls-server-end-point data for SCRAM-SHA-256-PLUS, null when not offered */
  channelBinding: Buffer | null;
  /** per-process key for mock SCRAM salts of unknown sessions */
  mockKey: Buffer;
  logger: Logger;
  classifier: ClassificationCache;
  catalogFor(targetName: string, gt: GatewayTarget): CatalogResolver;
  /** sessions: lookup, authorization, live connections per session, expiry and revocation */
  guard: SessionGuard;
  /** decides held statements */
  approver: Approver;
  /** a connection to the target may be opened: false over limits.upstream_connections_per_target (detach releases) */
  admitUpstream(conn: ClientConnection, target: string): boolean;
  /** unfinished message bytes across the gateway's connections */
  buffers: BufferBudget;
  /** the session's own upstream role on a target with session_roles (null: the target's user) */
  sessionRole(gt: GatewayTarget, session: SessionRecord, renew?: boolean): Promise<SessionCredentials | null>;
  /** ready: a cancel key for the client */
  issueCancelKey(conn: ClientConnection): CancelKey;
  handleCancel(processId: number, secretKey: Buffer): void;
  detach(conn: ClientConnection): void;
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export class ClientConnection implements LiveConnection {
  state: ConnectionState = 'startup';
  readonly connId: string;
  sessionId: string | null = null;
  targetName: string | null = null;
  private socket: Socket | TLSSocket;
  private readonly reader = new FrontendReader();
  private logger: Logger;
  private readonly openedAt = Date.now();
  private readonly clientAddress: string;
  private tls = false;
  private startupTimer: NodeJS.Timeout | null;
  private auth: AuthMethod | null = null;
  private user = '';
  private parameters = new Map<string, string>();
  private relay: Relay | null = null;
  private upstream: UpstreamConnection | null = null;
  private gatewayTarget: GatewayTarget | null = null;
  private cancelKey: CancelKey | null = null;
  private applicationName = '';
  /** the reason the connection ended, for the transcript (set by whoever ends it first) */
  private closeReason = '';
  private opened = false;
  /** registered under its session (SessionGuard) once authorized */
  private attachment: Attachment | null = null;
  /** decide → act → record, once authorized */
  private flow: OperationFlow | null = null;
  /** aborted when the connection ends: a statement held for approval stops waiting */
  private readonly ended = new AbortController();

  constructor(
    socket: Socket,
    private readonly host: ConnectionHost,
  ) {
    this.socket = socket;
    this.connId = `pgc_${randomBytes(6).toString('hex')}`;
    this.clientAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.logger = host.logger.child({ conn_id: this.connId, client: this.clientAddress });
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    this.startupTimer = setTimeout(() => {
      this.fail(
        fatal(
          SQLSTATE.protocolViolation,
          `hoop: startup not completed within ${host.limits.startupTimeoutMs} ms`,
        ),
        'startup timeout',
      );
    }, host.limits.startupTimeoutMs);
    this.startupTimer.unref();
  }

  get cancelKeyOf(): CancelKey | null {
    return this.cancelKey;
  }

  get upstreamKey(): UpstreamConnection['backendKey'] {
    return this.upstream?.backendKey ?? null;
  }

  get target(): GatewayTarget | null {
    return this.gatewayTarget;
  }

  private onData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    this.step();
  };

  private onSocketError = (err: Error): void => {
    this.logger.debug({ err: err.message }, 'pg client socket error');
  };

  private onSocketClose = (): void => {
    this.closeAll(this.closeReason || 'client disconnected');
  };

  /** Drive the state machine with whatever is buffered. */
  private step(): void {
    for (;;) {
      if (this.state === 'startup') {
        const r = this.reader.readStartup(this.host.limits.maxStartupMessageBytes);
        if (r.kind === 'incomplete') return;
        if (r.kind === 'invalid') {
          this.fail(fatal(SQLSTATE.protocolViolation, `hoop: ${r.message}`), r.message);
          return;
        }
        if (!this.onStartupPacket(r.value)) return;
        continue;
      }
      if (this.state === 'authenticating') {
        const r = this.reader.readMessage({
          largeTypes: new Set(),
          largeMax: this.host.limits.maxStartupMessageBytes,
          otherMax: this.host.limits.maxStartupMessageBytes,
        });
        if (r.kind === 'incomplete') return;
        if (r.kind === 'invalid') {
          this.fail(fatal(SQLSTATE.protocolViolation, `hoop: ${r.message}`), r.message);
          return;
        }
        if (r.value.type === FrontendType.terminate) {
          this.closeAll('client terminated during authentication');
          return;
        }
        if (r.value.type !== FrontendType.password) {
          this.fail(
            fatal(SQLSTATE.protocolViolation, 'hoop: expected a password or SASL response message'),
            'unexpected message during authentication',
          );
          return;
        }
        this.onAuthResponse(r.value.body);
        continue;
      }
      // tls / authorizing / connecting: keep bytes buffered for the relay; ready: the relay reads.
      return;
    }
  }

  /** Returns false when the state machine must stop reading for now. */
  private onStartupPacket(p: StartupPacket): boolean {
    switch (p.kind) {
      case 'ssl-request':
        if (this.tls) {
          this.fail(fatal(SQLSTATE.protocolViolation, 'hoop: SSLRequest inside TLS'), 'nested SSLRequest');
          return false;
        }
        // Bytes after SSLRequest but before the TLS handshake would be plaintext injected into the
        // encrypted session (CVE-2021-23214 style): refuse.
        if (this.reader.buffered > 0) {
          this.fail(
            fatal(SQLSTATE.protocolViolation, 'hoop: received unencrypted data after SSL request'),
            'data after SSLRequest',
          );
          return false;
        }
        this.startTls();
        return false;
      case 'gssenc-request':
        this.socket.write('N');
        return true;
      case 'cancel-request':
        this.closeReason = 'cancel request';
        this.host.handleCancel(p.processId, p.secretKey);
        this.socket.end();
        this.closeAll('cancel request');
        return false;
      case 'startup':
        this.onStartup(p);
        return true;
    }
  }

  private startTls(): void {
    this.state = 'tls';
    const raw = this.socket as Socket;
    raw.off('data', this.onData);
    raw.off('close', this.onSocketClose);
    raw.off('error', this.onSocketError);
    raw.write('S');
    const tlsSocket = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.host.secureContext,
      ALPNProtocols: ['postgresql'],
    });
    this.socket = tlsSocket;
    this.tls = true;
    tlsSocket.on('error', this.onSocketError);
    tlsSocket.on('close', this.onSocketClose);
    tlsSocket.once('secure', () => {
      if (this.state !== 'tls') return;
      this.state = 'startup';
      tlsSocket.on('data', this.onData);
    });
  }

  private onStartup(p: Extract<StartupPacket, { kind: 'startup' }>): void {
    if (p.minor > 0 || p.protocolOptions.length > 0) {
      this.socket.write(negotiateProtocolVersion(0, p.protocolOptions));
    }
    this.parameters = p.parameters;
    this.user = p.parameters.get('user') ?? '';
    this.applicationName = p.parameters.get('application_name') ?? '';
    if (!this.user) {
      this.fail(
        fatal(SQLSTATE.invalidAuthorization, 'no PostgreSQL user name specified in startup packet'),
        'no user',
      );
      return;
    }
    if (p.parameters.has('replication')) {
      const v = p.parameters.get('replication')!.toLowerCase();
      if (!['false', 'off', 'no', '0'].includes(v)) {
        this.fail(
          fatal(
            SQLSTATE.invalidAuthorization,
            'hoop: replication connections are not allowed through the broker',
          ),
          'replication refused',
        );
        return;
      }
    }
    const encoding = p.parameters.get('client_encoding');
    const encodingProblem = encoding === undefined ? null : clientEncodingProblem(encoding);
    if (encodingProblem) {
      this.fail(
        fatal(SQLSTATE.invalidParameterValue, encodingProblem, { hint: 'use UTF8' }),
        'unsupported client_encoding',
      );
      return;
    }
    const requireTls = this.host.deps.requireTls ?? 'non-loopback';
    if (!this.tls && (requireTls === 'always' || !isLoopback(this.socket.remoteAddress))) {
      this.fail(
        fatal(SQLSTATE.invalidAuthorization, 'hoop: TLS is required to connect to the broker', {
          hint: 'connect with sslmode=verify-full (or require)',
        }),
        'TLS required',
      );
      return;
    }
    this.state = 'authenticating';
    // Pause reading while the session is looked up; the client waits for our request anyway.
    this.socket.pause();
    this.lookupSession().then(
      (session) => {
        if (this.state !== 'authenticating') return;
        this.pendingSession = session;
        this.auth = this.makeAuthMethod(session);
        this.socket.write(this.auth.start());
        this.socket.resume();
        this.step();
      },
      (err: unknown) => this.internalFailure(err),
    );
  }

  private pendingSession: SessionRecord | null = null;

  private lookupSession(): Promise<SessionRecord | null> {
    return this.host.guard.lookup(this.user);
  }

  private makeAuthMethod(session: SessionRecord | null): AuthMethod {
    if (this.tls && this.host.deps.allowCleartextPassword)
      return new CleartextPassword(session?.secret_hash ?? null);
    const verifier =
      (session && parseScramVerifier(session.scram_verifier)) ?? mockVerifier(this.user, this.host.mockKey);
    return new ScramServer({ verifier, channelBinding: this.tls ? this.host.channelBinding : null });
  }

  private onAuthResponse(body: Buffer): void {
    if (!this.auth) {
      // A response before we asked: the session lookup is still running.
      this.fail(
        fatal(SQLSTATE.protocolViolation, 'hoop: authentication response before request'),
        'early auth response',
      );
      return;
    }
    const stepResult = this.auth.respond(body);
    switch (stepResult.kind) {
      case 'continue':
        this.socket.write(stepResult.message);
        return;
      case 'invalid':
        this.fail(fatal(SQLSTATE.protocolViolation, `hoop: ${stepResult.message}`), stepResult.message);
        return;
      case 'failed':
        this.logger.info(
          { user: printable(this.user), reason: stepResult.reason, known: this.pendingSession !== null },
          'pg auth failed',
        );
        this.fail(authFailed(this.user), 'authentication failed');
        return;
      case 'proven':
        if (!this.pendingSession) {
          // Cannot happen (a mock verifier matches nothing); fail closed anyway.
          this.fail(authFailed(this.user), 'authentication failed');
          return;
        }
        if (stepResult.final) this.socket.write(stepResult.final);
        this.state = 'authorizing';
        this.socket.pause();
        this.authorize(this.pendingSession);
        return;
    }
  }

  /** After a correct proof: is the session live, the target real and granted? Then connect upstream. */
  private authorize(session: SessionRecord): void {
    const targetName = this.parameters.get('database') ?? this.user;
    const gt = this.host.deps.targets.get(targetName);
    const authorization = this.host.guard.authorize(session, targetName, gt !== undefined);
    if (!authorization.ok) {
      switch (authorization.refusal) {
        case 'revoked':
        case 'expired':
          this.fail(
            fatal(
              SQLSTATE.invalidAuthorization,
              authorization.refusal === 'revoked'
                ? `hoop: session ${session.id} was revoked`
                : `hoop: session ${session.id} has expired`,
            ),
            `session ${authorization.refusal}`,
          );
          return;
        case 'unknown-target':
          this.fail(
            fatal(SQLSTATE.invalidCatalogName, `database "${printable(targetName)}" does not exist`, {
              detail: 'hoop: no PostgreSQL target of that name is configured',
            }),
            'unknown target',
          );
          return;
        case 'not-granted':
          this.fail(
            fatal(
              SQLSTATE.insufficientPrivilege,
              `hoop: session ${session.id} has no grant for target "${targetName}"`,
            ),
            'target not granted',
          );
          return;
      }
    }
    const grant = authorization.grant;
    this.sessionId = session.id;
    this.targetName = targetName;
    this.gatewayTarget = gt!;
    this.attachment = this.host.guard.attach(
      session,
      targetName,
      this,
      gt!.target.max_connections_per_session,
    );
    if (!this.attachment) {
      this.fail(
        fatal(
          SQLSTATE.tooManyConnections,
          `hoop: too many connections for session ${session.id} to target "${targetName}"`,
        ),
        'per-session connection cap',
      );
      return;
    }
    this.logger = this.logger.child({ session_id: session.id, target: targetName });
    this.flow = this.newFlow(session.id, targetName);
    this.connect(session, gt!, grant);
  }

  private newFlow(sessionId: string, target: string): OperationFlow {
    const deps = this.host.deps;
    return new OperationFlow({
      sessionId,
      target,
      connId: this.connId,
      gateway: 'pg',
      sink: {
        record: (ev, opts) => deps.record(sessionId, ev, opts),
        recordBackground: (ev, done) => {
          if (deps.recordBackground) deps.recordBackground(sessionId, ev, done);
          else
            deps.record(sessionId, ev, { background: true }).then(
              () => done(null, 0),
              (err: unknown) => done(err ?? new Error('recording failed'), 0),
            );
        },
      },
      approver: this.host.approver,
      signal: this.ended.signal,
      count: (decision) => deps.metrics?.statements.inc({ gateway: 'postgres', decision }),
      onRecordFailed: (err) => (this.relay ? this.relay.recordFailed(err) : this.internalFailure(err)),
      onBacklogDrained: () => this.relay?.resumeClient(),
    });
  }

  private connect(session: SessionRecord, gt: GatewayTarget, grant: Grant): void {
    this.state = 'connecting';
    if (!this.host.admitUpstream(this, gt.target.name)) {
      this.host.deps.metrics?.limitRefusals.inc({ limit: 'upstream_connections_per_target' });
      this.fail(
        fatal(
          SQLSTATE.tooManyConnections,
          `hoop: target "${gt.target.name}" has its limit of ${this.host.limits.maxUpstreamConnectionsPerTarget} connections through the broker (limits.upstream_connections_per_target)`,
          { hint: 'retry later, or raise limits.upstream_connections_per_target' },
        ),
        'upstream connections per target limit',
      );
      return;
    }
    const { forwarded, dropped } = filterStartupParameters(this.parameters);
    if (dropped.length) this.logger.debug({ dropped }, 'pg startup parameters not forwarded');
    forwarded.set('options', upstreamOptions(grant.access));
    const options = { parameters: forwarded, timeoutMs: this.host.limits.upstreamConnectTimeoutMs };
    const asRole = async (renew: boolean): Promise<UpstreamResult | null> => {
      const role = await this.host.sessionRole(gt, session, renew);
      if (!role) return null;
      return connectUpstream(
        { ...gt, target: { ...gt.target, user: role.user }, password: role.password },
        options,
      );
    };
    const open = async (): Promise<UpstreamResult> => {
      try {
        const first = await asRole(false);
        if (first === null) return connectUpstream(gt, options);
        // the role's password was set by another replica (or before a restart): set ours, once
        if (!first.ok && first.sqlstate === SQLSTATE.invalidPassword) return (await asRole(true))!;
        return first;
      } catch (err) {
        this.logger.error(
          { err: err instanceof Error ? err.message : String(err) },
          "pg: the session's role could not be created",
        );
        return { ok: false, message: "the session's role could not be created (target session_roles)" };
      }
    };
    open()
      .then(async (r) => {
        if (!r.ok) {
          this.logger.warn({ reason: r.message, sqlstate: r.sqlstate }, 'pg upstream connection failed');
          const retryable =
            r.sqlstate === SQLSTATE.tooManyConnections || r.sqlstate === SQLSTATE.cannotConnectNow;
          this.fail(
            fatal(
              retryable ? r.sqlstate! : SQLSTATE.unableToConnect,
              `hoop: could not connect to target "${this.targetName}"`,
            ),
            'upstream connection failed',
          );
          return;
        }
        if (this.state !== 'connecting') {
          r.conn.socket.destroy();
          return;
        }
        this.upstream = r.conn;
        r.conn.socket.on('error', (err) =>
          this.logger.debug({ err: err.message }, 'pg upstream socket error'),
        );
        r.conn.socket.on('close', () => {
          if (this.state === 'closed') return;
          // the relay first passes on what the database said last (its FATAL error, say)
          if (this.relay) this.relay.upstreamClosed();
          else this.closeAll('upstream closed');
        });
        await this.flow!.connectionOpened({
          application_name: this.applicationName,
          client: this.clientAddress,
          conn_id: this.connId,
          tls: this.tls,
        });
        this.opened = true;
        if (this.state !== 'connecting') return;
        this.ready(session, gt, grant, r.conn);
      })
      .catch((err: unknown) => this.internalFailure(err));
  }

  private ready(session: SessionRecord, gt: GatewayTarget, grant: Grant, up: UpstreamConnection): void {
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.startupTimer = null;
    // the startup reports pass the same check as later ones (a role default, say, must not slip by)
    for (const f of up.parameterStatus) {
      const body = f.subarray(5);
      const nul = body.indexOf(0);
      const problem = reportedSettingProblem(
        body.toString('utf8', 0, nul),
        body.toString('utf8', nul + 1, body.length - 1),
        grant.access,
        true,
      );
      if (problem) {
        up.socket.destroy();
        this.fail(fatal(SQLSTATE[problem.sqlstate], problem.message), problem.why);
        return;
      }
    }
    this.cancelKey = this.host.issueCancelKey(this);
    const out: Buffer[] = [
      authenticationOk(),
      ...up.parameterStatus,
      backendKeyData(this.cancelKey.processId, this.cancelKey.secretKey),
    ];
    out.push(...up.notices, readyForQuery(up.transactionStatus));
    this.socket.write(Buffer.concat(out));
    this.state = 'ready';
    this.socket.off('data', this.onData);
    this.relay = new Relay(
      {
        logger: this.logger,
        grant: withStatementTextMasks(grant),
        targetName: gt.target.name,
        connId: this.connId,
        catalog: this.host.catalogFor(gt.target.name, gt),
        limits: this.host.limits,
        flow: this.flow!,
        recordBeforeForward: gt.target.recording === 'before_forward',
        classifier: this.host.classifier,
        buffers: this.host.buffers,
        countLimit: (limit) => this.host.deps.metrics?.limitRefusals.inc({ limit }),
      },
      this.socket,
      this.reader,
      up.socket,
      (why) => this.closeAll(why),
    );
    this.relay.start(up.leftover);
    this.logger.info({ application_name: this.applicationName, tls: this.tls }, 'pg connection ready');
  }

  /** The session ended (SessionGuard): FATAL 57P01, what pg_terminate_backend sends. */
  close(end: ConnectionEnd): void {
    this.end(fatal(SQLSTATE.adminShutdown, end.message), end.why);
  }

  /** Close with a FATAL error (revocation, expiry, shutdown). */
  end(err: BackendError, why: string): void {
    if (this.finished) return;
    this.closeReason = why;
    if (this.relay) {
      this.relay.terminate(err, why);
      return;
    }
    this.fail(err, why);
  }

  private internalFailure(err: unknown): void {
    this.logger.error({ err }, 'pg connection: internal error');
    this.fail(fatal(SQLSTATE.internalError, 'hoop: internal error in the broker'), 'internal error');
  }

  private fail(err: BackendError, why: string): void {
    if (this.finished) return;
    this.logger.debug({ why, sqlstate: err.code }, 'pg connection refused/closed');
    const socket = this.socket;
    if (!socket.destroyed && this.state !== 'tls') {
      socket.end(errorResponse(err));
      setTimeout(() => socket.destroy(), 500).unref();
    } else {
      socket.destroy();
    }
    this.closeAll(why);
  }

  private finished = false;

  private closeAll(why: string): void {
    if (this.finished) return;
    this.finished = true;
    const wasOpen = this.opened;
    this.state = 'closed';
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.startupTimer = null;
    if (this.relay && !this.relay.isClosed()) this.relay.terminate(null, why);
    if (this.upstream) this.upstream.socket.destroy();
    // A statement may still be running upstream; PostgreSQL would only notice the closed socket when
    // it next writes. Cancel it so the backend is freed now.
    const key = this.upstream?.backendKey;
    if (this.relay?.hasPendingWork() && key && this.gatewayTarget) {
      cancelUpstream(this.gatewayTarget, key, this.host.limits.upstreamConnectTimeoutMs).catch(
        (err: unknown) =>
          this.logger.debug(
            { err: err instanceof Error ? err.message : String(err) },
            'pg: cancel after disconnect failed',
          ),
      );
    }
    if (!this.relay && !this.socket.writableEnded) this.socket.destroy();
    this.ended.abort();
    this.attachment?.detach();
    this.host.detach(this);
    if (wasOpen && this.flow) {
      this.flow.connectionClosed(
        {
          application_name: this.applicationName,
          client: this.clientAddress,
          conn_id: this.connId,
          reason: why,
        },
        Date.now() - this.openedAt,
        (err) => this.logger.error({ err }, 'pg connection: could not record connection close'),
      );
    }
  }

  remoteAddress(): string {
    return this.clientAddress;
  }
}
