// Run the gateway in its own process (bench/pg-gateway-server.ts, bundled to plain JavaScript) and
// stream a large result through it with a deliberately slow reader. Used by bench/pg.ts and by the
// streaming test (test/gateways/postgres/streaming.test.ts).
import { type ChildProcess, fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PostgresTarget } from '../service/config/schema.js';
import { BackendType, readDataRow } from '../service/gateways/postgres/backend-messages.js';
import { connectUpstream } from '../service/gateways/postgres/upstream.js';
import type { GatewayServerConfig, ServerMessage } from './pg-gateway-server.js';

const here = dirname(fileURLToPath(import.meta.url));

export type GatewayStats = Extract<ServerMessage, { type: 'stats' }>;

export interface GatewayChild {
  port: number;
  child: ChildProcess;
  stats(): Promise<GatewayStats>;
  resetPeak(): void;
  stop(): Promise<void>;
}

/**
 * The gateway runs as plain JavaScript, as in production: bundled with esbuild (dependencies stay
 * external, resolved from node_modules). Running it under tsx's loader thread measurably slows
 * every socket write.
 */
export async function buildGatewayServer(root: string = join(here, '..')): Promise<string> {
  // in the checkout's build/ (not node_modules/.cache: node_modules may be another checkout's, shared)
  const outdir = join(root, 'build', 'bench');
  const { build } = await import('esbuild');
  await build({
    entryPoints: [
      join(root, 'bench', 'pg-gateway-server.ts'),
      join(root, 'bench', 'pg-recorder-worker.ts'),
      // the embedded store's own process (service/store/embedded-process.ts finds it beside the bundle)
      join(root, 'service', 'store', 'embedded-server.ts'),
    ],
    entryNames: '[name]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outdir,
    outExtension: { '.js': '.mjs' },
    logLevel: 'warning',
  });
  return join(outdir, 'pg-gateway-server.mjs');
}

/** `root`: another checkout whose gateway to run (bench/pg.ts BENCH_BASELINE: before/after in one run) */
export async function startGatewayChild(cfg: GatewayServerConfig, root?: string): Promise<GatewayChild> {
  const profile = process.env.BENCH_PROFILE_DIR
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
    : [];
  const extra = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : [];
  const child = fork(await buildGatewayServer(root), [], {
    execArgv: [...profile, ...extra],
    stdio: 'inherit',
  });
  child.send(cfg);
  const ready = await new Promise<ServerMessage>((resolve, reject) => {
    child.once('message', (m: ServerMessage) => resolve(m));
    child.once('exit', (code) => reject(new Error(`gateway child exited (${code})`)));
  });
  if (ready.type !== 'ready')
    throw new Error(`gateway child failed: ${ready.type === 'error' ? ready.message : ready.type}`);
  return {
    port: ready.port,
    child,
    stats: () =>
      new Promise((resolve) => {
        child.once('message', (m: ServerMessage) => resolve(m as GatewayStats));
        child.send({ type: 'stats' });
      }),
    resetPeak: () => child.send({ type: 'reset-peak' }),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.send({ type: 'stop' });
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

export interface StreamOptions {
  port: number;
  database: string;
  sessionId: string;
  secret: string;
  sql: string;
  /** called once after this many bytes: the reader stops reading until the returned promise settles */
  stallAfterBytes?: number;
  stall?: () => Promise<void>;
}

export interface StreamResult {
  rows: number;
  seconds: number;
  /** every 99,991st row: no unmasked email or card number in columns 2 and 3 */
  maskedOk: boolean;
}

/** Stream a big result through the broker to a reader that keeps pausing (so backpressure must hold). */
export async function streamRows(o: StreamOptions): Promise<StreamResult> {
  const broker: PostgresTarget = {
    name: 'broker',
    kind: 'postgres',
    host: '127.0.0.1',
    port: o.port,
    database: o.database,
    user: o.sessionId,
    password: { env: 'UNUSED' },
  };
  const r = await connectUpstream(
    { target: broker, password: o.secret },
    { parameters: new Map([['client_encoding', 'UTF8']]), timeoutMs: 10_000 },
  );
  if (!r.ok) throw new Error(`stream client: ${r.message}`);
  const socket = r.conn.socket;
  const started = process.hrtime.bigint();
  let rows = 0;
  let maskedOk = true;
  let sinceBreath = 0;
  let total = 0;
  let stalled = false;
  await new Promise<void>((resolve, reject) => {
    let buf = r.conn.leftover;
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      sinceBreath += chunk.length;
      total += chunk.length;
      let pos = 0;
      while (buf.length - pos >= 5) {
        const end = pos + 1 + buf.readInt32BE(pos + 1);
        if (end > buf.length) break;
        const type = buf[pos];
        if (type === BackendType.dataRow) {
          rows++;
          if (rows % 99_991 === 1) {
            const cells = readDataRow(buf, pos + 5, end);
            const text = `${cells?.[1]?.toString() ?? ''} ${cells?.[2]?.toString() ?? ''}`;
            if (/@example\.com|4111 1111/.test(text)) maskedOk = false;
          }
        } else if (type === BackendType.errorResponse) {
          reject(new Error(`stream query failed: ${buf.toString('utf8', pos + 5, end)}`));
        } else if (type === BackendType.readyForQuery) {
          socket.destroy();
          resolve();
          return;
        }
        pos = end;
      }
      buf = buf.subarray(pos);
      if (!stalled && o.stallAfterBytes !== undefined && o.stall && total >= o.stallAfterBytes) {
        stalled = true;
        socket.pause();
        o.stall().then(() => socket.resume(), reject);
      } else if (sinceBreath > 4 << 20) {
        // a slow reader: every ~4 MiB stop reading for 20 ms
        sinceBreath = 0;
        socket.pause();
        setTimeout(() => socket.resume(), 20);
      }
    });
    socket.on('error', reject);
    const sql = Buffer.from(`${o.sql}\0`);
    const msg = Buffer.alloc(5 + sql.length);
    msg[0] = 0x51;
    msg.writeInt32BE(4 + sql.length, 1);
    sql.copy(msg, 5);
    socket.write(msg);
    socket.resume();
  });
  return { rows, seconds: Number(process.hrtime.bigint() - started) / 1e9, maskedOk };
}
