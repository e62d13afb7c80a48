// The on-disk embedded store across restarts: reopen, the data_dir lock, a SIGKILLed writer, openStore.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../service/audit/event.js';
import { openEmbeddedStore } from '../../service/store/embedded.js';
import { MIGRATIONS } from '../../service/store/migrations.js';
import { openStore } from '../../service/store/open.js';
import type { SqlStore } from '../../service/store/sql-store.js';
import { makeSession, openedEvent, statementEvent, tokenFor } from './store-suite.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-store-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// These tests run in order on one data_dir: a fresh one costs an initdb (seconds), a reopen does not.
describe('embedded store on disk', () => {
  const dir = tempDir();
  const s = makeSession();

  it('keeps sessions and events across close and reopen, and continues the chain', async () => {
    let store: SqlStore = await openEmbeddedStore(dir);
    await store.migrate();
    await store.openSession(s, openedEvent(s), tokenFor());
    const written = await store.appendEvents(s.id, [statementEvent('select 1'), statementEvent('select 2')]);
    await store.close();

    store = await openEmbeddedStore(dir);
    try {
      expect(await store.migrateWithResult()).toEqual({ applied: [], version: MIGRATIONS.length });
      expect(await store.getSession(s.id)).toEqual(s);
      const events = await store.listEvents(s.id);
      expect(events.slice(1)).toEqual(written);
      const [next] = await store.appendEvents(s.id, [statementEvent('select 3')]);
      expect(next?.seq).toBe(4);
      expect(verifyChain(await store.listEvents(s.id)).ok).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('keeps the database files private and lets one process at a time open a data_dir', async () => {
    const store = await openEmbeddedStore(dir);
    try {
      expect(statSync(join(dir, 'store')).mode & 0o777).toBe(0o700);
      await expect(openEmbeddedStore(dir)).rejects.toThrow(/in use by process \d+/);
    } finally {
      await store.close();
    }
  });

  it('takes over a lock file left by a process that is gone', async () => {
    // pid 2^22+1 is above Linux's pid_max default; no such process exists
    writeFileSync(join(dir, 'store.lock'), '4194305 some-old-boot 12345\n');
    const store = await openEmbeddedStore(dir);
    expect(await store.getSession(s.id)).toEqual(s);
    await store.close();
  });

  it('loses nothing acknowledged when the process is killed (SIGKILL) mid-stream', async () => {
    const writer = join(import.meta.dirname, 'fixtures', 'crash-writer.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', writer, dir], {
      cwd: join(import.meta.dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, sig) => resolve(sig)),
    );
    expect(signal, err).toBe('SIGKILL');
    const lines = out.trim().split('\n');
    const session = lines.find((l) => l.startsWith('session '))?.split(' ')[1];
    const acked = lines.filter((l) => l.startsWith('acked ')).map((l) => Number(l.split(' ')[1]));
    expect(session).toBeDefined();
    expect(acked.length).toBeGreaterThanOrEqual(25);

    // The dead writer's lock is taken over and PostgreSQL recovers from its WAL.
    const store = await openEmbeddedStore(dir);
    try {
      const events = await store.listEvents(session!);
      expect(events.length).toBeGreaterThanOrEqual(Math.max(...acked));
      expect(verifyChain(events).ok).toBe(true);
      // both kinds of chunk were written and read back: bodies in rows and in the transcript file
      const lines = readFileSync(join(dir, 'transcripts', '000001.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean);
      const inFile = new Set(
        lines.flatMap((l) => {
          try {
            const body = JSON.parse(l) as { session_id: string; first_seq: number };
            return body.session_id === session ? [body.first_seq] : [];
          } catch {
            return []; // a torn last line: the kill came mid-write
          }
        }),
      );
      expect(inFile.size).toBeGreaterThan(0);
      expect(events.filter((e) => !inFile.has(e.seq)).length).toBeGreaterThan(1);
    } finally {
      await store.close();
    }
  });

  it('openStore opens the embedded store in data_dir when no url is set, migrated', async () => {
    const store = await openStore({ dataDir: dir });
    try {
      expect(store.kind).toBe('embedded');
      expect(await store.getSession(s.id)).toEqual(s);
      const other = makeSession();
      expect((await store.openSession(other, openedEvent(other), tokenFor())).ok).toBe(true);
    } finally {
      await store.close();
    }
  });
});
