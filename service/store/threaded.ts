// The embedded store behind a worker thread (see embedded-worker.ts for why). Every Store method is a
// message round trip; Dates and plain objects cross by structured clone, store errors by name.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SerializedError, WorkerRequest, WorkerResponse } from './embedded-worker.js';
import { SessionEndedError, StoreClosedError, UnknownSessionError } from './errors.js';
import type { EventBatchResult, Store } from './store.js';

function revive(e: SerializedError): Error {
  if (e.name === 'UnknownSessionError' && e.sessionId) return new UnknownSessionError(e.sessionId);
  if (e.name === 'SessionEndedError' && e.sessionId) return new SessionEndedError(e.sessionId);
  if (e.name === 'StoreClosedError') return new StoreClosedError();
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** tsx's ESM API entry (a devDependency: only needed when running from TypeScript sources). */
function tsxEsmApi(): string {
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  return pathToFileURL(join(dirname(pkg), 'dist/esm/api/index.mjs')).href;
}

function startWorker(data: { dataDir: string | null }): Worker {
  // From TypeScript sources (tests, tsx) the worker needs the tsx loader; from build/ it is plain JS.
  const fromSource = import.meta.url.endsWith('.ts');
  // built (tsc: embedded-worker.js beside this file) or bundled (esbuild: embedded-worker.mjs beside the bundle)
  const url = fromSource
    ? new URL('./embedded-worker.ts', import.meta.url)
    : ([
        new URL('./embedded-worker.js', import.meta.url),
        new URL('./embedded-worker.mjs', import.meta.url),
      ].find((u) => existsSync(u)) ?? new URL('./embedded-worker.js', import.meta.url));
  return fromSource
    ? // register tsx's loader inside the worker, then load the TypeScript module (tests, tsx scripts)
      new Worker(
        `import(${JSON.stringify(tsxEsmApi())})` +
          `.then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`,
        { eval: true, workerData: data },
      )
    : new Worker(fileURLToPath(url), { workerData: data });
}

/**
 * Create a new data directory's database in a short-lived child process (embedded-init.ts). initdb, which
 * PGlite runs on first open, grows the WASM heap to several hundred MB, and that memory is never given
 * back: in the process that keeps the store, it would stay resident for the broker's whole life.
 */
async function initializeInChildProcess(dataDir: string): Promise<void> {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = fromSource
    ? new URL('./embedded-init.ts', import.meta.url)
    : ([new URL('./embedded-init.js', import.meta.url), new URL('./embedded-init.mjs', import.meta.url)].find(
        (u) => existsSync(u),
      ) ?? new URL('./embedded-init.js', import.meta.url));
  const child = fork(fileURLToPath(entry), [dataDir], {
    execArgv: fromSource ? ['--import', 'tsx'] : [],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('message', (res: { ok: true } | { ok: false; error: SerializedError }) =>
        res.ok ? resolve() : reject(revive(res.error)),
      );
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`embedded store init process exited (code ${code})`)));
    });
  } finally {
    child.removeAllListeners('exit');
    if (child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
    }
  }
}

/** Start the worker (the embedded store opens there) and resolve once it is open. */
export async function openThreadedEmbeddedStore(dataDir: string | null): Promise<Store> {
  if (dataDir !== null && !existsSync(join(dataDir, 'store', 'PG_VERSION')))
    await initializeInChildProcess(dataDir);
  const worker = startWorker({ dataDir });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | null = null;
  const ready = new Promise<void>((resolve, reject) => {
    pending.set(0, { resolve: () => resolve(), reject });
  });
  worker.on('message', (res: WorkerResponse) => {
    const p = pending.get(res.id);
    if (!p) return;
    pending.delete(res.id);
    if (res.ok) p.resolve(res.value);
    else p.reject(revive(res.error));
  });
  const fail = (err: Error) => {
    dead = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  worker.on('error', (err) => fail(err));
  worker.on('exit', (code) => fail(new Error(`embedded store worker exited (code ${code})`)));
  try {
    await ready;
  } catch (err) {
    await worker.terminate();
    throw err;
  }

  const call = <T>(method: keyof Store, ...args: unknown[]): Promise<T> => {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, method, args } satisfies WorkerRequest);
    });
  };

  let closed = false;
  return {
    kind: 'embedded',
    migrate: () => call('migrate'),
    openSession: (...a) => call('openSession', ...a),
    getSession: (...a) => call('getSession', ...a),
    listSessions: (...a) => call('listSessions', ...a),
    endSession: (...a) => call('endSession', ...a),
    listExpiredUnended: (...a) => call('listExpiredUnended', ...a),
    appendEvents: (...a) => call('appendEvents', ...a),
    appendEventBatches: async (batches) => {
      // One string crosses the thread boundary: structured clone of a thousand small objects costs the
      // event loop more than JSON.stringify, and the worker (not the event loop) parses it. What JSON
      // cannot carry (undefined, toJSON objects) is exactly what the hash's canonical JSON drops or
      // converts the same way.
      const raw = await call<
        (Extract<EventBatchResult, { ok: true }> | { ok: false; error: SerializedError })[]
      >('appendEventBatches', JSON.stringify(batches));
      return raw.map((r): EventBatchResult => (r.ok ? r : { ok: false, error: revive(r.error) }));
    },
    listEvents: (...a) => call('listEvents', ...a),
    recordDenial: (...a) => call('recordDenial', ...a),
    listDenials: (...a) => call('listDenials', ...a),
    pruneTokenUses: (...a) => call('pruneTokenUses', ...a),
    ping: () => call('ping'),
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        await call('close');
      } finally {
        worker.removeAllListeners('exit');
        await worker.terminate();
      }
    },
  };
}
