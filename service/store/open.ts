// Choose the store from the config: PostgreSQL when `store.url` is set, else the embedded store in
// data_dir, in a process of its own (see embedded-server.ts).

import { openPostgresStore, type PostgresStoreOptions } from './postgres.js';
import type { Store } from './store.js';
import { openEmbeddedStoreProcess } from './embedded-process.js';

export interface OpenStoreOptions {
  /** store.url, secret already resolved; absent = embedded */
  url?: string;
  /** data_dir; the embedded store lives in `${dataDir}/store`; null = an in-memory embedded store (tests) */
  dataDir: string | null;
  /** pool and TLS settings when `url` is set */
  postgres?: PostgresStoreOptions;
}

/** Open and migrate. On a migration failure the store is closed again and the error rethrown. */
export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const store = opts.url
    ? await openPostgresStore(opts.url, opts.postgres)
    : await openEmbeddedStoreProcess(opts.dataDir);
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
