// The PostgreSQL gateway alone in a child process (forked by bench/pg.ts), so its CPU and memory can
// be measured apart from the benchmark driver. Configured over IPC; reports its port, then answers
// 'stats' requests with its peak RSS and a few counters.
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { chainEvent, type NewEvent, type TranscriptEvent } from '../service/audit/event.js';
import { TranscriptRecorder } from '../service/audit/recorder.js';
import type { Grant, PostgresTarget } from '../service/config/schema.js';
import type { PgGatewayDeps, SessionEnded } from '../service/gateways/postgres/deps.js';
import { startPostgresGateway } from '../service/gateways/postgres/gateway.js';
import { startFloorRelay } from './pg-floor-relay.js';
import { hashSecret, makeScramVerifier } from '../service/sessions/secret.js';
import type { SessionRecord } from '../service/sessions/types.js';
import { openStore } from '../service/store/open.js';
import type { Store } from '../service/store/store.js';

export interface GatewayServerConfig {
  target: PostgresTarget;
  password: string;
  tls: { certPem: string; keyPem: string };
  sessions: Array<{ id: string; secret: string; grant: Grant }>;
  /**
   * memory: hash chain computed on the event loop, heads kept in memory (what the store's append does);
   * worker: the same chain computed on a worker thread in batches; store: the embedded store through
   * the TranscriptRecorder; none: no transcript work (the gateway's own cost)
   */
  recording: 'memory' | 'worker' | 'store' | 'none' | 'null-store';
  /**
   * run the floor instead of the gateway (bench/pg-floor-relay.ts): the bare relay plus per-statement
   * recording through the same recorder; needs a recording with recordBackground (store, null-store) or none
   */
  floor?: boolean | 'bare';
}

export type ServerMessage =
  | { type: 'ready'; port: number }
  | {
      type: 'stats';
      maxRssMb: number;
      rssMb: number;
      sampledPeakRssMb: number;
      childRssMb: number;
      sampledPeakChildRssMb: number;
      sampledPeakTotalRssMb: number;
      events: number;
      /** events the store has made durable (recording=store; otherwise equal to events) */
      durable: number;
      cpuMicros: number;
    }
  | { type: 'error'; message: string };

let sampledPeak = 0;
let sampledPeakChild = 0;
let sampledPeakTotal = 0;
/** RSS of this process' children (the embedded store's process), from /proc (Linux). */
function childRss(): number {
  let total = 0;
  try {
    const kids = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
    for (const pid of kids.split(' ').filter(Boolean)) {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += Number(m?.[1] ?? 0) * 1024;
    }
  } catch {
    // not Linux, or a child just ended
  }
  return total;
}
const sample = (): void => {
  const rss = process.memoryUsage.rss();
  const child = childRss();
  if (rss > sampledPeak) sampledPeak = rss;
  if (child > sampledPeakChild) sampledPeakChild = child;
  if (rss + child > sampledPeakTotal) sampledPeakTotal = rss + child;
};
setInterval(sample, 100).unref();

const send = (m: ServerMessage): void => {
  process.send?.(m);
};

async function main(cfg: GatewayServerConfig): Promise<void> {
  const logger = pino({ level: process.env.HOOP_BENCH_LOG ?? 'warn' });
  const sessions = new Map<string, SessionRecord>();
  const now = new Date();
  for (const s of cfg.sessions) {
    sessions.set(s.id, {
      id: s.id,
      secret_hash: hashSecret(s.secret),
      scram_verifier: makeScramVerifier(s.secret),
      issuer: 'bench',
      identity: { repository: 'bench/bench' },
      claims: {},
      policy: 'bench',
      grants: [s.grant],
      ssh_public_key: null,
      created_at: now,
      expires_at: new Date(now.getTime() + 24 * 3600_000),
      ended_at: null,
      end_reason: null,
    });
  }
  let events = 0;
  let durable = 0;
  let record: PgGatewayDeps['record'];
  let recordBackground: PgGatewayDeps['recordBackground'];
  let store: Store | null = null;
  let closeRecorder = async (): Promise<void> => {};
  let dataDir: string | null = null;
  if (cfg.recording === 'store') {
    dataDir = mkdtempSync(join(tmpdir(), 'hoop-bench-store-'));
    store = await openStore({ dataDir });
    for (const s of sessions.values()) {
      await store.openSession(
        s,
        { target: null, kind: 'session.opened', operation: {}, decision: 'allow', reasons: [] },
        {
          key: `bench:${s.id}`,
          expires_at: s.expires_at,
        },
      );
    }
    const recorder = new TranscriptRecorder(store, logger);
    closeRecorder = () => recorder.close();
    record = async (id, ev, opts) => {
      events++;
      await recorder.record(id, ev, opts);
      durable++;
    };
    recordBackground = (id, ev, done) => {
      events++;
      recorder.recordBackground(id, ev, (err, seq) => {
        if (err === null) durable++;
        done(err, seq);
      });
    };
  } else if (cfg.recording === 'worker') {
    const worker = new Worker(new URL('./pg-recorder-worker.mjs', import.meta.url));
    worker.unref();
    let batch: Array<[string, NewEvent]> = [];
    let waiters: Array<() => void> = [];
    let nextId = 0;
    const inFlight = new Map<number, Array<() => void>>();
    worker.on('message', (id: number) => {
      for (const done of inFlight.get(id) ?? []) done();
      inFlight.delete(id);
    });
    const flush = (): void => {
      const id = nextId++;
      inFlight.set(id, waiters);
      worker.postMessage({ id, events: batch });
      batch = [];
      waiters = [];
    };
    record = (id, ev) => {
      events++;
      if (batch.length === 0) setImmediate(flush);
      batch.push([id, ev]);
      return new Promise<void>((resolve) => waiters.push(resolve));
    };
  } else if (cfg.recording === 'null-store') {
    // diagnosis only: the recorder as the broker runs it, over a store that accepts every batch at once
    // (no IPC, no store process): what recording costs the gateway's own process
    const nullStore = {
      appendEventTexts: async (batches: { events: readonly string[] }[]) =>
        batches.map((b) => ({ ok: true as const, first_seq: 1, head: { seq: b.events.length, hash: '' } })),
      appendEventBatches: async () => [],
    } as unknown as Store;
    const recorder = new TranscriptRecorder(nullStore, logger);
    closeRecorder = () => recorder.close();
    record = async (id, ev, opts) => {
      events++;
      await recorder.record(id, ev, opts);
    };
    recordBackground = (id, ev, done) => {
      events++;
      recorder.recordBackground(id, ev, done);
    };
  } else if (cfg.recording === 'none') {
    // diagnosis only: the gateway's own cost without any transcript work
    record = async () => {
      events++;
    };
  } else {
    const heads = new Map<string, TranscriptEvent>();
    record = async (id: string, ev: NewEvent) => {
      events++;
      heads.set(id, chainEvent(heads.get(id) ?? null, id, ev, new Date()));
    };
  }
  const deps: PgGatewayDeps = {
    logger,
    tls: cfg.tls,
    getSession: async (id) => sessions.get(id) ?? null,
    now: () => new Date(),
    targets: new Map([[cfg.target.name, { target: cfg.target, password: cfg.password }]]),
    sessionEvents: new EventEmitter<{ ended: [SessionEnded] }>(),
    record,
    ...(recordBackground ? { recordBackground } : {}),
    allowCleartextPassword: false,
  };
  const gateway = cfg.floor
    ? await floorGateway(
        cfg,
        // recording=none: the floor's framing and events without a recorder (what recording adds to it)
        cfg.recording === 'none'
          ? () => {
              events++;
            }
          : recordBackground,
      )
    : await startPostgresGateway(deps, { host: '127.0.0.1', port: 0 });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stats') {
      sample();
      send({
        type: 'stats',
        maxRssMb: process.resourceUsage().maxRSS / 1024,
        rssMb: process.memoryUsage.rss() / 1048576,
        sampledPeakRssMb: sampledPeak / 1048576,
        childRssMb: childRss() / 1048576,
        sampledPeakChildRssMb: sampledPeakChild / 1048576,
        sampledPeakTotalRssMb: sampledPeakTotal / 1048576,
        events,
        durable: cfg.recording === 'store' ? durable : events,
        cpuMicros: (() => {
          const u = process.cpuUsage();
          return u.user + u.system;
        })(),
      });
    } else if (m.type === 'reset-peak') {
      sampledPeak = 0;
      sampledPeakChild = 0;
      sampledPeakTotal = 0;
    } else if (m.type === 'stop') {
      void gateway
        .close()
        .then(() => closeRecorder()) // what the connections' closing recorded, before the store goes
        .then(() => store?.close())
        .finally(() => {
          if (dataDir) rmSync(dataDir, { recursive: true, force: true });
          process.exit(0);
        });
    }
  });
  send({ type: 'ready', port: gateway.port });
}

/** The floor relay (cfg.floor) in the gateway's place: its port and close, as the gateway has them. */
async function floorGateway(
  cfg: GatewayServerConfig,
  recordBackground: PgGatewayDeps['recordBackground'],
): Promise<{ port: number; close(): Promise<void> }> {
  if (!recordBackground) throw new Error('the floor relay needs a recording with recordBackground');
  const session = cfg.sessions[0]!.id;
  const server = await startFloorRelay(
    cfg.target.port ?? 5432,
    session,
    cfg.target.name,
    { recordBackground },
    cfg.floor === 'bare',
  );
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

process.once('message', (cfg: GatewayServerConfig) => {
  main(cfg).catch((err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  });
});
