import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../service/store/migrations.js';
import { openStore } from '../../service/store/open.js';
import { openPostgresStore } from '../../service/store/postgres.js';
import { freePort, type PgServer, startPostgres } from '../fixtures/postgres.js';
import { makeSession, openedEvent, registerStoreSuite, tokenFor } from './store-suite.js';

let server: PgServer;
let databases = 0;

/** A fresh, empty database on the shared server. */
async function freshDatabase(): Promise<string> {
  databases++;
  const name = `store_${databases}`;
  await server.psql(`CREATE DATABASE ${name}`);
  return server.url(name);
}

beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

registerStoreSuite(
  'PostgreSQL store',
  async () => {
    const url = await freshDatabase();
    const store = await openPostgresStore(url, { poolSize: 4 });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    return {
      store,
      query: async <Row>(text: string, params: unknown[] = []) =>
        (await admin.query(text, params)).rows as Row[],
      openReplica: () => openPostgresStore(url, { poolSize: 4 }),
      close: async () => {
        await admin.end();
        await store.close();
      },
    };
  },
  { replicas: true },
);

describe('PostgreSQL store: migrations across replicas', () => {
  it('replicas migrating a fresh database at the same time apply each version once', async () => {
    const url = await freshDatabase();
    const replicas = await Promise.all([1, 2, 3].map(() => openPostgresStore(url, { poolSize: 1 })));
    try {
      const results = await Promise.all(replicas.map((r) => r.migrateWithResult()));
      expect(results.flatMap((r) => r.applied).sort()).toEqual(MIGRATIONS.map((m) => m.version));
      expect(results.every((r) => r.version === MIGRATIONS.length)).toBe(true);
      const rows = await server.psql('SELECT count(*) FROM schema_migrations', url.split('/').pop());
      expect(rows.trim()).toBe(String(MIGRATIONS.length));
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  it('refuses a schema migrated by a newer broker', async () => {
    const url = await freshDatabase();
    const store = await openPostgresStore(url);
    try {
      await store.migrate();
      await server.psql(
        "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')",
        url.split('/').pop(),
      );
      await expect(store.migrate()).rejects.toThrow(
        'store schema has migration 999 (from the future), unknown to this broker: it was migrated by a newer version',
      );
    } finally {
      await store.close();
    }
  });
});

describe('PostgreSQL store: durable commits', () => {
  it('switches synchronous_commit on for its connections when the server has it off', async () => {
    const url = await freshDatabase();
    const db = url.split('/').pop();
    expect((await server.psql('SHOW synchronous_commit', db)).trim()).toBe('off'); // the test fixture's setting
    const store = await openPostgresStore(url, { poolSize: 2 });
    try {
      await store.migrate();
      // A trigger sees the setting of the session that writes: the store's own connection.
      await server.psql(
        `CREATE TABLE seen (setting text);
         CREATE FUNCTION note_setting() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO seen VALUES (current_setting('synchronous_commit')); RETURN NEW; END$$;
         CREATE TRIGGER note AFTER INSERT ON denials FOR EACH ROW EXECUTE FUNCTION note_setting();`,
        db,
      );
      await Promise.all(
        [1, 2, 3].map(() =>
          store.recordDenial({ at: new Date(), kind: 'token.invalid', reasons: [], detail: {} }),
        ),
      );
      expect((await server.psql('SELECT DISTINCT setting FROM seen', db)).trim()).toBe('on');
    } finally {
      await store.close();
    }
  });
});

describe('openPostgresStore / openStore', () => {
  it('openStore with a url opens PostgreSQL, migrated', async () => {
    const url = await freshDatabase();
    const store = await openStore({ url, dataDir: '/nonexistent/never-used' });
    try {
      expect(store.kind).toBe('postgres');
      const s = makeSession();
      expect((await store.openSession(s, openedEvent(s), tokenFor())).ok).toBe(true);
      expect(await store.getSession(s.id)).toEqual(s);
    } finally {
      await store.close();
    }
  });

  it('refuses a malformed or non-postgres url without echoing it (it carries the password)', async () => {
    await expect(openPostgresStore('not a url, password=hunter2')).rejects.toThrow(
      'store.url is not a valid URL (expected postgres://user:password@host:port/database)',
    );
    const err = await openPostgresStore('mysql://u:hunter2@db/x').catch((e: unknown) => e);
    expect(String(err)).toBe('Error: store.url must use postgres:// or postgresql://, not mysql://');
  });

  it('an unreachable server makes calls fail (and openStore fail cleanly), not the process', async () => {
    const port = await freePort();
    const url = `postgres://u:secret-pw@127.0.0.1:${port}/db`;
    const store = await openPostgresStore(url, { connectTimeoutMs: 2000 });
    const err = await store.ping().catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(String(err)).not.toContain('secret-pw');
    await store.close();
    await expect(openStore({ url, dataDir: '/nonexistent' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
