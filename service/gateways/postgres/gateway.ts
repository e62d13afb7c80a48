// The PostgreSQL gateway: a TCP listener whose connections authenticate a broker session, then relay
// to the session's target through the SQL policy. It owns every client connection, the per-target
// catalog connections, the cancel keys, and the timers that end connections when a session expires.
//
// Choices (see also relay.ts and client-connection.ts):
// - TLS: required, except for clients on a loopback address (requireTls: 'always' removes that).
//   SCRAM never exposes the secret, but without TLS the data would be clear on the network.
// - Authentication: SCRAM-SHA-256 against the session's verifier (SCRAM-SHA-256-PLUS offered over
//   TLS); with allowCleartextPassword, TLS clients are asked for the password in clear instead (for
//   clients without SCRAM), checked against the secret's hash. Unknown session and wrong secret give
//   the same 28P01 after a full exchange; expired/revoked (28000), ungranted target (42501) and
//   unknown target (3D000) are said only after a correct proof.
// - A simple Query with several statements is refused as a whole when any statement is denied
//   (PostgreSQL runs it as one implicit transaction; running a part would change its meaning).
// - FunctionCall (fast-path): the function is read from the catalog by OID and the call judged as the
//   equivalent SELECT schema.name($1, …) (relay.ts onFunctionCall).
// - Audit: a denial is recorded before the client hears of it; an allowed statement is recorded when
//   it completes (with rows, bytes, duration, masked cells), just after its result is relayed, without
//   holding results back. If the recorder fails, the connection is closed (no unrecorded work).
// - Session end (gateways/session-guard.ts): live connections get FATAL 57P01 (admin_shutdown, what
//   pg_terminate_backend sends) with "hoop: session … was revoked" / "… has expired", within
//   milliseconds of the event or expiry.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { createSecureContext } from 'node:tls';
import { initSqlParser } from '../../policy/sql/index.js';
import { holdsUnsupported } from '../operation-flow.js';
import { SessionGuard } from '../session-guard.js';
import { tlsServerEndPoint } from './auth/channel-binding.js';
import { CatalogResolver } from './catalog/resolver.js';
import { ClassificationCache } from './classification-cache.js';
import { type CancelKey, ClientConnection, type ConnectionHost } from './client-connection.js';
import type { SessionRecord } from '../../sessions/types.js';
import type { GatewayTarget, PgGatewayDeps, PostgresGateway, SessionEnded } from './deps.js';
import { BufferBudget, resolveLimits } from './limits.js';
import { SessionRoles } from './session-roles.js';
import { cancelUpstream } from './upstream.js';

export type { PostgresGateway } from './deps.js';

export async function startPostgresGateway(
  deps: PgGatewayDeps,
  listen: { host: string; port: number },
): Promise<PostgresGateway> {
  await initSqlParser();
  const limits = resolveLimits(deps.limits);
  const logger = deps.logger.child({ component: 'pg-gateway' });
  const connections = new Set<ClientConnection>();
  const cancelKeys = new Map<number, ClientConnection>();
  const catalogs = new Map<string, CatalogResolver>();
  const guard = new SessionGuard(deps);
  /** connections holding (or opening) an upstream connection, per target */
  const upstreams = new Map<string, Set<ClientConnection>>();
  const buffers = new BufferBudget(limits.maxUnfinishedBytesTotal);
  /** per-session upstream roles, for targets with session_roles */
  const sessionRoles = new Map<string, SessionRoles>();
  for (const [name, gt] of deps.targets)
    if (gt.target.session_roles)
      sessionRoles.set(
        name,
        new SessionRoles(gt, logger.child({ target: name }), limits.upstreamConnectTimeoutMs),
      );
  const sessionIsLive = async (id: string): Promise<boolean> => {
    const s = await deps.getSession(id);
    return s !== null && s.ended_at === null && s.expires_at.getTime() > deps.now().getTime();
  };
  const sweepRoles = (): void => {
    for (const [name, roles] of sessionRoles)
      roles
        .sweep(sessionIsLive)
        .then((n) => {
          if (n > 0) logger.info({ target: name, dropped: n }, 'pg session roles of ended sessions dropped');
        })
        .catch((err: unknown) =>
          logger.warn(
            { target: name, err: err instanceof Error ? err.message : String(err) },
            'pg session role sweep failed',
          ),
        );
  };
  // after a crash, roles of sessions that ended meanwhile are dropped at start, then every minute
  sweepRoles();
  const roleSweep = sessionRoles.size > 0 ? setInterval(sweepRoles, 60_000).unref() : null;

  // the session's upstream roles end with it (closing its connections is the session guard's)
  const onEnded = (e: SessionEnded): void => {
    for (const [name, roles] of sessionRoles)
      roles
        .drop(e.id)
        .catch((err: unknown) =>
          logger.warn(
            { target: name, session_id: e.id, err: err instanceof Error ? err.message : String(err) },
            'pg session role could not be dropped (the sweep retries)',
          ),
        );
  };
  deps.sessionEvents.on('ended', onEnded);

  const host: ConnectionHost = {
    deps,
    limits,
    secureContext: createSecureContext({ cert: deps.tls.certPem, key: deps.tls.keyPem }),
    channelBinding: tlsServerEndPoint(deps.tls.certPem),
    mockKey: randomBytes(32),
    logger,
    classifier: new ClassificationCache(),
    catalogFor(name: string, gt: GatewayTarget): CatalogResolver {
      let c = catalogs.get(name);
      if (!c) {
        c = new CatalogResolver(
          gt,
          logger.child({ target: name, catalog: true }),
          limits.upstreamConnectTimeoutMs,
        );
        catalogs.set(name, c);
      }
      return c;
    },
    guard,
    approver: deps.approver ?? holdsUnsupported('the PostgreSQL gateway'),
    buffers,
    sessionRole(gt: GatewayTarget, session: SessionRecord, renew = false) {
      const roles = sessionRoles.get(gt.target.name);
      if (!roles) return Promise.resolve(null);
      return roles.credentialsFor(session, gt.target.max_connections_per_session ?? 10, renew);
    },
    admitUpstream(conn: ClientConnection, target: string): boolean {
      let set = upstreams.get(target);
      if (!set) upstreams.set(target, (set = new Set()));
      if (set.size >= limits.maxUpstreamConnectionsPerTarget) return false;
      set.add(conn);
      return true;
    },
    issueCancelKey(conn: ClientConnection): CancelKey {
      let processId: number;
      do processId = randomInt(1, 2 ** 31 - 1);
      while (cancelKeys.has(processId));
      cancelKeys.set(processId, conn);
      return { processId, secretKey: randomBytes(4) };
    },
    handleCancel(processId: number, secretKey: Buffer): void {
      const conn = cancelKeys.get(processId);
      const key = conn?.cancelKeyOf;
      // Constant-time on the secret; an unknown pid costs the same comparison against a dummy.
      const expected = key?.secretKey ?? randomBytes(4);
      const matches =
        secretKey.length === expected.length && timingSafeEqual(secretKey, expected) && key !== undefined;
      if (!matches || !conn) {
        logger.debug('pg cancel request with an unknown key');
        return;
      }
      const upstreamKey = conn.upstreamKey;
      const gt = conn.target;
      if (!upstreamKey || !gt) return;
      cancelUpstream(gt, upstreamKey, limits.upstreamConnectTimeoutMs).catch((err: unknown) =>
        logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'pg cancel: could not reach upstream',
        ),
      );
    },
    detach(conn: ClientConnection): void {
      if (connections.delete(conn)) deps.metrics?.gatewayConnections.dec({ gateway: 'postgres' });
      for (const set of upstreams.values()) set.delete(conn);
      const key = conn.cancelKeyOf;
      if (key && cancelKeys.get(key.processId) === conn) cancelKeys.delete(key.processId);
    },
  };

  const server: Server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {}); // per-connection errors are handled (and logged) by the connection
    const conn = new ClientConnection(socket, host);
    connections.add(conn);
    deps.metrics?.gatewayConnections.inc({ gateway: 'postgres' });
  });
  server.on('error', (err) => logger.error({ err }, 'pg gateway listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  logger.info({ host: listen.host, port }, 'pg gateway listening');

  return {
    port,
    connectionCount: () => connections.size,
    async drain(deadline: number): Promise<void> {
      if (server.listening) server.close();
      while (connections.size > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - Date.now()))));
    },
    async close(): Promise<void> {
      if (roleSweep) clearInterval(roleSweep);
      for (const roles of sessionRoles.values()) roles.close();
      deps.sessionEvents.off('ended', onEnded);
      const closed = new Promise<void>((resolve) =>
        server.listening ? server.close(() => resolve()) : resolve(),
      );
      const shutdown = {
        reason: 'shutdown',
        message: 'hoop: the broker is shutting down',
        why: 'broker shutdown',
      } as const;
      guard.close(shutdown);
      // and the connections not yet authorized
      for (const conn of [...connections]) conn.close(shutdown);
      for (const c of catalogs.values()) c.close();
      catalogs.clear();
      await closed;
    },
  };
}
