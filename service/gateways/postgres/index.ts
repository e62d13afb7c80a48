// The PostgreSQL gateway's public surface: start it with the broker's dependencies.

export type { GatewayLimits, GatewayTarget, PgGatewayDeps, PostgresGateway, SessionEnded } from './deps.js';
export { startPostgresGateway } from './gateway.js';
export { DEFAULT_LIMITS } from './limits.js';
