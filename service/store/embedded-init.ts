// Creates a new data directory's embedded database (PGlite runs initdb on first open), then exits.
// Run as a child process by threaded.ts: initdb grows the WASM heap to several hundred MB, and neither a
// WASM heap nor the C allocator's arenas give memory back; in a process of its own, all of it is
// returned when the process ends. Reports over IPC: {ok: true} or {ok: false, error}.
import { openEmbeddedStore } from './embedded.js';
import { serializeError } from './embedded-worker.js';

const dataDir = process.argv[2];
if (dataDir && process.send) {
  const send = process.send.bind(process);
  openEmbeddedStore(dataDir)
    .then((store) => store.close())
    .then(
      () => send({ ok: true }, () => process.exit(0)),
      (err: unknown) => send({ ok: false, error: serializeError(err) }, () => process.exit(1)),
    );
}
