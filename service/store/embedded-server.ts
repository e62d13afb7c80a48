// The embedded store's own process (started by embedded-process.ts): PGlite (PostgreSQL compiled to
// WASM) runs each query synchronously on the thread that owns it, holds a WASM heap it never gives
// back, and keeps the JIT and garbage collector busy while it commits. In a process of its own, at a
// lower CPU priority, none of that lands on the gateways' event loop, its heap or its resident set.
// Messages over the IPC channel: {id, method, args} in, {id, ok, value|error} out; id 0 reports open.
//
//   node embedded-server.js <data_dir | :memory:> [--init-only]
//
// --init-only creates a new data directory's database (initdb grows the WASM heap to several hundred
// MB), closes it and exits, so that memory is returned before the long-lived store process starts.
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { openEmbeddedStore } from './embedded.js';
import type { Store } from './store.js';

export interface StoreRequest {
  id: number;
  /** appendEventBatches crosses with its batches as one JSON text */
  method: keyof Store;
  args: unknown[];
}

export type StoreResponse =
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
 * Linux: every thread of this process (the JS thread, V8's compiler and GC helpers, libuv's pool;
 * threads started later inherit it) at nice 10. Writing transcripts is throughput work, relaying a
 * statement is latency work, and on a busy host both want the same cores; CFS still gives a nice-10
 * process about a tenth of a contended core, so commits keep flowing (and the gateways' backlog bound
 * holds statements when they do not). Elsewhere, or when not permitted, a no-op.
 */
export function lowerProcessPriority(): number {
  let lowered = 0;
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        setPriority(Number(tid), 10);
        lowered++;
      } catch {
        // a thread that just ended
      }
    }
  } catch {
    // not Linux
  }
  return lowered;
}

function send(res: StoreResponse): void {
  process.send?.(res);
}

function serve(dataDir: string | null): void {
  let store: Store | null = null;
  const ready = openEmbeddedStore(dataDir).then((s) => {
    store = s;
    return s;
  });
  process.on('message', async (req: StoreRequest) => {
    try {
      const s = store ?? (await ready);
      const fn = s[req.method] as (...a: unknown[]) => Promise<unknown>;
      // appendEventBatches arrives as one JSON string (see embedded-process.ts)
      const args =
        req.method === 'appendEventBatches' && typeof req.args[0] === 'string'
          ? [JSON.parse(req.args[0])]
          : req.args;
      let value = await fn.apply(s, args);
      if (req.method === 'appendEventBatches' || req.method === 'appendEventTexts') {
        // errors inside results are values; make them cloneable with their identity
        value = (value as { ok: boolean; error?: unknown }[]).map((r) =>
          r.ok ? r : { ok: false, error: serializeError(r.error) },
        );
      }
      send({ id: req.id, ok: true, value });
    } catch (err) {
      send({ id: req.id, ok: false, error: serializeError(err) });
    }
  });
  ready.then(
    () => send({ id: 0, ok: true, value: 'ready' }),
    (err: unknown) => send({ id: 0, ok: false, error: serializeError(err) }),
  );
}

const [dirArg, mode] = process.argv.slice(2);
if (process.send && dirArg) {
  lowerProcessPriority();
  // the broker is gone (even SIGKILLed): close the database and leave; nobody is left to serve
  process.on('disconnect', () => process.exit(0));
  const dataDir = dirArg === ':memory:' ? null : dirArg;
  if (mode === '--init-only') {
    openEmbeddedStore(dataDir)
      .then((s) => s.close())
      .then(
        () => send({ id: 0, ok: true, value: 'initialized' }),
        (err: unknown) => send({ id: 0, ok: false, error: serializeError(err) }),
      )
      .finally(() => process.disconnect?.());
  } else {
    serve(dataDir);
  }
}
