// Retention: the pruner removes what is past `retention` once exported, counts it in a metric and logs a
// line per prune; a broker with `retention` in its config runs it.
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRetention, RetentionPruner } from '../../service/audit/retention.js';
import { loadConfigText } from '../../service/config/load.js';
import { createLogger } from '../../service/log.js';
import { openStore } from '../../service/store/open.js';
import type { Store } from '../../service/store/store.js';
import { makeSession, openedEvent, tokenFor } from '../store/store-suite.js';

let store: Store;
beforeAll(async () => {
  store = await openStore({ dataDir: null });
});
afterAll(async () => {
  await store?.close();
});

describe('retention', () => {
  it('parses days and hours, and the config accepts retention: 90d (not 90m)', () => {
    expect(parseRetention('90d')).toBe(90 * 86_400_000);
    expect(parseRetention('36h')).toBe(36 * 3_600_000);
    expect(parseRetention('90m')).toBeNull();
    const base =
      'listen: { http: { port: 0 } }\nissuers: [{ name: g, issuer: "https://token.actions.githubusercontent.com", audience: a }]\ntargets: []\npolicies: []\n';
    expect(loadConfigText(`${base}retention: 90d\n`, 'x').ok).toBe(true);
    const bad = loadConfigText(`${base}retention: 90m\n`, 'x');
    expect(bad.ok).toBe(false);
  });

  it('prunes sessions past retention, counts them and logs a line per prune', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const registry = new Registry();
    const s = makeSession();
    await store.openSession(s, openedEvent(s), tokenFor());
    await store.endSession(s.id, new Date(), 'revoked', {
      target: null,
      kind: 'session.revoked',
      operation: {},
      decision: 'info',
      reasons: [],
    });
    const pruner = new RetentionPruner({
      store,
      retentionMs: 86_400_000,
      sinks: [],
      logger: createLogger('info', sink),
      registry,
      now: () => new Date(Date.now() + 2 * 86_400_000),
    });
    const r = await pruner.prune();
    expect(r.sessions).toBeGreaterThanOrEqual(1);
    expect(await store.getSession(s.id)).toBeNull();
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/hoop_retention_pruned_total\{kind="sessions"\} [1-9]/);
    expect(lines.find((l) => l.msg === 'retention prune')).toMatchObject({
      sessions: r.sessions,
      waiting_for_export: [],
    });
    // a second prune finds nothing, and says so
    expect((await pruner.prune()).sessions).toBe(0);
    expect(lines.filter((l) => l.msg === 'retention prune')).toHaveLength(2);
    await pruner.close();
  });
});
