// Transcript append cost of the embedded store, measured where it runs (what the store process does,
// here in this process so its CPU is counted): per event, for batches shaped like a busy gateway's
// group commits, handed over as the recorder does: as event texts made beforehand (in the broker's
// process). `npm run bench:store` (BENCH_BATCH, BENCH_BATCHES, BENCH_SESSIONS, BENCH_MEMORY=1)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewEvent } from '../service/audit/event.js';
import { eventText } from '../service/audit/event-text.js';
import { openEmbeddedStore } from '../service/store/embedded.js';
import { openPostgresStore } from '../service/store/postgres.js';
import type { Store } from '../service/store/store.js';
import { type PgServer, startPostgres } from '../test/fixtures/postgres.js';

const BATCH = Number(process.env.BENCH_BATCH ?? 70);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 300);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1);
const STORES =
  (process.env.BENCH_STORE ?? 'embedded') === 'both'
    ? ['embedded', 'postgres']
    : [process.env.BENCH_STORE ?? 'embedded'];

function statementEvent(i: number): NewEvent {
  return {
    target: 'bench',
    kind: 'pg.statement',
    // as the PostgreSQL gateway builds it (keys in sorted order)
    operation: {
      conn_id: 'pgc_0123456789ab',
      protocol: 'simple',
      statement: `SELECT abalance FROM pgbench_accounts WHERE aid = ${(i * 7919) % 100000};`,
      statement_kind: 'SELECT',
    },
    decision: 'allow',
    reasons: ['grant bench: access read allows SELECT'],
    rows: 1,
    bytes: 120,
    duration_ms: 0.153,
    masked: 0,
  };
}

async function main(): Promise<void> {
  for (const kind of STORES) await bench(kind);
}

async function bench(kind: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-bench-append-'));
  let server: PgServer | null = null;
  let store: Store;
  if (kind === 'postgres') {
    server = await startPostgres({
      settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' },
    });
    await server.psql('CREATE DATABASE hoop_store');
    store = await openPostgresStore(server.url('hoop_store'));
  } else {
    store = await openEmbeddedStore(process.env.BENCH_MEMORY === '1' ? null : dir);
  }
  try {
    await store.migrate();
    const now = new Date();
    const ids: string[] = [];
    for (let s = 0; s < SESSIONS; s++) {
      const id = `ses_bench${s}`;
      ids.push(id);
      await store.openSession(
        {
          id,
          secret_hash: 'x',
          scram_verifier: 'x',
          issuer: 'bench',
          identity: {},
          claims: {},
          policy: 'bench',
          grants: [],
          ssh_public_key: null,
          created_at: now,
          expires_at: new Date(now.getTime() + 3600_000),
          ended_at: null,
          end_reason: null,
        },
        { target: null, kind: 'session.opened', operation: {}, decision: 'allow', reasons: [] },
        { key: `bench:${id}`, expires_at: new Date(now.getTime() + 3600_000) },
      );
    }
    for (const warm of [true, false]) {
      const n = warm ? 20 : BATCHES;
      const at = new Date().toISOString();
      const batches = Array.from({ length: n }, (_, b) =>
        ids.map((sessionId) => ({
          sessionId,
          events: Array.from({ length: Math.ceil(BATCH / SESSIONS) }, (_, i) =>
            eventText(statementEvent(b * BATCH + i), at),
          ),
        })),
      );
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const batch of batches) await store.appendEventTexts!(batch);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const events = n * ids.length * Math.ceil(BATCH / SESSIONS);
      if (!warm)
        console.log(
          `${kind} store: ${events} events in batches of ${BATCH} over ${SESSIONS} sessions: ${Math.round((events * 1000) / ms)} events/s, ${((ms * 1000) / events).toFixed(1)} µs wall/event, ` +
            `${((cpu.user + cpu.system) / events).toFixed(1)} µs CPU/event (user ${(cpu.user / events).toFixed(1)}, sys ${(cpu.system / events).toFixed(1)}), ` +
            `${((ms * 1000) / n).toFixed(0)} µs/commit`,
        );
    }
  } finally {
    await store.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
