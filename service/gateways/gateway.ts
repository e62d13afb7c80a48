// What the broker knows of a gateway: its kind, how to start and stop it, and the connection settings
// a session's answer carries for each of its targets. The broker loops over gateways/registry.ts.
import type { Approver } from './operation-flow.js';
import type { Logger } from 'pino';
import type { ConnectionOf } from '../api/schemas.js';
import type { BrokerEvent } from '../audit/event.js';
import type { RecordOptions, Settle } from '../audit/recorder.js';
import type { ResolvedConfig } from '../config/load.js';
import type { TargetKind, TargetOf } from '../config/schema.js';
import type { BrokerMetrics } from '../metrics.js';
import type { SessionRecord } from '../sessions/types.js';
import type { RecordingChunk } from '../store/store.js';
import type { SessionEnded } from './session-guard.js';

export interface Gateway<K extends TargetKind = TargetKind> {
  readonly kind: K;
  /** listen; resolves once clients can connect */
  start(): Promise<void>;
  /** the port clients connect to, once started (null: not listening, or on another listener's port) */
  port(): number | null;
  /** how a session reaches `target` through this gateway (the API's SessionTarget.connection) */
  connectionInfo(target: TargetOf<K>, session: SessionRecord): ConnectionOf<K>;
  /**
   * Graceful shutdown: stop accepting, then wait for the clients to finish until `deadline` (ms since
   * the epoch); close() follows. Optional: a gateway without it is closed at once.
   */
  drain?(deadline: number): Promise<void>;
  /** stop listening and close every connection */
  close(): Promise<void>;
}

/** What the broker gives every gateway. */
export interface GatewayContext {
  config: ResolvedConfig;
  logger: Logger;
  /** the broker's certificate (chain first) and key */
  tls: { certPem: string; keyPem: string };
  /** resolved secrets by config path (`targets[0].password`) */
  secrets: ReadonlyMap<string, string>;
  /** targets' `tls.ca_file` contents, by target name */
  targetCas: ReadonlyMap<string, string>;
  /** the host clients are told to connect to (public_url's host, else the HTTP listener's) */
  publicHost: string;
  sessions: {
    getSession(id: string): Promise<SessionRecord | null>;
    now(): Date;
    events: {
      on(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
      off(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
    };
  };
  recorder: {
    record(sessionId: string, event: BrokerEvent, opts?: RecordOptions): Promise<unknown>;
    recordBackground(sessionId: string, event: BrokerEvent, done: Settle): void;
  };
  /** terminal recordings beside the transcript (Store.appendRecordingChunks): durable when resolved */
  recordings: {
    append(sessionId: string, chunks: RecordingChunk[]): Promise<void>;
  };
  metrics: BrokerMetrics;
  /** decides held operations (service/approvals/service.ts); absent: holds are refused */
  approver?: Approver;
}

/** Makes a kind's gateway from the broker's context; null when the config does not enable it (no listener). */
export type GatewayFactory<K extends TargetKind> = (ctx: GatewayContext) => Gateway<K> | null;

/** A host as it goes into a URL: IPv6 in brackets. */
export function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
