// Prometheus metrics (prom-client), one registry per broker instance (tests run several in one process).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface BrokerMetrics {
  registry: Registry;
  sessionsOpened: Counter<'policy'>;
  sessionsDenied: Counter<'reason'>;
  sessionsActive: Gauge;
  sessionsEnded: Counter<'how'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  gatewayConnections: Gauge<'gateway'>;
  statements: Counter<'gateway' | 'decision'>;
  limitRefusals: Counter<'limit'>;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): BrokerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'hoop_' });
  return {
    registry,
    sessionsOpened: new Counter({
      name: 'hoop_sessions_opened_total',
      help: 'Sessions opened, by policy',
      labelNames: ['policy'],
      registers: [registry],
    }),
    sessionsDenied: new Counter({
      name: 'hoop_sessions_denied_total',
      help: 'Session requests refused, by reason (token.invalid, token.replayed, issuer.unavailable, policy.no_match, policy.target_not_granted)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    sessionsActive: new Gauge({
      name: 'hoop_sessions_active',
      help: 'Sessions neither ended nor expired',
      registers: [registry],
    }),
    sessionsEnded: new Counter({
      name: 'hoop_sessions_ended_total',
      help: 'Sessions ended, by how (revoked, expired)',
      labelNames: ['how'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'hoop_http_request_duration_seconds',
      help: 'HTTP API request latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    gatewayConnections: new Gauge({
      name: 'hoop_gateway_connections',
      help: 'Live client connections per gateway',
      labelNames: ['gateway'],
      registers: [registry],
    }),
    statements: new Counter({
      name: 'hoop_gateway_operations_total',
      help: 'Operations decided by the gateways, by decision',
      labelNames: ['gateway', 'decision'],
      registers: [registry],
    }),
    limitRefusals: new Counter({
      name: 'hoop_limit_refusals_total',
      help: 'Requests and connections refused by a broker-wide limit (config limits.*), by limit',
      labelNames: ['limit'],
      registers: [registry],
    }),
  };
}
