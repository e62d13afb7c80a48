// PostgreSQL gateway benchmark: pgbench -S through (a) PostgreSQL directly, (b) pgbouncer, (c) the
// broker's gateway with a realistic read grant (column masks, content detectors, deny rules,
// recording on), simple and prepared protocol, 1 and 8 clients; then a 1,000,000-row masked result
// streamed through the broker to a deliberately slow reader, with the broker's peak RSS.
//
//   npm run bench:pg   (BENCH_SECONDS=10 BENCH_REPEAT=3 BENCH_RECORDING=store|memory|worker|none|null-store BENCH_PASSTHROUGH=0|onread
//                       BENCH_ONLY=prepared:8 BENCH_RATE=5000)
//   recording defaults to `store`: the real durable embedded store in its own process, as the broker runs.
//   BENCH_FLOOR=0: skip the relay+recording floor (bench/pg-floor-relay.ts); BENCH_FLOOR_COMPARE=null-store,none,bare:
//   the floor under those recordings too, in the same run (bare: the floor's process copying bytes only)
//   BENCH_PG_RECORDING=background|before_forward|both: the target's `recording` mode (default background);
//   `both` runs one gateway process per mode, alternating in each repeat, and prints their ratio.
//   BENCH_BASELINE=/path/to/other/checkout: that checkout's gateway runs beside this one's, alternating in
//   each repeat (a before/after in one run); BENCH_COMPARE_RECORDING=null-store (any BENCH_RECORDING
//   value): a second gateway of this checkout with that recording, likewise.
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { newSessionId, newSessionSecret } from '../service/sessions/secret.js';
import { generateCa, issueServerCert } from '../service/tls/ca.js';
import { freePort, type PgServer, startPostgres } from '../test/fixtures/postgres.js';
import { type GatewayChild, startGatewayChild, streamRows } from './pg-gateway-child.js';
import type { GatewayServerConfig } from './pg-gateway-server.js';
import { benchGrant } from './pg-grant.js';

const run = promisify(execFile);
const _here = dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const RECORDING = (process.env.BENCH_RECORDING ?? 'store') as GatewayServerConfig['recording'];
const PG_RECORDING = process.env.BENCH_PG_RECORDING ?? 'background';
if (!['background', 'before_forward', 'both'].includes(PG_RECORDING))
  throw new Error('BENCH_PG_RECORDING must be background, before_forward or both');
const MODES = (PG_RECORDING === 'both' ? ['background', 'before_forward'] : [PG_RECORDING]) as Array<
  'background' | 'before_forward'
>;
const STREAM_ROWS = Number(process.env.BENCH_STREAM_ROWS ?? 1_000_000);
const PGBOUNCER = '/usr/sbin/pgbouncer';
const DB = 'bench';
const ROLE = 'bench_user';
const PASSWORD = `bench-${Math.random().toString(36).slice(2)}`;

const GRANT = benchGrant(DB);

interface Result {
  tps: number;
  latencyMs: number;
  transactions: number;
  /** proxies: the proxy process' CPU time (user+system) per transaction */
  cpuMicrosPerTx?: number;
  /** proxies: the kernel part of that */
  sysMicrosPerTx?: number;
  /** proxies: the proxy process' context switches per transaction */
  switchesPerTx?: number;
  /** the broker: the part of cpuMicrosPerTx spent in its child processes (the embedded store) */
  childMicrosPerTx?: number;
  /** the broker: ms after pgbench ended until every transcript event was durable (counted in tps) */
  lagMs?: number;
  /**
   * the machine's CPUs entering a real idle state (not the polling one) per transaction, all processes:
   * in a VM each is a halt the hypervisor must wake, the cost that dominates one client's latency here
   */
  haltsPerTx?: number;
}

/** Entries into idle states other than POLL, summed over the CPUs (Linux cpuidle; null without it). */
function idleEntries(): number | null {
  let total = 0;
  let seen = false;
  try {
    for (const cpu of readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d))) {
      const dir = `/sys/devices/system/cpu/${cpu}/cpuidle`;
      if (!existsSync(dir)) continue;
      for (const st of readdirSync(dir).filter((d) => d.startsWith('state'))) {
        if (readFileSync(`${dir}/${st}/name`, 'utf8').trim() === 'POLL') continue;
        total += Number(readFileSync(`${dir}/${st}/usage`, 'utf8'));
        seen = true;
      }
    }
  } catch {
    return null;
  }
  return seen ? total : null;
}

async function pgbench(
  port: number,
  env: Record<string, string>,
  mode: string,
  clients: number,
): Promise<Result> {
  const args = [
    '-S',
    '-n',
    '-T',
    String(SECONDS),
    '-c',
    String(clients),
    '-j',
    String(Math.min(clients, 2)),
    '-M',
    mode,
    // a fixed rate (BENCH_RATE tps): CPU per transaction without saturation, for A/B comparisons
    ...(process.env.BENCH_RATE ? ['-R', process.env.BENCH_RATE] : []),
  ];
  const idleBefore = idleEntries();
  const { stdout } = await run('pgbench', [...args, '-h', '127.0.0.1', '-p', String(port)], {
    env: { PATH: process.env.PATH ?? '', PGSSLMODE: 'disable', ...env },
  });
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
  if (!Number.isFinite(tps)) throw new Error(`could not read pgbench output:\n${stdout}`);
  const idleAfter = idleEntries();
  return {
    tps,
    latencyMs,
    transactions,
    ...(idleBefore !== null && idleAfter !== null && transactions > 0
      ? { haltsPerTx: Number(((idleAfter - idleBefore) / transactions).toFixed(2)) }
      : {}),
  };
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startPgbouncer(
  pg: PgServer,
): Promise<{ port: number; pid(): number | undefined; stop(): void } | null> {
  if (!existsSync(PGBOUNCER)) return null;
  const dir = mkdtempSync(join(tmpdir(), 'hoop-pgbouncer-'));
  const port = await freePort();
  writeFileSync(join(dir, 'users.txt'), `"${ROLE}" "${PASSWORD}"\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${DB} = host=127.0.0.1 port=${pg.port} dbname=${DB}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${join(dir, 'users.txt')}`,
      'pool_mode = session',
      'max_client_conn = 100',
      'default_pool_size = 20',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    for (const f of ['', 'users.txt', 'pgbouncer.ini']) chownSync(join(dir, f), uid, gid);
  }
  const child = asRoot
    ? spawn('runuser', ['-u', 'postgres', '--', PGBOUNCER, '-q', join(dir, 'pgbouncer.ini')], {
        stdio: 'ignore',
      })
    : spawn(PGBOUNCER, ['-q', join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  await waitForPort(port);
  return {
    port,
    // runuser forks pgbouncer: measure the child, not runuser
    pid: () => {
      const out = execFileSync('pgrep', ['-f', `^${PGBOUNCER} -q ${join(dir, 'pgbouncer.ini')}`], {
        encoding: 'utf8',
      }).trim();
      return Number(out.split('\n')[0]) || child.pid;
    },
    stop: () => {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Node.js TCP relay that does nothing but copy bytes (on by default; BENCH_PASSTHROUGH=0 skips it): the floor for any proxy
 * written in Node on this machine, to tell the broker's own costs from the runtime's.
 */
async function startPassthrough(
  targetPort: number,
): Promise<{ port: number; pid: number | undefined; stop(): void }> {
  const port = await freePort();
  const code =
    process.env.BENCH_PASSTHROUGH === 'onread'
      ? onreadRelayCode(targetPort, port)
      : `
    const net = require('node:net');
    net.createServer({ noDelay: true }, (c) => {
      const u = net.connect({ host: '127.0.0.1', port: ${targetPort}, noDelay: true });
      c.on('data', (d) => { if (!u.write(d)) c.pause(); }); u.on('drain', () => c.resume());
      u.on('data', (d) => { if (!c.write(d)) u.pause(); }); c.on('drain', () => u.resume());
      c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
      c.on('error', () => {}); u.on('error', () => {});
    }).listen(${port}, '127.0.0.1');`;
  const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  await waitForPort(port);
  return { port, pid: child.pid, stop: () => child.kill() };
}

/**
 * The same relay on Node's `onread` sockets (BENCH_PASSTHROUGH=onread): each side reads into one reused
 * buffer and hands it to a callback, without the Readable stream (no 64 KiB allocation per read, no
 * 'data' event, no nextTick); each chunk is copied before it is written, as the buffer is reused. It
 * tells whether Node's stream layer is what separates a Node proxy from pgbouncer (it was not: 0.92x
 * vs 0.91x pgbouncer at c=1, 0.83-0.86x vs 0.85-0.86x at c=8, 2026-12-07).
 */
function onreadRelayCode(targetPort: number, port: number): string {
  return `
    const net = require('node:net');
    function pump(from, to, n, buf) {
      if (!to.write(Buffer.from(buf.subarray(0, n)))) { from.pause(); to.once('drain', () => from.resume()); }
    }
    net.createServer({ noDelay: true, pauseOnConnect: true }, (c0) => {
      const h = c0._handle; c0._handle = null;
      let u;
      const c = new net.Socket({ handle: h, readable: true, writable: true,
        onread: { buffer: Buffer.allocUnsafe(65536), callback: (n, b) => pump(c, u, n, b) } });
      u = net.connect({ host: '127.0.0.1', port: ${targetPort}, noDelay: true,
        onread: { buffer: Buffer.allocUnsafe(65536), callback: (n, b) => pump(u, c, n, b) } });
      c.setNoDelay(true);
      c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
      c.on('error', () => {}); u.on('error', () => {});
      u.on('connect', () => c.resume());
    }).listen(${port}, '127.0.0.1');`;
}

/** The process and its children (the broker's embedded store runs in a child process of its own). */
function withChildren(pid: number): number[] {
  try {
    const out = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim();
    return [pid, ...out.split('\n').filter(Boolean).map(Number)];
  } catch {
    return [pid]; // pgrep exits 1 when there are none
  }
}

/** CPU time (user+system, µs) and context switches of a process and its children, from /proc (Linux). */
function procStats(
  pid: number | undefined,
): { cpuMicros: number; sysMicros: number; switches: number; childMicros: number } | null {
  if (!pid || !existsSync(`/proc/${pid}/stat`)) return null;
  const all = withChildren(pid).map(oneProcStats);
  if (all.some((x) => x === null)) return null;
  const sum = all.reduce((a, b) => ({
    cpuMicros: a!.cpuMicros + b!.cpuMicros,
    sysMicros: a!.sysMicros + b!.sysMicros,
    switches: a!.switches + b!.switches,
  }))!;
  return { ...sum, childMicros: sum.cpuMicros - all[0]!.cpuMicros };
}

function oneProcStats(pid: number): { cpuMicros: number; sysMicros: number; switches: number } | null {
  if (!existsSync(`/proc/${pid}/stat`)) return null;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const vol = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const invol = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return {
    cpuMicros: (ticks * 1e6) / 100,
    sysMicros: (Number(fields[12]) * 1e6) / 100,
    switches: vol + invol,
  };
}

async function measured(pid: number | undefined, fn: () => Promise<Result>): Promise<Result> {
  const before = procStats(pid);
  const r = await fn();
  const after = procStats(pid);
  if (!before || !after) return r;
  return {
    ...r,
    cpuMicrosPerTx: Math.round((after.cpuMicros - before.cpuMicros) / r.transactions),
    sysMicrosPerTx: Math.round((after.sysMicros - before.sysMicros) / r.transactions),
    switchesPerTx: Number(((after.switches - before.switches) / r.transactions).toFixed(2)),
    ...(after.childMicros > 0
      ? { childMicrosPerTx: Math.round((after.childMicros - before.childMicros) / r.transactions) }
      : {}),
  };
}

const fmt = (r: Result | undefined): string =>
  r
    ? `${r.tps.toFixed(0).padStart(7)} tps ${r.latencyMs.toFixed(3).padStart(6)} ms` +
      (r.haltsPerTx !== undefined ? ` ${r.haltsPerTx} halts/tx` : '') +
      (r.cpuMicrosPerTx !== undefined
        ? ` [${r.cpuMicrosPerTx} µs CPU (${r.sysMicrosPerTx} sys` +
          `${r.childMicrosPerTx !== undefined ? `, store process ${r.childMicrosPerTx}` : ''}), ${r.switchesPerTx} cs /tx` +
          `${r.lagMs !== undefined ? `, recording done +${r.lagMs} ms` : ''}]`
        : '')
    : '      n/a           ';
/** Wait until every transcript event of the broker is durable; how long that took (ms). */
async function recordingCaughtUp(gw: GatewayChild): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const s = await gw.stats();
    if (s.durable >= s.events) return Math.round(performance.now() - t0);
    if (performance.now() - t0 > 120_000) throw new Error('the broker did not finish recording within 120 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * One pgbench run through a floor relay, over once its events are durable. `records`: it must have made
 * an event per transaction at least (pgbench -S: one statement each), or its figure would be a relay's.
 */
async function floorRun(
  gw: GatewayChild,
  records: boolean,
  env: Record<string, string>,
  mode: string,
  clients: number,
): Promise<Result> {
  const before = (await gw.stats()).events;
  return measured(gw.child.pid, async () => {
    const r = await pgbench(gw.port, env, mode, clients);
    const lagMs = await recordingCaughtUp(gw);
    const events = (await gw.stats()).events - before;
    if (records && events < r.transactions)
      throw new Error(`the floor relay made ${events} events for ${r.transactions} transactions`);
    return { ...r, lagMs, tps: (r.tps * SECONDS * 1000) / (SECONDS * 1000 + lagMs) };
  });
}

/** The load average now (the machine is shared: say how busy it was). */
const load = (): string =>
  `load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`;

/** Best of the repeats: this machine is shared, and interference only ever slows a run down. */
const best = (xs: Result[]): Result => [...xs].sort((a, b) => b.tps - a.tps)[0]!;

async function main(): Promise<void> {
  console.log(
    `PostgreSQL gateway benchmark: pgbench -S, ${SECONDS}s per run, recording=${RECORDING}, target recording=${MODES.join(' vs ')}, repeat=${REPEAT}; ${load()}`,
  );
  const pg = await startPostgres({ settings: { shared_buffers: '128MB' } });
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>> = null;
  const gateways: Array<{
    mode: 'background' | 'before_forward';
    gw: GatewayChild;
    /** a gateway measured beside the main one (BENCH_BASELINE, BENCH_COMPARE_RECORDING) */
    extra?: string;
  }> = [];
  try {
    await pg.psql(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'`);
    await pg.psql(`CREATE DATABASE ${DB} OWNER ${ROLE}`);
    const directEnv = { PGUSER: ROLE, PGPASSWORD: PASSWORD, PGDATABASE: DB };
    await run('pgbench', ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(pg.port)], {
      env: { ...process.env, ...directEnv },
    });
    await pg.psql(
      `SET ROLE ${ROLE}; CREATE TABLE people AS SELECT g AS id, 'user' || g || '@example.com' AS email,
         'card 4111 1111 1111 1111 on file' AS note FROM generate_series(1, ${STREAM_ROWS}) g; ANALYZE people;`,
      DB,
    );
    bouncer = await startPgbouncer(pg);
    if (!bouncer) console.log('pgbouncer not installed: skipping its column');

    const ca = await generateCa('bench CA', new Date());
    const cert = await issueServerCert(ca, ['localhost', '127.0.0.1'], new Date());
    const sessionId = newSessionId();
    const secret = newSessionSecret();
    const startFor = (
      recording: 'background' | 'before_forward',
      storeMode: GatewayServerConfig['recording'] = RECORDING,
      root?: string,
      floor: boolean | 'bare' = false,
    ) =>
      startGatewayChild(
        {
          target: {
            name: DB,
            kind: 'postgres',
            host: '127.0.0.1',
            port: pg.port,
            database: DB,
            user: ROLE,
            password: { env: 'UNUSED' },
            recording,
          },
          password: PASSWORD,
          tls: { certPem: cert.certPem, keyPem: cert.keyPem },
          sessions: [{ id: sessionId, secret, grant: GRANT }],
          recording: storeMode,
          ...(floor ? { floor } : {}),
        },
        root,
      );
    for (const m of MODES) gateways.push({ mode: m, gw: await startFor(m) });
    if (process.env.BENCH_BASELINE)
      gateways.push({
        mode: MODES[0]!,
        gw: await startFor(MODES[0]!, RECORDING, process.env.BENCH_BASELINE),
        extra: `baseline ${process.env.BENCH_BASELINE}`,
      });
    if (process.env.BENCH_COMPARE_RECORDING)
      gateways.push({
        mode: MODES[0]!,
        gw: await startFor(
          MODES[0]!,
          process.env.BENCH_COMPARE_RECORDING as GatewayServerConfig['recording'],
        ),
        extra: `recording=${process.env.BENCH_COMPARE_RECORDING}`,
      });
    const gateway = gateways[0]!.gw;

    const brokerEnv = { PGUSER: sessionId, PGPASSWORD: secret, PGDATABASE: DB };

    const passthrough = process.env.BENCH_PASSTHROUGH === '0' ? null : await startPassthrough(pg.port);
    // the bare relay plus per-statement recording (bench/pg-floor-relay.ts; BENCH_FLOOR=0 skips it)
    const floorGw =
      process.env.BENCH_FLOOR === '0' ? null : await startFor(MODES[0]!, RECORDING, undefined, true);
    // BENCH_FLOOR_COMPARE=null-store,none: the floor under other recordings too, in the same run (what
    // the store process, and the recorder itself, add to it)
    const floorCompare: Array<{ label: string; gw: GatewayChild }> = [];
    for (const rec of (process.env.BENCH_FLOOR_COMPARE ?? '').split(',').filter(Boolean))
      floorCompare.push({
        label: rec === 'bare' ? 'bytes only (this process)' : `recording=${rec}`,
        gw: await startFor(
          MODES[0]!,
          rec === 'bare' ? 'none' : (rec as GatewayServerConfig['recording']),
          undefined,
          rec === 'bare' ? 'bare' : true,
        ),
      });
    const rows: Array<{
      mode: string;
      clients: number;
      direct: Result;
      bouncer?: Result;
      broker: Result;
      /** BENCH_PG_RECORDING=both: the before_forward gateway, measured beside the default */
      beforeForward?: Result;
      passthrough?: Result;
      floor?: Result;
    }> = [];
    const only = process.env.BENCH_ONLY; // e.g. "prepared:1"
    for (const mode of ['simple', 'prepared']) {
      for (const clients of [1, 8]) {
        if (only && only !== `${mode}:${clients}`) continue;
        const d: Result[] = [];
        const b: Result[] = [];
        const g: Result[] = [];
        const p: Result[] = [];
        const f: Result[] = [];
        const fl: Result[] = [];
        const flx = new Map<string, Result[]>();
        const x = new Map<string, Result[]>();
        for (let i = 0; i < REPEAT; i++) {
          d.push(await pgbench(pg.port, directEnv, mode, clients));
          if (bouncer)
            b.push(await measured(bouncer.pid(), () => pgbench(bouncer!.port, directEnv, mode, clients)));
          if (passthrough)
            p.push(
              await measured(passthrough.pid, () => pgbench(passthrough.port, directEnv, mode, clients)),
            );
          if (floorGw) fl.push(await floorRun(floorGw, true, directEnv, mode, clients));
          for (const { label, gw } of floorCompare)
            flx.set(label, [
              ...(flx.get(label) ?? []),
              await floorRun(gw, !label.startsWith('bytes'), directEnv, mode, clients),
            ]);
          for (const { mode: recording, gw, extra } of gateways) {
            // A run is over when its transcript is durable: the time (and CPU) the store needs to catch
            // up counts, and the next run (direct, pgbouncer) must not share the machine with it.
            const r = await measured(gw.child.pid, async () => {
              const r = await pgbench(gw.port, brokerEnv, mode, clients);
              const lagMs = await recordingCaughtUp(gw);
              return { ...r, lagMs, tps: (r.tps * SECONDS * 1000) / (SECONDS * 1000 + lagMs) };
            });
            if (extra) x.set(extra, [...(x.get(extra) ?? []), r]);
            else (recording === 'before_forward' && MODES.length > 1 ? f : g).push(r);
          }
        }
        const row = {
          mode,
          clients,
          direct: best(d),
          broker: best(g),
          ...(f.length > 0 ? { beforeForward: best(f) } : {}),
          ...(bouncer ? { bouncer: best(b) } : {}),
          ...(passthrough ? { passthrough: best(p) } : {}),
          ...(floorGw ? { floor: best(fl) } : {}),
        };
        rows.push(row);
        const ratio = row.bouncer ? (row.broker.tps / row.bouncer.tps).toFixed(2) : 'n/a';
        // the bare relay's own ratio: what any Node.js proxy reaches on this machine, in the same run
        const floor =
          row.bouncer && row.passthrough ? (row.passthrough.tps / row.bouncer.tps).toFixed(2) : null;
        console.log(
          `${mode.padEnd(9)} c=${String(clients).padEnd(2)} direct ${fmt(row.direct)} | pgbouncer ${fmt(row.bouncer)} | ` +
            `${row.passthrough ? `node relay ${fmt(row.passthrough)} | ` : ''}` +
            `${row.floor ? `relay+recording ${fmt(row.floor)} | ` : ''}broker ${fmt(row.broker)} | broker/pgbouncer ${ratio}` +
            `${floor ? ` (node relay/pgbouncer ${floor})` : ''}` +
            `${row.floor && row.bouncer ? ` (relay+recording/pgbouncer ${(row.floor.tps / row.bouncer.tps).toFixed(2)})` : ''}`,
        );
        if (row.beforeForward)
          console.log(
            `${''.padEnd(14)} before_forward ${fmt(row.beforeForward)} | before_forward/background tps ${(row.beforeForward.tps / row.broker.tps).toFixed(2)}` +
              (row.beforeForward.cpuMicrosPerTx !== undefined && row.broker.cpuMicrosPerTx
                ? `, CPU/tx ${(row.beforeForward.cpuMicrosPerTx / row.broker.cpuMicrosPerTx).toFixed(2)}`
                : ''),
          );
        for (const [label, rs] of flx) {
          const r = best(rs);
          console.log(
            `${''.padEnd(14)} relay+recording, ${label}: ${fmt(r)}` +
              (row.bouncer ? ` | this/pgbouncer ${(r.tps / row.bouncer.tps).toFixed(2)}` : ''),
          );
        }
        for (const [label, rs] of x) {
          const r = best(rs);
          console.log(
            `${''.padEnd(14)} ${label}: ${fmt(r)} | broker/this tps ${(row.broker.tps / r.tps).toFixed(2)}` +
              (r.cpuMicrosPerTx && row.broker.cpuMicrosPerTx !== undefined
                ? `, broker/this CPU/tx ${(row.broker.cpuMicrosPerTx / r.cpuMicrosPerTx).toFixed(2)}`
                : ''),
          );
        }
      }
    }

    passthrough?.stop();
    await floorGw?.stop();
    for (const { gw } of floorCompare) await gw.stop();
    // the summary: throughput ratios and CPU per transaction side by side (broker: its own process
    // plus the embedded store's, which is in the figure and also given apart)
    const cpu = (r: Result | undefined): string =>
      r?.cpuMicrosPerTx === undefined
        ? 'n/a'
        : `${r.cpuMicrosPerTx}${r.childMicrosPerTx !== undefined ? ` (store ${r.childMicrosPerTx})` : ''}`;
    const ratio = (a: Result | undefined, b: Result | undefined): string =>
      a && b ? (a.tps / b.tps).toFixed(2) : 'n/a';
    console.log(
      `\n${load()}\n| mode | broker/pgbouncer | node relay/pgbouncer | relay+recording/pgbouncer | CPU µs/tx pgbouncer | node relay | relay+recording (store process) | broker (store process) |\n|---|---|---|---|---|---|---|---|`,
    );
    for (const r of rows)
      console.log(
        `| ${r.mode} c=${r.clients} | ${ratio(r.broker, r.bouncer)} | ${ratio(r.passthrough, r.bouncer)} | ${ratio(r.floor, r.bouncer)} | ` +
          `${cpu(r.bouncer)} | ${cpu(r.passthrough)} | ${cpu(r.floor)} | ${cpu(r.broker)} |`,
      );
    if (process.env.BENCH_STREAM === '0') return;
    const before = await gateway.stats();
    gateway.resetPeak();
    const stream = await streamRows({
      port: gateway.port,
      database: DB,
      sessionId,
      secret,
      sql: 'SELECT id, email, note FROM people',
    });
    const after = await gateway.stats();
    console.log(
      `stream: ${stream.rows} masked rows in ${stream.seconds.toFixed(1)} s (${Math.round(stream.rows / stream.seconds)} rows/s), ` +
        `masking ${stream.maskedOk ? 'verified' : 'FAILED'}; broker RSS before ${before.rssMb.toFixed(0)} MB, ` +
        `peak during stream ${after.sampledPeakRssMb.toFixed(0)} MB, process max RSS ${after.maxRssMb.toFixed(0)} MB; ` +
        `store process RSS before ${before.childRssMb.toFixed(0)} MB, peak ${after.sampledPeakChildRssMb.toFixed(0)} MB ` +
        `(broker + store peak ${after.sampledPeakTotalRssMb.toFixed(0)} MB); ` +
        `${after.events} transcript events recorded`,
    );
    const summary = {
      seconds: SECONDS,
      recording: RECORDING,
      target_recording: MODES,
      results: rows.map((r) => ({
        mode: r.mode,
        clients: r.clients,
        direct: r.direct,
        pgbouncer: r.bouncer ?? null,
        broker: r.broker,
        before_forward: r.beforeForward ?? null,
        before_forward_over_background: r.beforeForward
          ? Number((r.beforeForward.tps / r.broker.tps).toFixed(3))
          : null,
        broker_over_pgbouncer: r.bouncer ? Number((r.broker.tps / r.bouncer.tps).toFixed(3)) : null,
        node_relay: r.passthrough ?? null,
        node_relay_over_pgbouncer:
          r.bouncer && r.passthrough ? Number((r.passthrough.tps / r.bouncer.tps).toFixed(3)) : null,
      })),
      stream: {
        rows: stream.rows,
        seconds: stream.seconds,
        masked: stream.maskedOk,
        peak_rss_mb: after.sampledPeakRssMb,
        max_rss_mb: after.maxRssMb,
        store_process_peak_rss_mb: after.sampledPeakChildRssMb,
        total_peak_rss_mb: after.sampledPeakTotalRssMb,
      },
    };
    console.log(JSON.stringify(summary));
  } finally {
    for (const { gw } of gateways) await gw.stop();
    bouncer?.stop();
    await pg.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
