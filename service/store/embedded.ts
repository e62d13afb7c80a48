// The embedded store: PostgreSQL compiled to WebAssembly (PGlite), in-process, persisted under data_dir.
//
// Durability. PGlite starts PostgreSQL with `-F` (fsync off), and Emscripten's NODEFS has no fsync: the
// fsync call is a no-op and fdatasync is a stub. Committed data then reaches the OS page cache (it
// survives the process being killed) but not the disk (it may not survive a power cut or kernel crash).
// So this store (1) starts PostgreSQL with fsync=on and wal_sync_method=fsync, which makes every COMMIT
// call fsync() on the WAL before it returns, and (2) gives NODEFS a real fsync (fdatasync for files,
// fsync for directories), so those calls, and checkpoint's fsyncs of data files, reach the disk. A
// commit, and so every promise of this store, resolves only after its WAL is on disk. At open, a
// self-check refuses to run when the settings did not take or the fsync hook is not called.
import { chmodSync, closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { serialize } from 'pg-protocol';
import { ChunkFile } from './chunk-file.js';
import { lockDataDir } from './data-dir-lock.js';
import type { SqlDriver, SqlResult, SqlRunner, Statement } from './sql.js';
import { SqlStore } from './sql-store.js';

/** Emscripten's EIO: the error an fsync failure is reported with, so PostgreSQL PANICs (fail closed). */
const EIO = 29;

interface EmscriptenStream {
  nfd?: number;
  node: unknown;
}
interface NodeFsInternals {
  stream_ops: { fsync?: (stream: EmscriptenStream) => number };
  realPath(node: unknown): string;
}
interface ErrnoErrorConstructor {
  new (errno: number): Error;
}

type FsInitOptions = Parameters<NodeFS['init']>[1];

/** NODEFS with a working fsync. `syncCalls` counts them, for the open-time self-check. */
class DurableNodeFS extends NodeFS {
  syncCalls = 0;

  override async init(pg: PGlite, opts: FsInitOptions): ReturnType<NodeFS['init']> {
    const base = await super.init(pg, opts);
    const preRun = base.emscriptenOpts.preRun ?? [];
    return {
      emscriptenOpts: {
        ...base.emscriptenOpts,
        preRun: [
          ...preRun,
          (mod) => {
            const nodefs = mod.NODEFS as unknown as NodeFsInternals;
            const ErrnoError = (mod.FS as unknown as { ErrnoError: ErrnoErrorConstructor }).ErrnoError;
            // Every NODEFS node shares this stream_ops object, so the hook covers files opened later.
            nodefs.stream_ops.fsync = (stream) => {
              this.syncCalls++;
              try {
                if (typeof stream.nfd === 'number') {
                  fdatasyncSync(stream.nfd);
                } else {
                  // Directories have no host descriptor in NODEFS; PostgreSQL fsyncs them after renames.
                  const fd = openSync(nodefs.realPath(stream.node), 'r');
                  try {
                    fsyncSync(fd);
                  } finally {
                    closeSync(fd);
                  }
                }
              } catch {
                throw new ErrnoError(EIO);
              }
              return 0;
            };
          },
        ],
      },
    };
  }
}

const DURABLE_START_PARAMS = [
  ...PGlite.defaultStartParams.filter((p) => p !== '-F'),
  '-c',
  'fsync=on',
  '-c',
  'wal_sync_method=fsync',
  '-c',
  'synchronous_commit=on',
  '-c',
  'full_page_writes=on',
  // Memory. PostgreSQL touches all of shared_buffers at start, and WASM memory is never returned:
  // PGlite's default of 128 MB made the broker's resident set 100 MB larger for a store whose working
  // set is a few MB of session rows plus the transcript chunks being appended.
  '-c',
  'shared_buffers=16MB',
  '-c',
  'temp_buffers=2MB',
  '-c',
  'wal_buffers=1MB',
];

/** Runs a statement on PGlite (or one of its transactions) and normalises the result. */
async function runOn(
  db: Pick<Transaction, 'query'>,
  statement: Statement,
  params: readonly unknown[],
): Promise<SqlResult<never>> {
  try {
    const r = await db.query<never>(statement.text, [...params]);
    return { rows: r.rows, rowCount: Math.max(r.rows.length, r.affectedRows ?? 0) };
  } catch (err) {
    throw withoutParams(err);
  }
}

/**
 * A rowless statement (Statement.rowless) as raw protocol messages: Parse (once per statement name),
 * Bind, Execute, Sync. PGlite's query() costs several times more CPU for the same INSERT (a describe
 * round trip, then its own parameter encoder walks every character of a transcript chunk in
 * JavaScript); Buffer encodes the text natively. Only the row count comes back.
 */
async function runRowless(
  db: PGlite,
  prepared: Set<string>,
  statement: Statement,
  params: readonly unknown[],
): Promise<SqlResult<never>> {
  const values = params.map((v, i) => {
    if (v === null || typeof v === 'string') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    throw new TypeError(`${statement.name}: parameter $${i + 1} must be a string, a finite number or null`);
  });
  const parts: Buffer[] = [];
  const parse = !prepared.has(statement.name);
  if (parse) parts.push(serialize.parse({ name: statement.name, text: statement.text, types: [] }));
  parts.push(serialize.bind({ statement: statement.name, values }), serialize.execute({}), serialize.sync());
  const out = await db.execProtocolRaw(Buffer.concat(parts));
  const reply = readRowlessReply(out, statement.name);
  if (parse && reply.parsed) prepared.add(statement.name);
  if (reply.error) throw reply.error;
  return { rows: [], rowCount: reply.rowCount };
}

/** The backend messages of one Parse?/Bind/Execute/Sync exchange: row count, or the error. */
function readRowlessReply(
  out: Uint8Array,
  name: string,
): { parsed: boolean; rowCount: number; error: Error | null } {
  const buf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  let parsed = false;
  let rowCount = 0;
  let error: Error | null = null;
  let ready = false;
  let pos = 0;
  while (pos + 5 <= buf.length) {
    const type = buf[pos]!;
    const end = pos + 1 + buf.readInt32BE(pos + 1);
    if (end > buf.length || end < pos + 5) break;
    if (type === 0x31 /* 1 ParseComplete */) parsed = true;
    else if (type === 0x43 /* C CommandComplete */) {
      const tag = buf.toString('latin1', pos + 5, end - 1);
      rowCount = Number(/ (\d+)$/.exec(tag)?.[1] ?? 0);
    } else if (type === 0x45 /* E ErrorResponse */) error ??= errorFromFields(buf.subarray(pos + 5, end));
    else if (type === 0x5a /* Z ReadyForQuery */) ready = true;
    pos = end;
  }
  if (!ready && !error)
    error = new Error(`${name}: the embedded database's reply ended without ReadyForQuery`);
  return { parsed, rowCount, error };
}

/** An ErrorResponse's fields as an Error shaped like pg's and PGlite's DatabaseError (code, severity, detail). */
function errorFromFields(body: Buffer): Error {
  const fields: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const code = String.fromCharCode(body[pos]!);
    const nul = body.indexOf(0, pos + 1);
    if (nul < 0) break;
    fields[code] = body.toString('utf8', pos + 1, nul);
    pos = nul + 1;
  }
  const err = new Error(fields.M ?? 'error from the embedded database') as Error & Record<string, unknown>;
  err.name = 'DatabaseError';
  err.code = fields.C;
  err.severity = fields.S;
  if (fields.D !== undefined) err.detail = fields.D;
  if (fields.n !== undefined) err.constraint = fields.n;
  if (fields.t !== undefined) err.table = fields.t;
  return err;
}

/**
 * PGlite attaches the query's parameters to its errors; they can hold secret hashes, SCRAM verifiers and
 * recorded statements, and errors get logged. Drop them (the pg driver never attaches them).
 */
function withoutParams(err: unknown): unknown {
  if (err && typeof err === 'object' && 'params' in err) delete (err as { params?: unknown }).params;
  return err;
}

/**
 * PGlite is one connection. Every call goes through one queue, so a transaction's statements never
 * interleave with another caller's; inside a transaction, statements go straight to it.
 */
class PGliteDriver implements SqlDriver {
  readonly kind = 'embedded' as const;
  readonly #db: PGlite;
  readonly #release: () => void;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(db: PGlite, release: () => void) {
    this.#db = db;
    this.#release = release;
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** rowless statements prepared on the connection (raw protocol) */
  readonly #prepared = new Set<string>();

  #run(db: Pick<Transaction, 'query'>, statement: Statement, params: readonly unknown[]) {
    return statement.rowless
      ? runRowless(this.#db, this.#prepared, statement, params)
      : runOn(db, statement, params);
  }

  query<Row>(statement: Statement, params: readonly unknown[]): Promise<SqlResult<Row>> {
    return this.#exclusive(() => this.#run(this.#db, statement, params));
  }

  async exec(script: string): Promise<void> {
    await this.#exclusive(() => this.#db.exec(script));
  }

  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.#exclusive(() =>
      this.#db.transaction((tx) =>
        fn({
          // a rowless statement goes to the same (only) connection, inside this transaction
          query: <Row>(statement: Statement, params: readonly unknown[]) =>
            this.#run(tx, statement, params) as Promise<SqlResult<Row>>,
          exec: async (script: string) => {
            await tx.exec(script);
          },
        }),
      ),
    );
  }

  async close(): Promise<void> {
    try {
      await this.#exclusive(() => this.#db.close());
    } finally {
      this.#release();
    }
  }
}

/**
 * Open the embedded store: `${dataDir}/store` on disk (durable, see above), or in memory when dataDir is
 * null (tests, `check-config`). Only one process may open a data_dir at a time. Does not migrate.
 */
export async function openEmbeddedStore(dataDir: string | null): Promise<SqlStore> {
  if (dataDir === null) return storeOnPGlite(await PGlite.create());
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const storeDir = join(dataDir, 'store');
  const release = lockDataDir(join(dataDir, 'store.lock'));
  let db: PGlite | undefined;
  try {
    mkdirSync(storeDir, { recursive: true, mode: 0o700 });
    // Session rows hold secret hashes and SCRAM verifiers: keep the files private to the broker's user.
    chmodSync(storeDir, 0o700);
    const fs = new DurableNodeFS(storeDir);
    db = await PGlite.create({ fs, startParams: DURABLE_START_PARAMS });
    await checkDurability(db, fs);
    return new SqlStore(new PGliteDriver(db, release), {
      bodies: ChunkFile.open(join(dataDir, 'transcripts')),
    });
  } catch (err) {
    if (db && !db.closed) await db.close().catch(() => undefined);
    release();
    throw err;
  }
}

/** A store on a PGlite the caller opened (in-memory, or a test that also inspects the database); close() closes it. */
export function storeOnPGlite(db: PGlite): SqlStore {
  return new SqlStore(new PGliteDriver(db, () => undefined));
}

async function checkDurability(db: PGlite, fs: DurableNodeFS): Promise<void> {
  const setting = async (name: string) =>
    (await db.query<{ value: string }>('SELECT current_setting($1) AS value', [name])).rows[0]?.value;
  const fsync = await setting('fsync');
  const method = await setting('wal_sync_method');
  if (fsync !== 'on' || method !== 'fsync') {
    throw new Error(`embedded store is not durable: fsync=${fsync}, wal_sync_method=${method}`);
  }
  const before = fs.syncCalls;
  await db.exec('CHECKPOINT');
  if (fs.syncCalls === before)
    throw new Error('embedded store is not durable: the fsync hook was not called');
}
