// The Kubernetes gateway as the broker runs it (gateways/registry.ts): its own HTTPS listener
// (listen.kubernetes), one upstream per kubernetes target, connection settings for the kubeconfig.
import { readFileSync } from 'node:fs';
import type { Gateway, GatewayFactory } from '../gateway.js';
import { hostForUrl } from '../gateway.js';
import { type KubernetesGateway, startKubernetesGateway } from './gateway.js';
import { type KubernetesUpstream, makeUpstream } from './upstream.js';

export { startKubernetesGateway } from './gateway.js';
export type { KubernetesGateway, KubernetesGatewayDeps } from './gateway.js';

export const kubernetesGateway: GatewayFactory<'kubernetes'> = (ctx) => {
  const listen = ctx.config.listen.kubernetes;
  if (!listen) return null;
  let running: KubernetesGateway | null = null;
  const gateway: Gateway<'kubernetes'> = {
    kind: 'kubernetes',
    async start() {
      const upstreams = new Map<string, KubernetesUpstream>();
      for (const [i, t] of ctx.config.targets.entries()) {
        if (t.kind !== 'kubernetes') continue;
        let certPem: string | undefined;
        let keyPem: string | undefined;
        if ('client_cert_file' in t.credentials) {
          try {
            certPem = readFileSync(t.credentials.client_cert_file, 'utf8');
            keyPem = readFileSync(t.credentials.client_key_file, 'utf8');
          } catch (err) {
            throw new Error(
              `targets: cannot read the client certificate or key of target ${t.name}: ${(err as Error).message}`,
              { cause: err },
            );
          }
        }
        upstreams.set(
          t.name,
          makeUpstream(t, {
            caPem: ctx.targetCas.get(t.name),
            token: ctx.secrets.get(`targets[${i}].credentials.token`),
            certPem,
            keyPem,
          }),
        );
      }
      running = await startKubernetesGateway(
        {
          logger: ctx.logger.child({ gateway: 'kubernetes' }),
          tls: ctx.tls,
          targets: upstreams,
          getSession: (id) => ctx.sessions.getSession(id),
          now: () => ctx.sessions.now(),
          sessionEvents: ctx.sessions.events,
          record: (sessionId, event) => ctx.recorder.record(sessionId, event),
          recordBackground: (sessionId, event, done) => ctx.recorder.recordBackground(sessionId, event, done),
          ...(ctx.approver ? { approver: ctx.approver } : {}),
        },
        { host: listen.host, port: listen.port },
      );
    },
    port: () => running?.port ?? null,
    connectionInfo(target, session) {
      const host = listen.public_host ?? ctx.publicHost;
      return {
        // the session id in the path names the session; the bearer token is its secret
        server: `https://${hostForUrl(host)}:${running?.port ?? listen.port}/k8s/${target.name}/${session.id}`,
        ...(target.namespace ? { namespace: target.namespace } : {}),
      };
    },
    async close() {
      await running?.close();
    },
  };
  return gateway;
};
