// The embedded store in a process of its own (embedded-server.ts says why). Every Store method is a
// message round trip over the IPC channel; Dates and plain objects cross by structured clone
// ('advanced' serialization), store errors by name.
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SerializedError, StoreRequest, StoreResponse } from './embedded-server.js';
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

function startServer(dataDir: string | null, initOnly: boolean): ChildProcess {
  // From TypeScript sources (tests, tsx) the child needs the tsx loader; from build/ it is plain JS.
  const fromSource = import.meta.url.endsWith('.ts');
  // built (tsc: embedded-server.js beside this file) or bundled (esbuild: embedded-server.mjs beside it)
  const entry = fromSource
    ? new URL('./embedded-server.ts', import.meta.url)
    : ([
        new URL('./embedded-server.js', import.meta.url),
        new URL('./embedded-server.mjs', import.meta.url),
      ].find((u) => existsSync(u)) ?? new URL('./embedded-server.js', import.meta.url));
  return fork(fileURLToPath(entry), [dataDir ?? ':memory:', ...(initOnly ? ['--init-only'] : [])], {
    // not the parent's flags (a profiler, an inspector port, vitest's loaders)
    execArgv: fromSource ? ['--import', 'tsx'] : [],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

/** Wait for the child to exit; SIGKILL it if it has not within `ms`. */
function exited(child: ChildProcess, ms = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    timer.unref();
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The first message (id 0): the store is open, or why it could not be. */
function opened(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onMessage = (res: StoreResponse) => {
      if (res.id !== 0) return;
      child.off('message', onMessage);
      if (res.ok) resolve();
      else reject(revive(res.error));
    };
    child.on('message', onMessage);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`embedded store process exited (${signal ?? `code ${code}`})`)),
    );
  });
}

/**
 * Start the store process and resolve once the store is open. A new data directory's database is first
 * created by a short-lived process of its own: initdb grows the WASM heap to several hundred MB, which
 * is never given back, and would otherwise stay resident for the broker's whole life.
 */
export async function openEmbeddedStoreProcess(dataDir: string | null): Promise<Store> {
  if (dataDir !== null && !existsSync(join(dataDir, 'store', 'PG_VERSION'))) {
    const init = startServer(dataDir, true);
    try {
      await opened(init);
    } finally {
      init.removeAllListeners('exit');
      await exited(init);
    }
  }
  const child = startServer(dataDir, false);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | null = null;
  try {
    await opened(child);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  child.on('message', (res: StoreResponse) => {
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
  child.removeAllListeners('exit');
  child.removeAllListeners('error');
  child.on('error', (err) => fail(err));
  child.on('exit', (code, signal) =>
    fail(new Error(`embedded store process exited (${signal ?? `code ${code}`})`)),
  );

  const call = <T>(method: StoreRequest['method'], ...args: unknown[]): Promise<T> => {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, method, args } satisfies StoreRequest);
    });
  };

  /** appendEventBatches and appendEventTexts: errors inside the results come back by name. */
  const appendBatches = async (
    method: 'appendEventBatches' | 'appendEventTexts',
    arg: unknown,
  ): Promise<EventBatchResult[]> => {
    const raw = await call<
      (Extract<EventBatchResult, { ok: true }> | { ok: false; error: SerializedError })[]
    >(method, arg);
    return raw.map((r): EventBatchResult => (r.ok ? r : { ok: false, error: revive(r.error) }));
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
    // One string crosses to the store process: serializing a thousand small objects one by one costs
    // the event loop more than JSON.stringify, and the store process (not the event loop) parses it.
    // What JSON cannot carry (undefined, toJSON objects) is exactly what the hash's canonical JSON
    // drops or converts the same way.
    appendEventBatches: (batches) => appendBatches('appendEventBatches', JSON.stringify(batches)),
    // the recorder's path: strings cross, and the store process chains them without parsing
    appendEventTexts: (batches) => appendBatches('appendEventTexts', batches),
    listEvents: (...a) => call('listEvents', ...a),
    recordDenial: (...a) => call('recordDenial', ...a),
    listDenials: (...a) => call('listDenials', ...a),
    appendRecordingChunks: (...a) => call('appendRecordingChunks', ...a),
    listRecordingChunks: (...a) => call('listRecordingChunks', ...a),
    pruneTokenUses: (...a) => call('pruneTokenUses', ...a),
    claimOnce: (...a) => call('claimOnce', ...a),
    readExport: (...a) => call('readExport', ...a),
    claimExportLease: (...a) => call('claimExportLease', ...a),
    saveExportPosition: (...a) => call('saveExportPosition', ...a),
    releaseExportLease: (...a) => call('releaseExportLease', ...a),
    listExportPositions: () => call('listExportPositions'),
    listChainHeads: () => call('listChainHeads'),
    listActiveByRun: (...a) => call('listActiveByRun', ...a),
    heartbeat: (...a) => call('heartbeat', ...a),
    removeReplica: (...a) => call('removeReplica', ...a),
    addLiveConnection: (...a) => call('addLiveConnection', ...a),
    removeLiveConnection: (...a) => call('removeLiveConnection', ...a),
    claimLostConnections: (...a) => call('claimLostConnections', ...a),
    pruneReplicas: (...a) => call('pruneReplicas', ...a),
    listEndedSince: (...a) => call('listEndedSince', ...a),
    settleSetting: (...a) => call('settleSetting', ...a),
    insertApproval: (...a) => call('insertApproval', ...a),
    getApproval: (...a) => call('getApproval', ...a),
    listApprovals: (...a) => call('listApprovals', ...a),
    updateApproval: (...a) => call('updateApproval', ...a),
    countRate: (...a) => call('countRate', ...a),
    pruneRates: (...a) => call('pruneRates', ...a),
    pruneBefore: (...a) => call('pruneBefore', ...a),
    listPrunedSince: (...a) => call('listPrunedSince', ...a),
    insertCheckpoint: (...a) => call('insertCheckpoint', ...a),
    latestCheckpoint: () => call('latestCheckpoint'),
    listCheckpoints: (...a) => call('listCheckpoints', ...a),
    ping: () => call('ping'),
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        await call('close');
      } finally {
        child.removeAllListeners('exit');
        if (child.connected) child.disconnect();
        await exited(child);
      }
    },
  };
}
