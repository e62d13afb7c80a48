// The ssh gateway as the broker runs it (gateways/registry.ts): the host key (listen.ssh.host_key, or
// generated once in data_dir), its targets with their pinned host keys and credentials, its deps
// from the broker's context, and what a session's answer says about reaching a target through it.
import type { GatewayFactory } from '../gateway.js';
import { holdsUnsupported } from '../operation-flow.js';
import { SessionGuard } from '../session-guard.js';
import { type SshGateway, startSshGateway } from './gateway.js';
import { ensureHostKey, type HostKey, parseHostKey } from './host-key.js';
import { pinnedHostKeys, privateKeyProblem, type UpstreamTarget } from './upstream.js';
import { sshUserName } from './user-name.js';

export { type SshGateway, type SshGatewayDeps, startSshGateway } from './gateway.js';
export { DEFAULT_SSH_LIMITS, type SshGatewayLimits } from './connection.js';
export { sshUserName, parseSshUserName } from './user-name.js';

/** A problem with the ssh part of the config found at start-up (the broker refuses to start). */
export class SshConfigError extends Error {}

export const sshGateway: GatewayFactory<'ssh'> = (ctx) => {
  const listen = ctx.config.listen.ssh;
  if (!listen) return null;
  const publicHost = listen.public_host ?? ctx.publicHost;
  const targets = new Map<string, UpstreamTarget>();
  ctx.config.targets.forEach((t, i) => {
    if (t.kind !== 'ssh') return;
    const hostKeys = pinnedHostKeys(t.host_key);
    if (typeof hostKeys === 'string') throw new SshConfigError(`targets[${i}].host_key: ${hostKeys}`);
    const privateKey = ctx.secrets.get(`targets[${i}].private_key`);
    const password = ctx.secrets.get(`targets[${i}].password`);
    if (privateKey !== undefined) {
      const problem = privateKeyProblem(privateKey);
      // the message names the reference's path, never the key
      if (problem)
        throw new SshConfigError(`targets[${i}].private_key: not a usable private key (${problem})`);
    }
    targets.set(t.name, {
      target: t,
      hostKeys,
      credential: privateKey !== undefined ? { privateKey } : { password: password ?? '' },
    });
  });
  let hostKey: HostKey | null = null;
  let running: SshGateway | null = null;
  let guard: SessionGuard | null = null;
  const loadHostKey = (): HostKey => {
    if (!listen.host_key) return ensureHostKey(ctx.config.data_dir);
    const text = ctx.secrets.get('listen.ssh.host_key');
    const parsed = text === undefined ? 'not resolved' : parseHostKey(text);
    if (typeof parsed === 'string') throw new SshConfigError(`listen.ssh.host_key: ${parsed}`);
    return parsed;
  };
  return {
    kind: 'ssh',
    async start(): Promise<void> {
      hostKey = loadHostKey();
      guard = new SessionGuard({
        getSession: (id) => ctx.sessions.getSession(id),
        now: () => ctx.sessions.now(),
        sessionEvents: ctx.sessions.events,
      });
      running = await startSshGateway(
        {
          logger: ctx.logger.child({ gateway: 'ssh' }),
          hostKey,
          guard,
          targets,
          sink: (sessionId) => ({
            record: async (event) => {
              await ctx.recorder.record(sessionId, event);
            },
            recordBackground: (event, done) => ctx.recorder.recordBackground(sessionId, event, done),
          }),
          recordings: ctx.recordings,
          approver: ctx.approver ?? holdsUnsupported('the ssh gateway'),
          now: () => ctx.sessions.now(),
          onConnection: (delta) => ctx.metrics.gatewayConnections.inc({ gateway: 'ssh' }, delta),
          count: (decision) => ctx.metrics.statements.inc({ gateway: 'ssh', decision }),
        },
        { host: listen.host, port: listen.port },
      );
    },
    port: () => running?.port ?? null,
    connectionInfo(target, session) {
      return {
        host: publicHost,
        port: running?.port ?? listen.port,
        user: sshUserName(session.id, target.name),
        host_key: hostKey?.publicKey ?? '',
      };
    },
    async close(): Promise<void> {
      await running?.close();
      guard?.close({
        reason: 'shutdown',
        message: 'hoop: the broker is shutting down',
        why: 'broker shutdown',
      });
    },
  };
};
