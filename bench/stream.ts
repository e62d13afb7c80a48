// Streaming throughput through the PostgreSQL gateway: a 1,000,000-row table read with psql and
// pg_dump unchanged, side by side in one run, directly, through the broker with no mask rules, and
// through the broker with a column mask on the email column plus the credit-card detector. No TLS on
// any path. Medians of BENCH_REPEAT (3) runs; seconds, rows/s, broker/direct ratios, the broker's CPU
// per row and its peak RSS. Then a long generated masked stream (BENCH_LONG_GB, default 2; 0 skips
// it) to check that the broker's RSS stays flat, sampled through the stream.
//
//   npm run bench:stream   (BENCH_ROWS=1000000 BENCH_REPEAT=3 BENCH_LONG_GB=2 BENCH_ONLY=copy|select|dump)
//   BENCH_ONLY=long BENCH_LONG_GB=10 npm run bench:stream   the 10 GB dump-sized stream alone (~1.5 min
//   here: 25,000,000 generated rows of ~400 bytes, masked and scanned, through psql into /dev/null)
//   BENCH_PROFILE_DIR=/tmp/prof writes a CPU profile of the broker child (bench/pg-gateway-child.ts).
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { newSessionId, newSessionSecret } from '../service/sessions/secret.js';
import { generateCa, issueServerCert } from '../service/tls/ca.js';
import { type PgServer, startPostgres } from '../test/fixtures/postgres.js';
import { type GatewayChild, startGatewayChild } from './pg-gateway-child.js';

const run = promisify(execFile);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const LONG_GB = Number(process.env.BENCH_LONG_GB ?? 2);
const ONLY = process.env.BENCH_ONLY;
const DB = 'bench';
const ROLE = 'bench_user';
const PASSWORD = `bench-${Math.random().toString(36).slice(2)}`;

interface Path {
  name: string;
  port: number;
  env: Record<string, string>;
  gateway: GatewayChild | null;
}

interface Timing {
  seconds: number;
  /** the broker's CPU (user+system) for the run, µs */
  brokerCpuMicros?: number;
  peakRssMb?: number;
}

const WORKS: Array<{ name: string; key: string; cmd: (p: Path) => [string, string[]] }> = [
  {
    name: '\\copy bulk TO /dev/null',
    key: 'copy',
    cmd: () => ['psql', ['-X', '-q', '-c', "\\copy bulk TO '/dev/null'"]],
  },
  {
    name: 'SELECT * FROM bulk (psql)',
    key: 'select',
    cmd: () => ['psql', ['-X', '-q', '-o', '/dev/null', '-c', 'SELECT * FROM bulk']],
  },
  { name: 'pg_dump -t bulk', key: 'dump', cmd: () => ['pg_dump', ['-t', 'bulk', '-f', '/dev/null']] },
];

function clientEnv(p: Path): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    PGHOST: '127.0.0.1',
    PGPORT: String(p.port),
    PGDATABASE: DB,
    PGSSLMODE: 'disable',
    ...p.env,
  };
}

async function timed(p: Path, cmd: [string, string[]]): Promise<Timing> {
  const before = p.gateway ? await p.gateway.stats() : null;
  p.gateway?.resetPeak();
  const t0 = process.hrtime.bigint();
  await run(cmd[0], cmd[1], { env: clientEnv(p), maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!p.gateway || !before) return { seconds };
  const after = await p.gateway.stats();
  return {
    seconds,
    brokerCpuMicros: after.cpuMicros - before.cpuMicros,
    peakRssMb: after.sampledPeakRssMb,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The masked path's output, read in full: no email address and no card number may be in it. */
async function verifyMasked(p: Path): Promise<string> {
  const checks: Array<[string, string[]]> = [
    ['psql', ['-X', '-q', '-c', '\\copy bulk TO STDOUT']],
    ['psql', ['-X', '-q', '-A', '-t', '-c', 'SELECT * FROM bulk']],
    ['pg_dump', ['-t', 'bulk']],
  ];
  const out: string[] = [];
  for (const [bin, args] of checks) {
    const r = await new Promise<{ bytes: number; leaks: number; masks: number }>((resolve, reject) => {
      const child = spawn(bin, args, { env: clientEnv(p), stdio: ['ignore', 'pipe', 'inherit'] });
      let bytes = 0;
      let leaks = 0;
      let masks = 0;
      let tail = '';
      child.stdout.setEncoding('latin1');
      child.stdout.on('data', (s: string) => {
        bytes += s.length;
        const text = tail + s;
        leaks += (text.match(/@example\.com|4111[ -]?1111[ -]?1111[ -]?1111/g) ?? []).length;
        masks += (text.match(/\*\*\*@\*\*\*\.\*\*\*/g) ?? []).length;
        // a match cut between two chunks is found in the next one; one seen whole is not counted twice
        tail = text.slice(-24).replace(/.*[\n\t|]/s, '');
      });
      child.once('error', reject);
      child.once('close', (code) =>
        code === 0 ? resolve({ bytes, leaks, masks }) : reject(new Error(`${bin} exited ${code}`)),
      );
    });
    out.push(
      `${bin} ${args.at(-1)}: ${r.leaks === 0 && r.masks >= ROWS ? 'masked' : 'LEAKED'} (${r.masks} masks)`,
    );
    if (r.leaks !== 0 || r.masks < ROWS) process.exitCode = 1;
  }
  return out.join('; ');
}

/**
 * A long masked stream (a generated COPY of bulk's rows, repeated, with a wide column) through the
 * broker into psql → /dev/null, the broker's RSS sampled every second: it must stay flat.
 */
async function longStream(p: Path): Promise<void> {
  const gw = p.gateway!;
  const rowBytes = 400;
  const passes = Math.max(1, Math.ceil((LONG_GB * 1e9) / (ROWS * rowBytes)));
  const sql =
    `\\copy (SELECT b.id, b.email, b.note || repeat('.', ${rowBytes - 100}), b.created, b.uid ` +
    `FROM generate_series(1, ${passes}) r, bulk b) TO '/dev/null'`;
  gw.resetPeak();
  const samples: number[] = [];
  const timer = setInterval(() => {
    void gw.stats().then((s) => samples.push(s.rssMb));
  }, 1000);
  const t0 = process.hrtime.bigint();
  const before = await gw.stats();
  try {
    await run('psql', ['-X', '-q', '-c', sql], { env: clientEnv(p) });
  } finally {
    clearInterval(timer);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = await gw.stats();
  const rows = passes * ROWS;
  const gb = (rows * rowBytes) / 1e9;
  const tenth = Math.max(1, Math.floor(samples.length / 10));
  const deciles = samples.filter((_, i) => i % tenth === 0).map((x) => x.toFixed(0));
  console.log(
    `long masked stream: ${rows.toLocaleString('en')} rows, ~${gb.toFixed(1)} GB of COPY text in ${seconds.toFixed(1)} s ` +
      `(${(gb / seconds).toFixed(2)} GB/s, broker CPU ${((after.cpuMicros - before.cpuMicros) / rows).toFixed(2)} µs/row); ` +
      `broker RSS before ${before.rssMb.toFixed(0)} MB, sampled every 1 s: ${deciles.join(' ')} MB; ` +
      `peak ${after.sampledPeakRssMb.toFixed(0)} MB`,
  );
}

async function main(): Promise<void> {
  const load = (await run('uptime', [])).stdout.trim();
  console.log(`bench:stream: ${ROWS.toLocaleString('en')} rows, medians of ${REPEAT}; ${load}`);
  let pg: PgServer | null = null;
  const gateways: GatewayChild[] = [];
  try {
    pg = await startPostgres({ settings: { shared_buffers: '256MB' } });
    await pg.psql(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'`);
    await pg.psql(`CREATE DATABASE ${DB} OWNER ${ROLE}`);
    // an email under a column mask, a note the credit-card detector finds a card in (every 4th row),
    // and columns whose types cannot hold text
    await pg.psql(
      `SET ROLE ${ROLE};
       CREATE TABLE bulk AS SELECT g::bigint AS id, 'user' || g || '@example.com' AS email,
         CASE WHEN g % 4 = 0 THEN 'card 4111 1111 1111 1111 on file' ELSE 'order ' || g || ' shipped' END AS note,
         timestamptz '2024-01-01' + g * interval '1 minute' AS created,
         md5(g::text)::uuid AS uid, g % 2 = 0 AS flag, (g % 1000)::numeric / 7 AS amount
       FROM generate_series(1, ${ROWS}) g;
       ANALYZE bulk;`,
      DB,
    );
    const ca = await generateCa('bench CA', new Date());
    const cert = await issueServerCert(ca, ['localhost', '127.0.0.1'], new Date());
    const target = {
      name: DB,
      kind: 'postgres' as const,
      host: '127.0.0.1',
      port: pg.port,
      database: DB,
      user: ROLE,
      password: { env: 'UNUSED' },
    };
    const paths: Path[] = [
      { name: 'direct', port: pg.port, env: { PGUSER: ROLE, PGPASSWORD: PASSWORD }, gateway: null },
    ];
    for (const [name, mask] of [
      ['broker, no mask rules', []],
      ['broker, with masks', [{ column: 'public.bulk.email' }, { detector: 'credit_card' as const }]],
    ] as const) {
      const id = newSessionId();
      const secret = newSessionSecret();
      // one broker per path: each one's CPU and RSS are its own
      const gw = await startGatewayChild({
        target,
        password: PASSWORD,
        tls: { certPem: cert.certPem, keyPem: cert.keyPem },
        sessions: [{ id, secret, grant: { target: DB, access: 'read', mask: [...mask] } }],
        recording: 'store',
      });
      gateways.push(gw);
      paths.push({ name, port: gw.port, env: { PGUSER: id, PGPASSWORD: secret }, gateway: gw });
    }

    const summary: unknown[] = [];
    for (const work of WORKS) {
      if (ONLY && ONLY !== work.key) continue;
      const times = new Map<string, Timing[]>(paths.map((p) => [p.name, []]));
      // interleaved: a slow spell of the shared machine hits every path alike
      for (let i = 0; i < REPEAT; i++)
        for (const p of paths) times.get(p.name)!.push(await timed(p, work.cmd(p)));
      const direct = median(times.get('direct')!.map((t) => t.seconds));
      const cells = paths.map((p) => {
        const ts = times.get(p.name)!;
        const s = median(ts.map((t) => t.seconds));
        const cpu = ts[0]?.brokerCpuMicros !== undefined ? median(ts.map((t) => t.brokerCpuMicros!)) : null;
        const rss = ts[0]?.peakRssMb !== undefined ? Math.max(...ts.map((t) => t.peakRssMb!)) : null;
        return { path: p.name, seconds: s, rowsPerSec: ROWS / s, ratio: direct / s, cpu, rss };
      });
      console.log(`\n${work.name}`);
      for (const c of cells)
        console.log(
          `  ${c.path.padEnd(22)} ${c.seconds.toFixed(2).padStart(6)} s ${Math.round(c.rowsPerSec).toLocaleString('en').padStart(10)} rows/s` +
            (c.path === 'direct'
              ? ''
              : `  ${c.ratio.toFixed(2)}× direct, broker CPU ${((c.cpu ?? 0) / ROWS).toFixed(2)} µs/row, peak RSS ${c.rss?.toFixed(0)} MB`),
        );
      summary.push({ work: work.key, results: cells });
    }
    console.log(`\nmasked output read in full: ${await verifyMasked(paths[2]!)}`);
    if (LONG_GB > 0) await longStream(paths[2]!);
    console.log(JSON.stringify({ rows: ROWS, repeat: REPEAT, load, summary }));
  } finally {
    for (const gw of gateways) await gw.stop();
    await pg?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
