// SSH gateway benchmark: the real broker (in this process) in front of a real sshd, against the same
// sshd directly, with the real OpenSSH clients and the ssh config the action writes.
//   - exec round trip: `ssh host true`, a new connection each time (what a CI step does), and over one
//     multiplexed connection (ControlMaster: the command alone); added latency p50/p99
//   - scp of BENCH_SSH_MB (default 256) MB up and down (SFTP mode, and legacy -O): throughput through
//     the broker / direct (target >= 0.8), the broker's RSS during the copies and its CPU per MB.
//     Three references, side by side in the same run: direct with OpenSSH's default algorithms
//     (chacha20-poly1305, a post-quantum kex), direct with the algorithms the broker's legs use
//     (curve25519, aes128-gcm: the fair comparison, "ratio"), and a bare ssh2 relay without any policy
//     (bench/ssh-bare-relay.ts: the floor a two-leg ssh2 relay reaches on this machine, "of bare")
//
//   - per copy, CPU ms per MB: the OpenSSH client side (scp + ssh), the relay's process (the broker is
//     this process; the bare relay its child) and the whole machine (/proc/stat: the sshd side and the
//     kernel's loopback TCP are in it). On a quiet machine the whole-machine figure is the copy's cost.
//
//   npm run bench:ssh   (BENCH_SSH_MB=256 BENCH_SSH_EXECS=40; BENCH_SSH_COPIES_ONLY=1 skips the exec
//   latencies and the default-algorithms copies; BENCH_SSH_COUNT=1 adds per-leg counts per MB from
//   bench/ssh-counters.ts)
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runProcess, type SshHarness, startSshHarness } from '../test/gateways/ssh/harness.js';
import { fileURLToPath } from 'node:url';

/** The bare relay in a child process of its own (see bench/ssh-bare-relay.ts for why). */
async function spawnBareRelay(
  upstream: Record<string, unknown>,
): Promise<{ port: number; pid: number; counters(): Promise<Counters>; close(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      ...(COUNT ? ['--import', fileURLToPath(new URL('./ssh-counters.ts', import.meta.url))] : []),
      fileURLToPath(new URL('./ssh-bare-relay.ts', import.meta.url)),
    ],
    {
      env: { ...process.env, BARE_RELAY_UPSTREAM: JSON.stringify(upstream) },
      stdio: ['ignore', 'pipe', COUNT ? 'pipe' : 'inherit'],
    },
  );
  const snapshots: Counters[] = [];
  const waiting: ((c: Counters) => void)[] = [];
  if (COUNT) {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      let nl: number;
      while ((nl = err.indexOf('\n')) >= 0) {
        const line = err.slice(0, nl);
        err = err.slice(nl + 1);
        if (line.startsWith('#counters ')) {
          const c = JSON.parse(line.slice(10)) as Counters;
          const w = waiting.shift();
          if (w) w(c);
          else snapshots.push(c);
        } else process.stderr.write(`${line}\n`);
      }
    });
  }
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(Number(line));
    });
    child.once('exit', (code) => reject(new Error(`bare relay exited (${code}) before listening`)));
  });
  return {
    port,
    pid: child.pid ?? -1,
    counters: () =>
      new Promise<Counters>((resolve) => {
        waiting.push(resolve);
        child.kill('SIGUSR2');
      }),
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const MB = Number(process.env.BENCH_SSH_MB ?? 256);
/** BENCH_SSH_COUNT=1: per-leg ssh2/socket counters per MB (bench/ssh-counters.ts, loaded with --import) */
const COUNT = process.env.BENCH_SSH_COUNT === '1';
/** BENCH_SSH_COPIES_ONLY=1: skip the exec latencies and the default-algorithms direct copies */
const COPIES_ONLY = process.env.BENCH_SSH_COPIES_ONLY === '1';
type Counters = { client: Record<string, number>; upstream: Record<string, number>; cpuMs: number };
interface CounterApi {
  snapshot(): Counters;
  delta(a: Counters, b: Counters): Counters;
}
const counterApi = (): CounterApi | undefined => (globalThis as { __sshCounters?: CounterApi }).__sshCounters;

/** The per-MB figures of a counters delta, one line per leg. */
function perMb(label: string, d: Counters): string {
  const line = (leg: 'client' | 'upstream') => {
    const c = d[leg];
    const n = (k: string) => (c[k] ?? 0) / MB;
    const avg = (b: string, k: string) => ((c[k] ?? 0) > 0 ? (c[b] ?? 0) / (c[k] ?? 1) : 0);
    return `${leg.padEnd(8)} per MB: chan writes ${fmt(n('chanWrites'))} (avg ${fmt(avg('chanWriteBytes', 'chanWrites'), 0)} B), data pkts out ${fmt(n('dataPackets'))} (avg ${fmt(avg('dataBytes', 'dataPackets'), 0)} B), pushes in ${fmt(n('pushes'))} (avg ${fmt(avg('pushBytes', 'pushes'), 0)} B), sock writes ${fmt(n('sockWrites'))}, handle write ${fmt(n('handleWrites'))} writev ${fmt(n('handleWritev'))}, win adj ${fmt(n('windowAdjusts'))}, pause ${fmt(n('pauses'))} resume ${fmt(n('resumes'))}`;
  };
  return `  [${label}] cpu ${fmt(d.cpuMs / MB, 2)} ms/MB\n    ${line('client')}\n    ${line('upstream')}`;
}
const EXECS = Number(process.env.BENCH_SSH_EXECS ?? 40);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function timed(fn: () => Promise<{ code: number | null; stderr: string }>): Promise<number> {
  const t0 = performance.now();
  const r = await fn();
  if (r.code !== 0) throw new Error(`failed (${r.code}): ${r.stderr}`);
  return performance.now() - t0;
}

async function latencies(
  n: number,
  fn: () => Promise<{ code: number | null; stderr: string }>,
): Promise<number[]> {
  await fn(); // warm up
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await timed(fn));
  return out.sort((a, b) => a - b);
}

/** Sample this process' RSS while `fn` runs. */
async function withRss<T>(fn: () => Promise<T>): Promise<{ value: T; peakMb: number; cpuMs: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const cpu0 = process.cpuUsage();
  try {
    const value = await fn();
    const cpu = process.cpuUsage(cpu0);
    return { value, peakMb: peak / 2 ** 20, cpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    clearInterval(timer);
  }
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
/** the algorithms of the broker's two legs, for the like-for-like direct runs */
const matched = ['-o', 'Ciphers=aes128-gcm@openssh.com', '-o', 'KexAlgorithms=curve25519-sha256'];

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);
/**
 * CPU ms a process used (/proc/<pid>/stat utime+stime), and with `reaped` what its waited-for children
 * used too (cutime+cstime): for the bench's own process that is the scp and ssh clients of each copy
 * once they exited, for the sshd listener its connection processes and their sftp-server/scp.
 */
function procCpuMs(pid: number, reaped: boolean): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14-17 of stat(5) are at 11-14 here (after pid, comm)
  const n = (i: number) => Number(f[i]);
  return ((reaped ? n(11) + n(12) + n(13) + n(14) : n(11) + n(12)) * TICK_MS) as number;
}

/** CPU ms the whole machine spent busy (/proc/stat: every state but idle and iowait, all cores). */
function machineBusyMs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return (user + nice + system + irq + softirq + steal) * TICK_MS;
}

/**
 * CPU per MB of a copy: the OpenSSH client side (scp and its ssh, reaped by this process), the relay
 * (if any), and the whole machine (every process and the kernel's loopback TCP: on a quiet machine,
 * all of it is the copy's; what is neither client nor relay is mostly the sshd side and the kernel).
 */
async function cpuOf(
  fn: () => Promise<number>,
  relay?: () => number,
): Promise<{ ms: number; client: number; relay: number; machine: number }> {
  const self = () => procCpuMs(process.pid, true) - procCpuMs(process.pid, false);
  const c0 = self();
  const m0 = machineBusyMs();
  const r0 = relay?.() ?? 0;
  const ms = await fn();
  return {
    ms,
    client: (self() - c0) / MB,
    relay: ((relay?.() ?? 0) - r0) / MB,
    machine: (machineBusyMs() - m0) / MB,
  };
}
const cpuLine = (c: { client: number; relay: number; machine: number }) =>
  `${fmt(c.client, 2)} / ${fmt(c.relay, 2)} / ${fmt(c.machine, 2)}`;

async function main(): Promise<void> {
  if (COUNT) await import('./ssh-counters.js');
  const h: SshHarness = await startSshHarness({
    grants: (sshd) => ({
      push: {
        access: 'write',
        ssh: {
          commands: { allow: ['true'] },
          sftp: { read: [`${sshd.home}/**`], write: [`${sshd.home}/**`] },
        },
      },
    }),
  });
  try {
    const job = await h.open('push');
    const env = { PATH: process.env.PATH };
    const direct = (args: string[]) =>
      runProcess('ssh', [...h.sshd.directArgs(), ...args], env, job.dir, undefined, 120_000);
    const viaBroker = (args: string[]) => job.ssh(args, { timeoutMs: 120_000 });

    console.log(
      `# ssh gateway benchmark (${MB} MB copies, ${EXECS} execs each), load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    if (!COPIES_ONLY) {
      // exec, new connection each time
      // direct with the broker legs' algorithms: OpenSSH's default post-quantum key exchange alone
      // made a direct new connection ~150 ms slower than one through the broker
      const dNew = await latencies(EXECS, () => direct([...matched, '127.0.0.1', 'true']));
      const bNew = await latencies(EXECS, () => viaBroker(['build-host', 'true']));
      // exec over one multiplexed connection: a master started on its own (-M -N -f), then mux clients
      const ctlDirect = join(job.dir, 'ctl-direct');
      const ctlBroker = join(job.dir, 'ctl-broker');
      const master = (base: string[], ctl: string, host: string) =>
        new Promise<void>((resolve, reject) => {
          const p = spawn('ssh', [...base, '-M', '-N', '-f', '-o', `ControlPath=${ctl}`, host], {
            stdio: 'ignore',
            env: { ...env, HOME: job.dir },
          });
          p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ssh master: ${code}`))));
        });
      await master(h.sshd.directArgs(), ctlDirect, '127.0.0.1');
      await master(['-F', job.configFile], ctlBroker, 'build-host');
      const mux = (ctl: string) => ['-o', 'ControlMaster=no', '-o', `ControlPath=${ctl}`];
      const dMux = await latencies(EXECS, () => direct([...mux(ctlDirect), '127.0.0.1', 'true']));
      const bMux = await latencies(EXECS, () => viaBroker([...mux(ctlBroker), 'build-host', 'true']));
      await direct([...mux(ctlDirect), '-O', 'exit', '127.0.0.1']);
      await viaBroker([...mux(ctlBroker), '-O', 'exit', 'build-host']);
      const row = (name: string, d: number[], b: number[]) =>
        console.log(
          `${name.padEnd(34)} direct p50 ${fmt(quantile(d, 0.5))} ms p99 ${fmt(quantile(d, 0.99))} ms | broker p50 ${fmt(quantile(b, 0.5))} ms p99 ${fmt(quantile(b, 0.99))} ms | added p50 ${fmt(quantile(b, 0.5) - quantile(d, 0.5))} ms p99 ${fmt(quantile(b, 0.99) - quantile(d, 0.99))} ms`,
        );
      row('exec, new connection (gcm, x25519)', dNew, bNew);
      row('exec, multiplexed connection', dMux, bMux);
    }

    // scp both ways
    const local = join(job.dir, 'payload.bin');
    execFileSync('sh', ['-c', `head -c ${MB * 2 ** 20} /dev/urandom > ${local}`]);
    const remote = join(h.home, 'payload.bin');
    const back = join(job.dir, 'back.bin');
    const scpDirect = (args: string[], extra: string[] = []) =>
      runProcess('scp', [...h.sshd.directArgs(), ...extra, ...args], env, job.dir, undefined, 600_000);
    const scpBroker = (args: string[]) =>
      job.run('scp', ['-F', job.configFile, ...args], { timeoutMs: 600_000 });
    const bare = await spawnBareRelay({
      host: h.sshd.host,
      port: h.sshd.port,
      user: h.sshd.user,
      privateKey: readFileSync(h.sshd.clientKeyFile, 'utf8'),
      hostKey: h.sshd.hostKey,
    });
    // OpenSSH keeps the first value an option is given, so these go before directArgs() (which names
    // the sshd's port and known_hosts): after them, as until this commit, the "bare relay" copies went
    // straight to the sshd and measured direct against direct
    const bareArgs = [
      '-o',
      `Port=${bare.port}`,
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      ...matched,
      ...h.sshd.directArgs(),
    ];
    const scpBare = (args: string[]) =>
      runProcess('scp', [...bareArgs, ...args], env, job.dir, undefined, 600_000);
    const rss0 = process.memoryUsage().rss / 2 ** 20;
    console.log(`broker process RSS before the copies: ${fmt(rss0)} MB`);
    for (const [mode, flags] of [
      ['SFTP', [] as string[]],
      ['legacy -O', ['-O']],
    ] as const) {
      for (const dir of ['upload', 'download'] as const) {
        const dArgs = dir === 'upload' ? [local, `127.0.0.1:${remote}`] : [`127.0.0.1:${remote}`, back];
        const bArgs = dir === 'upload' ? [local, `build-host:${remote}`] : [`build-host:${remote}`, back];
        if (dir === 'download') await scpDirect([...flags, local, `127.0.0.1:${remote}`]);
        const dDefaultMs = COPIES_ONLY ? NaN : await timed(() => scpDirect([...flags, ...dArgs]));
        const dCpu = await cpuOf(() => timed(() => scpDirect([...flags, ...dArgs], matched)));
        const dMs = dCpu.ms;
        const bare0 = COUNT ? await bare.counters() : null;
        const bareCpu = await cpuOf(
          () => timed(() => scpBare([...flags, ...dArgs])),
          () => procCpuMs(bare.pid, false),
        );
        const bareMs = bareCpu.ms;
        const bare1 = COUNT ? await bare.counters() : null;
        const api = counterApi();
        const broker0 = api?.snapshot();
        let bCpu = { ms: 0, client: 0, relay: 0, machine: 0 };
        const b = await withRss(async () => {
          bCpu = await cpuOf(
            () => timed(() => scpBroker([...flags, ...bArgs])),
            () => procCpuMs(process.pid, false),
          );
          return bCpu.ms;
        });
        const broker1 = api?.snapshot();
        const rate = (ms: number) => MB / (ms / 1000);
        console.log(
          `scp ${mode} ${dir}`.padEnd(24) +
            ` direct ${fmt(rate(dDefaultMs))} (default algs) / ${fmt(rate(dMs))} (gcm) MB/s | bare relay ${fmt(rate(bareMs))} MB/s | broker ${fmt(rate(b.value))} MB/s | ratio ${fmt(dMs / b.value, 2)} (bare ${fmt(dMs / bareMs, 2)}, broker of bare ${fmt(bareMs / b.value, 2)}, vs default algs ${fmt(dDefaultMs / b.value, 2)}) | broker peak RSS ${fmt(b.peakMb)} MB, CPU ${fmt(b.cpuMs / MB, 2)} ms/MB`,
        );
        // on a machine whose cores are all busy, throughput follows the CPU a copy needs in total
        console.log(
          `  CPU ms/MB client / relay / whole machine: direct ${cpuLine(dCpu)} | bare relay ${cpuLine(bareCpu)} | broker ${cpuLine(bCpu)} | machine CPU/MB direct/broker ${fmt(dCpu.machine / bCpu.machine, 2)}`,
        );
        if (bare0 && bare1 && api) console.log(perMb('bare relay', api.delta(bare0, bare1)));
        if (broker0 && broker1 && api) console.log(perMb('broker', api.delta(broker0, broker1)));
      }
    }
    await bare.close();
    rmSync(local, { force: true });
    rmSync(back, { force: true });
    rmSync(remote, { force: true });
  } finally {
    await h.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
