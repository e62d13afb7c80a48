// The PostgreSQL gateway's public surface: the broker's factory (gateways/registry.ts), and
// startPostgresGateway for whoever wires its dependencies by hand (tests, benchmarks).

export { postgresGateway } from './broker-gateway.js';
export type { GatewayLimits, GatewayTarget, PgGatewayDeps, PostgresGateway, SessionEnded } from './deps.js';
export { startPostgresGateway } from './gateway.js';
export { DEFAULT_LIMITS } from './limits.js';
