// Every kind of target has one gateway. Adding a kind: its target schema (config/targets/), its
// connection settings (api/connections.ts), and one line here.
import type { TargetKind } from '../config/schema.js';
import type { GatewayFactory } from './gateway.js';
import { postgresGateway } from './postgres/index.js';

export const GATEWAYS: { readonly [K in TargetKind]: GatewayFactory<K> } = {
  postgres: postgresGateway,
};
