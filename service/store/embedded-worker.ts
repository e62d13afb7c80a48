// The worker side of the threaded embedded store: PGlite (PostgreSQL compiled to WASM) runs its
// queries synchronously on whatever thread owns it, so it gets a thread of its own and the gateways'
// event loop never stalls behind a commit. Messages: {id, method, args} in, {id, ok, value|error} out.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { openEmbeddedStore } from './embedded.js';
import type { Store } from './store.js';

export interface WorkerRequest {
  id: number;
  method: keyof Store;
  args: unknown[];
}

export type WorkerResponse =
  { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  sessionId?: string;
}

export function serializeError(err: unknown): SerializedError {
  const e = err instanceof Error ? err : new Error(String(err));
  const sessionId = (e as { sessionId?: unknown }).sessionId;
  return { name: e.name, message: e.message, ...(typeof sessionId === 'string' ? { sessionId } : {}) };
}

/**
 * Linux: run this thread at a lower CPU priority (nice 10) than the gateways' event loop. Writing the
 * transcript is throughput work; relaying a client's statement is latency work, and on a busy host the
 * two compete for the same cores. CFS still gives this thread about a tenth of a contended core, so
 * commits keep flowing. Elsewhere (or when not permitted) a no-op.
 */
export function lowerThreadPriority(): boolean {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isSafeInteger(tid) || tid <= 0) return false;
    setPriority(tid, 10);
    return true;
  } catch {
    return false;
  }
}

const port = parentPort;
if (port) {
  lowerThreadPriority();
  serve(port, (workerData as { dataDir: string | null }).dataDir);
}

function serve(port: NonNullable<typeof parentPort>, dataDir: string | null): void {
  let store: Store | null = null;
  const ready = openEmbeddedStore(dataDir).then((s) => {
    store = s;
    return s;
  });
  port.on('message', async (req: WorkerRequest) => {
    try {
      const s = store ?? (await ready);
      const fn = s[req.method] as (...a: unknown[]) => Promise<unknown>;
      // appendEventBatches arrives as one JSON string (see threaded.ts)
      const args =
        req.method === 'appendEventBatches' && typeof req.args[0] === 'string'
          ? [JSON.parse(req.args[0])]
          : req.args;
      let value = await fn.apply(s, args);
      if (req.method === 'appendEventBatches') {
        // errors inside results are values; make them cloneable with their identity
        value = (value as { ok: boolean; error?: unknown }[]).map((r) =>
          r.ok ? r : { ok: false, error: serializeError(r.error) },
        );
      }
      port.postMessage({ id: req.id, ok: true, value } satisfies WorkerResponse);
    } catch (err) {
      port.postMessage({ id: req.id, ok: false, error: serializeError(err) } satisfies WorkerResponse);
    }
  });
  ready.then(
    () => port.postMessage({ id: 0, ok: true, value: 'ready' } satisfies WorkerResponse),
    (err: unknown) =>
      port.postMessage({ id: 0, ok: false, error: serializeError(err) } satisfies WorkerResponse),
  );
}
