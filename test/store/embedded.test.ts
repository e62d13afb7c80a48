import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, describe, expect, it } from 'vitest';
import { openEmbeddedStore, storeOnPGlite } from '../../service/store/embedded.js';
import { checkMigrationList, MIGRATIONS } from '../../service/store/migrations.js';
import { registerStoreSuite } from './store-suite.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-store-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

registerStoreSuite('embedded store, in memory', async () => {
  const db = await PGlite.create();
  const store = storeOnPGlite(db);
  return {
    store,
    query: async <Row>(text: string, params: unknown[] = []) => (await db.query<Row>(text, params)).rows,
    close: () => store.close(),
  };
});

registerStoreSuite('embedded store, on disk', async () => {
  const dir = tempDir();
  let store = await openEmbeddedStore(dir);
  return {
    get store() {
      return store;
    },
    // The store holds the directory: close it, edit the files with a plain PGlite, reopen (which also
    // checks that everything written so far survives a restart).
    query: async <Row>(text: string, params: unknown[] = []) => {
      await store.close();
      const db = await PGlite.create({ dataDir: join(dir, 'store') });
      try {
        return (await db.query<Row>(text, params)).rows;
      } finally {
        await db.close();
        store = await openEmbeddedStore(dir);
      }
    },
    close: () => store.close(),
  };
});

describe('migration list', () => {
  it('is numbered 1..n with names and SQL', () => {
    expect(() => checkMigrationList(MIGRATIONS)).not.toThrow();
    expect(() => checkMigrationList([{ version: 2, name: 'x', sql: 'SELECT 1' }])).toThrow(/expected 1/);
  });
});
