// Small helpers shared by the gateway tests: run libpq tools without blocking the event loop (the
// gateway runs in the test process), and speak raw protocol to the gateway.
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type pg from 'pg';
import { BackendType, readNoticeFields } from '../../../service/gateways/postgres/backend-messages.js';
import { connectUpstream, type UpstreamConnection } from '../../../service/gateways/postgres/upstream.js';
import type { GatewayHarness, TestSession } from '../../fixtures/pg-gateway-harness.js';
import { TARGET } from '../../fixtures/pg-gateway-harness.js';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function tool(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { env, maxBuffer: 64 << 20, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

export function psql(
  h: GatewayHarness,
  s: TestSession,
  args: string[],
  extraEnv: Record<string, string> = {},
  input?: string,
) {
  return tool('psql', ['-X', '-v', 'ON_ERROR_STOP=1', ...args], h.env(s, extraEnv), input);
}

/** An authenticated raw connection to the gateway (our own client code), after ReadyForQuery. */
export async function rawSession(
  port: number,
  s: TestSession,
  opts: { tls?: boolean; port?: number } = {},
): Promise<UpstreamConnection> {
  const r = await connectUpstream(
    {
      target: {
        name: 'gateway',
        kind: 'postgres',
        host: '127.0.0.1',
        port: opts.port ?? port,
        database: TARGET,
        user: s.id,
        password: { env: 'UNUSED' },
        ...(opts.tls ? { tls: { mode: 'require' as const } } : {}),
      },
      password: s.secret,
    },
    { parameters: new Map([['application_name', 'raw-test']]), timeoutMs: 10_000 },
  );
  if (!r.ok) throw new Error(r.message);
  r.conn.socket.resume();
  return r.conn;
}

export interface BackendFrame {
  type: string;
  body: Buffer;
}

/** Collect backend frames from a socket until `until` says stop (or the socket closes). */
export function collectFrames(
  socket: Socket,
  until: (f: BackendFrame, all: BackendFrame[]) => boolean,
  timeoutMs = 10_000,
  initial: Buffer = Buffer.alloc(0),
): Promise<{ frames: BackendFrame[]; closed: boolean }> {
  return new Promise((resolve) => {
    const frames: BackendFrame[] = [];
    let buf = initial;
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve({ frames, closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const onClose = (): void => finish(true);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const end = 1 + buf.readInt32BE(1);
        if (buf.length < end) break;
        const f = { type: String.fromCharCode(buf[0]!), body: buf.subarray(5, end) };
        buf = buf.subarray(end);
        frames.push(f);
        if (until(f, frames)) {
          finish(false);
          return;
        }
      }
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    if (initial.length) onData(Buffer.alloc(0));
  });
}

export function errorFields(f: BackendFrame): Record<string, string> {
  return Object.fromEntries(readNoticeFields(f.body, 0, f.body.length));
}

export const isReady = (f: BackendFrame): boolean => f.type === 'Z';
export const isError = (f: BackendFrame): boolean =>
  f.type === String.fromCharCode(BackendType.errorResponse);

/** A plain TCP socket to the gateway. */
export function tcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

export { tlsConnect };

export function frame(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

/** node-postgres query config that forces the extended protocol (queryMode is missing from @types/pg). */
export function extended(text: string, extra: Record<string, unknown> = {}): import('pg').QueryConfig {
  return { text, queryMode: 'extended', ...extra } as unknown as import('pg').QueryConfig;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** node-postgres settings for a harness session: TLS with the harness CA, the session as user and password. */
export function pgClientConfig(
  h: Pick<GatewayHarness, 'port' | 'caPem'>,
  s: Pick<TestSession, 'id' | 'secret'>,
  extra: Partial<pg.ClientConfig> = {},
): pg.ClientConfig {
  return {
    host: 'localhost',
    port: h.port,
    user: s.id,
    password: s.secret,
    database: TARGET,
    ssl: { ca: h.caPem, servername: 'localhost' },
    ...extra,
  };
}
