// What the PostgreSQL gateway needs from the rest of the broker. The broker wires the real things
// (store, session service, config); tests wire in-memory ones (test/fixtures/pg-gateway-harness.ts).
import type { Logger } from 'pino';
import type { BrokerEvent } from '../../audit/event.js';
import type { RecordOptions, Settle } from '../../audit/recorder.js';
import type { PostgresTarget } from '../../config/schema.js';
import type { BrokerMetrics } from '../../metrics.js';
import type { SessionRecord } from '../../sessions/types.js';
import type { Approver } from '../operation-flow.js';
import type { SessionEnded } from '../session-guard.js';

/** A session ended: the gateway closes that session's live connections with a FATAL error saying why. */
export type { SessionEnded } from '../session-guard.js';

export interface GatewayTarget {
  target: PostgresTarget;
  /** the upstream password, resolved from the target's SecretRef; never logged, never sent to clients */
  password: string;
  /** CA bundle (PEM) for `tls.mode: verify-full`, resolved from `tls.ca_file`; absent: system CAs */
  caPem?: string;
}

export interface PgGatewayDeps {
  logger: Logger;
  /** the broker's certificate (chain first) and key, for clients' SSLRequest */
  tls: { certPem: string; keyPem: string };
  getSession(id: string): Promise<SessionRecord | null>;
  now(): Date;
  targets: ReadonlyMap<string, GatewayTarget>;
  /** 'ended' fires with {id, reason, message} when a session is revoked or expires */
  sessionEvents: {
    on(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
    off(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
  };
  /**
   * append a transcript event; resolves when recorded (durable). `background`: nobody waits for it (the
   * recorder may let it wait longer for company; see TranscriptRecorder)
   */
  record(sessionId: string, event: BrokerEvent, opts?: RecordOptions): Promise<void>;
  /**
   * record() with `background` and a callback (TranscriptRecorder.recordBackground): the gateway's
   * per-statement path. When absent, record() is used.
   */
  recordBackground?(sessionId: string, event: BrokerEvent, done: Settle): void;
  /** accept a cleartext password inside TLS (for clients without SCRAM); default SCRAM-SHA-256 only */
  allowCleartextPassword: boolean;
  /**
   * 'non-loopback' (default): TLS is required unless the client connects from a loopback address
   * (same host: a sidecar, a local test, the benchmark). 'always': TLS required for every client.
   */
  requireTls?: 'always' | 'non-loopback';
  /** live connections and statement decisions, labelled gateway="postgres" */
  metrics?: Pick<BrokerMetrics, 'gatewayConnections' | 'statements' | 'limitRefusals'>;
  /** decides statements the policy holds for approval; default: refused (holdsUnsupported) */
  approver?: Approver;
  /** limits and timeouts; defaults in limits.ts */
  limits?: Partial<GatewayLimits>;
}

export interface GatewayLimits {
  /** startup (TLS, authentication, upstream connection) must finish within this, or the broker closes */
  startupTimeoutMs: number;
  /**
   * a client message must arrive whole within this of its first byte (more bytes do not extend it: one
   * byte every few seconds must not pin a buffer forever); the client is disconnected otherwise
   */
  midMessageTimeoutMs: number;
  /** connections to one target at once, across all sessions (PostgreSQL's max_connections is shared) */
  maxUpstreamConnectionsPerTarget: number;
  /** bytes of unfinished client messages held at once across all connections */
  maxUnfinishedBytesTotal: number;
  /** largest Query/Parse/Bind/FunctionCall/CopyData message accepted from a client */
  maxQueryMessageBytes: number;
  /** largest message of any other type accepted from an authenticated client */
  maxOtherMessageBytes: number;
  /** largest message before authentication (startup packet, password/SASL messages) */
  maxStartupMessageBytes: number;
  /** upstream connect + authentication deadline */
  upstreamConnectTimeoutMs: number;
}

export interface PostgresGateway {
  /** the port actually listened on (useful with port 0) */
  port: number;
  /** stop listening, close every client and upstream connection, and the catalog connections */
  close(): Promise<void>;
  /** live client connections (any state) */
  connectionCount(): number;
  /**
   * Graceful shutdown, first half: stop accepting connections, then wait until the clients have
   * finished and gone or `deadline` (ms since the epoch) has passed. close() then ends what is left.
   */
  drain(deadline: number): Promise<void>;
}
