// The PostgreSQL gateway as the broker runs it (gateways/registry.ts): its targets and their
// credentials from the config, its deps from the broker's context, and what a session's answer says
// about reaching a target through it.
import type { GatewayFactory } from '../gateway.js';
import { hostForUrl } from '../gateway.js';
import type { GatewayTarget, PostgresGateway } from './deps.js';
import { startPostgresGateway } from './gateway.js';

export const postgresGateway: GatewayFactory<'postgres'> = (ctx) => {
  const listen = ctx.config.listen.postgres;
  if (!listen) return null;
  const publicHost = listen.public_host ?? ctx.publicHost;
  const targets = new Map<string, GatewayTarget>();
  ctx.config.targets.forEach((t, i) => {
    if (t.kind !== 'postgres') return;
    const caPem = ctx.targetCas.get(t.name);
    targets.set(t.name, {
      target: t,
      password: ctx.secrets.get(`targets[${i}].password`)!,
      ...(caPem ? { caPem } : {}),
    });
  });
  let running: PostgresGateway | null = null;
  return {
    kind: 'postgres',
    async start(): Promise<void> {
      running = await startPostgresGateway(
        {
          logger: ctx.logger.child({ gateway: 'postgres' }),
          tls: ctx.tls,
          getSession: (id) => ctx.sessions.getSession(id),
          now: () => ctx.sessions.now(),
          targets,
          sessionEvents: ctx.sessions.events,
          record: async (sessionId, event, opts) => {
            await ctx.recorder.record(sessionId, event, opts);
          },
          recordBackground: (sessionId, event, done) => ctx.recorder.recordBackground(sessionId, event, done),
          allowCleartextPassword: listen.allow_cleartext_password,
          metrics: ctx.metrics,
          ...(ctx.approver ? { approver: ctx.approver } : {}),
          limits: {
            midMessageTimeoutMs: ctx.config.limits.message_timeout_ms,
            maxUpstreamConnectionsPerTarget: ctx.config.limits.upstream_connections_per_target,
            maxUnfinishedBytesTotal: ctx.config.limits.unfinished_message_bytes,
          },
        },
        { host: listen.host, port: listen.port },
      );
    },
    port: () => running?.port ?? null,
    connectionInfo(target, session) {
      const port = running?.port ?? listen.port;
      const db = encodeURIComponent(target.name);
      return {
        host: publicHost,
        port,
        database: target.name,
        user: session.id,
        sslmode: 'verify-full',
        url: `postgres://${session.id}@${hostForUrl(publicHost)}:${port}/${db}?sslmode=verify-full`,
      };
    },
    connectionCount: () => running?.connectionCount() ?? 0,
    async drain(deadline: number): Promise<void> {
      await running?.drain(deadline);
    },
    async close(): Promise<void> {
      await running?.close();
    },
  };
};
