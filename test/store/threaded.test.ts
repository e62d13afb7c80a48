// The embedded store on its worker thread: same behaviour across the thread boundary (dates, errors
// by class, durability across reopen), and the caller's event loop keeps turning during big commits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../service/audit/event.js';
import { SessionEndedError, UnknownSessionError } from '../../service/store/errors.js';
import { openStore } from '../../service/store/open.js';
import { makeSession, openedEvent, statementEvent, tokenFor } from './store-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-threaded-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('threaded embedded store', () => {
  it('round-trips sessions and events, revives store errors, and keeps data across reopen', async () => {
    const store = await openStore({ dataDir: dir });
    const s = makeSession();
    const opened = await store.openSession(s, openedEvent(s), tokenFor());
    expect(opened.ok).toBe(true);
    const back = await store.getSession(s.id);
    expect(back?.expires_at).toBeInstanceOf(Date);
    expect(back?.expires_at.getTime()).toBe(s.expires_at.getTime());
    await expect(store.appendEvents('ses_nope', [statementEvent('select 1')])).rejects.toBeInstanceOf(
      UnknownSessionError,
    );
    const [r] = await store.appendEventBatches([{ sessionId: s.id, events: [statementEvent('select 1')] }]);
    expect(r?.ok).toBe(true);
    await store.endSession(s.id, new Date(), 'revoked', {
      target: null,
      kind: 'session.revoked',
      operation: {},
      decision: 'info',
      reasons: [],
    });
    const [refused] = await store.appendEventBatches([
      { sessionId: s.id, events: [statementEvent('select 2')] },
    ]);
    expect(refused?.ok).toBe(false);
    expect(refused && !refused.ok && refused.error).toBeInstanceOf(SessionEndedError);
    await store.close();
    await store.close(); // idempotent

    const again = await openStore({ dataDir: dir });
    const events = await again.listEvents(s.id);
    expect(events.map((e) => e.kind)).toEqual(['session.opened', 'pg.statement', 'session.revoked']);
    expect(verifyChain(events).ok).toBe(true);
    await again.close();
  });

  it('does not stall the event loop while it commits a large batch', async () => {
    const store = await openStore({ dataDir: null });
    const s = makeSession();
    await store.openSession(s, openedEvent(s), tokenFor());
    let ticks = 0;
    let worstGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
      ticks++;
    }, 2);
    const t0 = performance.now();
    await store.appendEvents(
      s.id,
      Array.from({ length: 2000 }, (_, i) => statementEvent(`select ${i}`)),
    );
    const took = performance.now() - t0;
    clearInterval(timer);
    await store.close();
    // the commit itself takes tens of ms; the loop kept ticking through it
    expect(took).toBeGreaterThan(20);
    expect(ticks).toBeGreaterThan(3);
    expect(worstGap).toBeLessThan(took);
  });
});
