// `npm run demo`: the whole product on one machine, in well under a minute, with nothing to set up.
//   1. a throwaway PostgreSQL with a small `shop` database (the tests' starter, test/fixtures/postgres.ts)
//   2. a LOCAL development OIDC issuer minting GitHub-shaped tokens (service/dev/issuer.ts)
//   3. the broker, as `hoop-broker serve` on examples/demo.yaml (ports filled in)
//   4. a session opened by hand, and psql through it: a read, a masked column, a denied write
//   5. the action's bundle (dist/) run as the GitHub runner runs it: main, a psql step, post; and the
//      job summary it wrote
// `npm run demo -- --keep` leaves everything running (Ctrl-C ends it) and says how to poke at it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import type { SessionCreated } from '../service/api/schemas.js';
import { type DevIssuer, startDevIssuer } from '../service/dev/issuer.js';
import { startActionsRunner } from '../test/fixtures/actions-runner.js';
import { freePort, type PgServer, startPostgres } from '../test/fixtures/postgres.js';

const run = promisify(execFile);
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const KEEP = process.argv.includes('--keep');
const AUDIENCE = 'https://hoop.example.com';
const started = performance.now();
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const step = (n: number, text: string) =>
  console.log(`\n${bold(`[${n}/5] ${text}`)} ${dim(`(${elapsed()})`)}`);
const indent = (text: string, prefix = '    ') =>
  text
    .replace(/\s+$/, '')
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');

const SEED = `
  CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, card text, country text);
  INSERT INTO customers VALUES
    (1, 'Ada Lovelace',    'ada@example.com',    '4111 1111 1111 1111', 'GB'),
    (2, 'Grace Hopper',    'grace@example.com',  '5500 0000 0000 0004', 'US'),
    (3, 'Edsger Dijkstra', 'edsger@example.com', '3400 0000 0000 009',  'NL');
  CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2), placed_at date);
  INSERT INTO orders SELECT g, 1 + g % 3, (g * 7.25)::numeric(10,2), date '2026-01-01' + g FROM generate_series(1, 40) g;
`;

function need(command: string, hint: string): void {
  if ((process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, command)))) return;
  console.error(`npm run demo needs ${command}: ${hint}`);
  process.exit(2);
}

/** The broker as a user runs it; its JSON log goes to a file, the start-up text to the terminal. */
function startBrokerProcess(
  configPath: string,
  env: Record<string, string>,
  logPath: string,
): Promise<{ child: ChildProcess; text: string; url: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'service/cli.ts'), 'serve', '--config', configPath],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const log = createWriteStream(logPath);
  const lines: string[] = [];
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the broker did not start within 40 s (log: ${logPath})`)),
      40_000,
    );
    const stderr: string[] = [];
    child.stderr!.on('data', (c: Buffer) => stderr.push(c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the broker exited (${code}): ${stderr.join('')}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) {
        log.write(`${line}\n`);
        return;
      }
      lines.push(line);
      if (line.startsWith('  validate edits:')) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        const url = /API\s+(\S+)/.exec(lines.join('\n'))?.[1] ?? '';
        resolvePromise({ child, text: lines.join('\n'), url });
      }
    });
  });
}

async function psql(env: NodeJS.ProcessEnv, sql: string): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env, timeout: 15_000 });
    return { ok: true, out: r.stdout };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

async function main(): Promise<void> {
  need('psql', 'install the PostgreSQL client (Debian: apt-get install postgresql-client)');
  need('pg_config', 'install the PostgreSQL server (Debian: apt-get install postgresql)');
  if (!existsSync(join(ROOT, 'dist', 'main.js')))
    throw new Error('dist/main.js is missing: run npm run build:action');
  const dir = mkdtempSync(join(tmpdir(), 'hoop-demo-'));
  const cleanups: (() => Promise<unknown> | unknown)[] = [
    () => rmSync(dir, { recursive: true, force: true }),
  ];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    console.log(
      bold('hoop demo: a throwaway database, a local token issuer, the broker, psql, and the action'),
    );
    console.log(dim(`working directory ${dir} (deleted at the end${KEEP ? ', after Ctrl-C' : ''})`));

    step(1, 'a throwaway PostgreSQL with a small `shop` database');
    const dbPassword = randomBytes(18).toString('base64url');
    const db: PgServer = await startPostgres();
    cleanups.push(() => db.stop());
    await db.psql(`CREATE ROLE shop_ci LOGIN PASSWORD '${dbPassword}'`);
    await db.psql('CREATE DATABASE shop OWNER shop_ci');
    await db.psql(`SET ROLE shop_ci; ${SEED}`, 'shop');
    console.log(
      `    PostgreSQL ${db.host}:${db.port}, database shop (customers: 3 rows, orders: 40 rows), role shop_ci`,
    );

    step(2, 'a LOCAL development token issuer (hoop-broker dev issuer; never for production)');
    const issuer: DevIssuer = await startDevIssuer({ audience: AUDIENCE });
    cleanups.push(() => issuer.close());
    console.log(`    ${issuer.issuer}: GitHub-shaped OIDC tokens, "hoop_dev_token": true`);

    step(3, 'the broker: hoop-broker serve --config examples/demo.yaml (ports filled in)');
    const doc = parseDocument(readFileSync(join(ROOT, 'examples', 'demo.yaml'), 'utf8'));
    doc.setIn(['listen', 'http', 'port'], await freePort());
    doc.setIn(['listen', 'postgres', 'port'], await freePort());
    doc.setIn(['issuers', 0, 'issuer'], issuer.issuer);
    doc.setIn(['targets', 0, 'port'], db.port);
    doc.setIn(['data_dir'], join(dir, 'data'));
    const configPath = join(dir, 'demo.yaml');
    writeFileSync(configPath, doc.toString());
    const adminToken = randomBytes(24).toString('base64url');
    const broker = await startBrokerProcess(
      configPath,
      { DEMO_DB_PASSWORD: dbPassword, DEMO_ADMIN_TOKEN: adminToken },
      join(dir, 'broker.log'),
    );
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          if (broker.child.exitCode !== null) return r();
          broker.child.once('exit', () => r());
          broker.child.kill('SIGTERM');
        }),
    );
    console.log(indent(broker.text, '    │ '));

    step(4, 'a session by hand: token → POST /v1/sessions → psql through the broker');
    const token = await issuer.mint({ event_name: 'pull_request' }, { audience: AUDIENCE });
    const res = await fetch(`${broker.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oidc_token: token }),
    });
    if (res.status !== 201) throw new Error(`POST /v1/sessions answered ${res.status}: ${await res.text()}`);
    const session = (await res.json()) as SessionCreated;
    const conn = session.targets[0]!.connection as {
      host: string;
      port: number;
      user: string;
      database: string;
    };
    const caFile = join(dir, 'broker-ca.pem');
    writeFileSync(caFile, session.ca_pem ?? '', { mode: 0o600 });
    console.log(
      `    session ${session.id}, policy ${session.policy}, ${session.targets[0]!.name}: ${session.targets[0]!.access}`,
    );
    const pgEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      PGHOST: conn.host,
      PGPORT: String(conn.port),
      PGUSER: conn.user,
      PGPASSWORD: session.secret,
      PGDATABASE: conn.database,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: caFile,
      PGCONNECT_TIMEOUT: '5',
    };
    for (const [label, sql] of [
      ['a read', 'SELECT count(*) AS orders, sum(total) AS revenue FROM orders'],
      [
        'a masked column (customers.email) and a detector (card numbers)',
        'SELECT id, name, email, card FROM customers ORDER BY id',
      ],
      ['a denied write (the policy grants read)', "UPDATE customers SET country = 'XX'"],
    ] as const) {
      const r = await psql(pgEnv, sql);
      console.log(`\n    ${label}:\n    $ psql -c "${sql}"\n${indent(r.out)}`);
    }
    const tr = await fetch(`${broker.url}/v1/sessions/${session.id}/transcript`, {
      headers: { authorization: `Bearer ${session.secret}` },
    });
    const transcript = (await tr.json()) as {
      events: { kind: string; decision: string }[];
      chain_verified: boolean;
      head_hash: string;
    };
    console.log(
      `\n    transcript: ${transcript.events.map((e) => `${e.kind}${e.decision === 'deny' ? ' (deny)' : ''}`).join(', ')}`,
    );
    console.log(
      `    chain verified: ${transcript.chain_verified}, head ${transcript.head_hash.slice(0, 16)}…`,
    );
    const envFile = join(dir, 'session.env');
    writeFileSync(
      envFile,
      `${Object.entries(pgEnv)
        .filter(([k]) => k.startsWith('PG'))
        .map(([k, v]) => `export ${k}='${v}'`)
        .join('\n')}\nexport HOOP_ADMIN_TOKEN='${adminToken}'\n`,
      { mode: 0o600 },
    );
    chmodSync(envFile, 0o600);

    step(5, 'the action (dist/) as the GitHub runner runs it: main → a psql step → post');
    const runner = await startActionsRunner({
      inputs: { 'broker-url': broker.url, audience: AUDIENCE, 'check-run': 'false' },
      idToken: (aud) => issuer.mint({ event_name: 'pull_request' }, { audience: aud ?? AUDIENCE }),
    });
    cleanups.push(() => runner.close());
    const main = await runner.runMain();
    if (main.exitCode !== 0) throw new Error(`the action's main step failed:\n${main.stdout}${main.stderr}`);
    console.log(
      `    main: session ${main.outputs['session-id']}, PGHOST/PGUSER/PGPASSWORD/… exported to later steps`,
    );
    const stepRun = await runner.runCommand('psql', [
      '-X',
      '-c',
      'SELECT name, email FROM customers ORDER BY id LIMIT 2',
    ]);
    console.log(
      `    run: psql -c "SELECT name, email FROM customers ORDER BY id LIMIT 2"\n${indent(stepRun.stdout + stepRun.stderr)}`,
    );
    await runner.runCommand('psql', ['-X', '-c', 'DELETE FROM orders']);
    console.log('    run: psql -c "DELETE FROM orders"   (denied)');
    const post = await runner.runPost();
    if (post.exitCode !== 0) throw new Error(`the action's post step failed:\n${post.stdout}${post.stderr}`);
    console.log(`    post: session revoked, job summary written (${post.summary.length} bytes):\n`);
    console.log(indent(post.summary, '    ┃ '));

    console.log(`\n${bold(`Done in ${elapsed()}.`)} What to try next:`);
    const next = KEEP
      ? [
          `source ${envFile} && psql   # step 4's session, still open (its PG* variables; a 0600 file)`,
          `npx hoop-broker dev token --issuer ${issuer.issuer} --claims event_name=push,ref=refs/heads/main > token.jwt`,
          `npx hoop-broker explain --token token.jwt --url ${broker.url}   # which policy matches, why not the others`,
          `npx hoop-broker sessions list --url ${broker.url}   # admin: HOOP_ADMIN_TOKEN is in ${envFile}`,
          `npx hoop-broker audit verify ${session.id} --url ${broker.url}`,
        ]
      : [
          'npm run demo -- --keep     # the same, left running, printing a psql session and commands to try on it',
        ];
    next.push(
      'examples/demo.yaml         # the policies the demo ran with; edit them, then npx hoop-broker check-config',
      'examples/quickstart.yaml   # a config for real GitHub Actions tokens (README: "Run it for real")',
    );
    for (const n of next) console.log(`  ${n}`);
    if (KEEP) {
      console.log(
        dim(
          `\nEverything keeps running (broker log: ${join(dir, 'broker.log')}). Ctrl-C ends it and deletes ${dir}.`,
        ),
      );
      await new Promise<never>(() => undefined); // the SIGINT handler cleans up and exits
    }
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
