// The PostgreSQL gateway's own work per statement, without sockets or a server: the relay is driven
// with pgbench -S's messages and canned server answers, through stand-in sockets, with bench:pg's
// grant (masks, detectors, deny rules) and a recorder whose store accepts everything at once. What
// it prints (CPU µs per transaction, simple and prepared) is what the broker adds on top of any relay's
// socket work, and, unlike bench:pg, it repeats within a few percent.
//
//   npm run bench:relay   (BENCH_TX=100000 BENCH_REPEAT=7; the best run counts: this VM's CPU time is
//   inflated by whatever else its host runs)
import { EventEmitter } from 'node:events';
import { serialize } from 'pg-protocol';
import { TranscriptRecorder } from '../service/audit/recorder.js';
import type {
  CatalogResolver,
  TargetViews,
  UserObjects,
} from '../service/gateways/postgres/catalog/resolver.js';
import { ClassificationCache } from '../service/gateways/postgres/classification-cache.js';
import { FrontendReader } from '../service/gateways/postgres/frontend-reader.js';
import { BufferBudget, DEFAULT_LIMITS } from '../service/gateways/postgres/limits.js';
import { Relay } from '../service/gateways/postgres/relay.js';
import { OperationFlow } from '../service/gateways/operation-flow.js';
import { createLogger } from '../service/log.js';
import { initSqlParser } from '../service/policy/sql/index.js';
import type { EventBatchResult, Store } from '../service/store/store.js';
import { benchGrant } from './pg-grant.js';

const TX = Number(process.env.BENCH_TX ?? 100_000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 7);
const TABLE_OID = 16_400;

const GRANT = benchGrant('bench');

/** Enough of a net.Socket for the relay: it records what is written. */
class FakeSocket extends EventEmitter {
  writableNeedDrain = false;
  destroyed = false;
  written = 0;
  write(b: Buffer): boolean {
    this.written += b.length;
    return true;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  end(): void {}
  destroy(): void {
    this.destroyed = true;
  }
}

function msg(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function rowDescription(): Buffer {
  const name = Buffer.from('abalance\0');
  const f = Buffer.alloc(18);
  f.writeInt32BE(TABLE_OID, 0);
  f.writeInt16BE(3, 4);
  f.writeInt32BE(23, 6); // int4
  f.writeInt16BE(4, 10);
  f.writeInt32BE(-1, 12);
  f.writeInt16BE(0, 16);
  const n = Buffer.alloc(2);
  n.writeInt16BE(1, 0);
  return msg('T', Buffer.concat([n, name, f]));
}

function dataRow(v: number): Buffer {
  const s = Buffer.from(String(v));
  const b = Buffer.alloc(6 + s.length);
  b.writeInt16BE(1, 0);
  b.writeInt32BE(s.length, 2);
  s.copy(b, 6);
  return msg('D', b);
}

const COMPLETE = msg('C', Buffer.from('SELECT 1\0'));
const READY = msg('Z', Buffer.from('I'));

const NO_USER_OBJECTS: UserObjects = {
  functions: new Set(),
  operators: new Set(),
  castTargets: new Set(),
  implicitCasts: [],
};

const NO_VIEWS: TargetViews = {
  views: [],
  traced: new Set(),
  notReadOnly: [],
  relations: new Set(['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history']),
  qualified: new Set(
    ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'].map(
      (t) => `public\u0000${t}`,
    ),
  ),
};

const catalog = {
  generation: 0,
  cached: (oid: number) =>
    oid === TABLE_OID
      ? {
          table: 'public.pgbench_accounts',
          columns: new Map([[3, { name: 'abalance', typeOid: 23, generated: false }]]),
          passesOn: false,
          loadedAt: Date.now(),
        }
      : null,
  knows: () => true,
  load: async () => {},
  invalidate: () => {},
  cachedFunction: () => undefined,
  loadFunction: async () => null,
  cachedUserObjects: () => NO_USER_OBJECTS,
  cachedViews: () => NO_VIEWS,
  loadViews: async () => NO_VIEWS,
  loadUserObjects: async () => NO_USER_OBJECTS,
  close: () => {},
} as unknown as CatalogResolver;

const store = {
  appendEventTexts: async (batches: { events: readonly string[] }[]): Promise<EventBatchResult[]> =>
    batches.map((b) => ({ ok: true, first_seq: 1, head: { seq: b.events.length, hash: '' } })),
  appendEventBatches: async () => [],
} as unknown as Store;

async function run(mode: 'simple' | 'prepared'): Promise<number> {
  const logger = createLogger('silent');
  const recorder = new TranscriptRecorder(store, logger);
  const client = new FakeSocket();
  const upstream = new FakeSocket();
  let recorded = 0;
  const relay = new Relay(
    {
      logger,
      grant: GRANT,
      targetName: 'bench',
      connId: 'pgc_0123456789ab',
      catalog,
      limits: DEFAULT_LIMITS,
      recordBeforeForward: false,
      flow: new OperationFlow({
        sessionId: 'ses_bench',
        target: 'bench',
        connId: 'pgc_0123456789ab',
        gateway: 'pg',
        sink: {
          record: async () => {},
          recordBackground: (ev, done) =>
            recorder.recordBackground('ses_bench', ev, (err, seq) => {
              if (err === null) recorded++;
              done(err, seq);
            }),
        },
        onRecordFailed: (err) => {
          throw err;
        },
      }),
      classifier: new ClassificationCache(),
      buffers: new BufferBudget(DEFAULT_LIMITS.maxUnfinishedBytesTotal),
      countLimit: () => {},
    },
    client as never,
    new FrontendReader(),
    upstream as never,
    () => {},
  );
  relay.start(Buffer.alloc(0));
  const rd = rowDescription();
  const parseComplete = msg('1', Buffer.alloc(0));
  const bindComplete = msg('2', Buffer.alloc(0));
  const text = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;';
  if (mode === 'prepared') {
    client.emit(
      'data',
      Buffer.concat([serialize.parse({ name: 'P0_1', text, types: [] }), serialize.sync()]),
    );
    upstream.emit('data', Buffer.concat([parseComplete, READY]));
  }
  // the messages, made beforehand (1000 different statements, cycled)
  const fromClient: Buffer[] = [];
  const fromServer: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    const aid = (i * 7919) % 100_000;
    if (mode === 'simple') {
      fromClient.push(serialize.query(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`));
      fromServer.push(Buffer.concat([rd, dataRow(i % 5000), COMPLETE, READY]));
    } else {
      fromClient.push(
        Buffer.concat([
          serialize.bind({ statement: 'P0_1', values: [String(aid)] }),
          serialize.describe({ type: 'P', name: '' }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      fromServer.push(Buffer.concat([bindComplete, rd, dataRow(i % 5000), COMPLETE, READY]));
    }
  }
  const oneTx = (i: number): void => {
    client.emit('data', fromClient[i % 1000]);
    upstream.emit('data', fromServer[i % 1000]);
  };
  // warm up, then measure; the recorder's windows pass now and then (a timer tick per 1000 tx)
  for (let i = 0; i < 20_000; i++) oneTx(i);
  await new Promise((r) => setTimeout(r, 60));
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < TX; i++) {
    oneTx(i);
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
  }
  await recorder.close();
  const cpu = process.cpuUsage(cpu0);
  relay.terminate(null, 'bench over');
  // it did the work: every statement went upstream, every answer to the client, every event recorded
  if (recorded !== TX + 20_000) throw new Error(`recorded ${recorded} events, expected ${TX + 20_000}`);
  if (upstream.written === 0 || client.written === 0) throw new Error('the relay forwarded nothing');
  return (cpu.user + cpu.system) / TX;
}

async function main(): Promise<void> {
  await initSqlParser();
  for (const mode of ['simple', 'prepared'] as const) {
    const runs: number[] = [];
    for (let i = 0; i < REPEAT; i++) runs.push(await run(mode));
    console.log(
      `${mode.padEnd(8)} relay logic ${Math.min(...runs).toFixed(2)} µs CPU/tx (best of ${REPEAT}: ${runs.map((r) => r.toFixed(2)).join(', ')}), recording included, no sockets`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
