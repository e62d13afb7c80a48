// What a channel of a client connection works with: the session's rules for its target, the
// connection's operation flow (decide → act → record), its upstream connection and the recordings.
import type { Logger } from 'pino';
import type { Client } from 'ssh2';
import type { RecordingChunk } from '../../store/store.js';
import type { SshRules } from '../../policy/ssh/decide.js';
import type { OperationFlow } from '../operation-flow.js';

export interface RecordingSink {
  /** durable when it resolves */
  append(sessionId: string, chunks: RecordingChunk[]): Promise<void>;
}

export interface ConnectionScope {
  readonly sessionId: string;
  readonly target: string;
  readonly connId: string;
  readonly rules: SshRules;
  readonly flow: OperationFlow;
  readonly recordings: RecordingSink;
  readonly maxRecordingBytes: number;
  readonly logger: Logger;
  now(): Date;
  /** the connection's upstream, once connected and logged in (rejects with an UpstreamError) */
  upstream(): Promise<Client>;
  /** what to tell the client about an upstream failure (never a credential) */
  upstreamMessage(err: unknown): string;
}
