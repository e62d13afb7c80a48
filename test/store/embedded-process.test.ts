// The embedded store in its own process: same behaviour across the process boundary (dates, errors
// by class, durability across reopen), and the caller's event loop keeps turning during big commits.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../service/audit/event.js';
import { SessionEndedError, UnknownSessionError } from '../../service/store/errors.js';
import { openStore } from '../../service/store/open.js';
import { makeSession, openedEvent, statementEvent, tokenFor } from './store-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-store-process-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('embedded store process', () => {
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

  it('runs PGlite in a process of its own at a lower CPU priority, which exits when the broker is SIGKILLed', async () => {
    const holderDir = mkdtempSync(join(tmpdir(), 'hoop-store-holder-'));
    try {
      const holder = spawn(
        process.execPath,
        ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'store-holder.ts'), holderDir],
        { cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('children ')) resolve();
        });
        holder.once('exit', (code) => reject(new Error(`holder exited (${code})`)));
      });
      const session = /session (\S+)/.exec(out)![1]!;
      const pids = /children (\S+)/.exec(out)![1]!.split(',').map(Number);
      // the store process runs below normal priority (nice 10)
      const niceOf = (pid: number) =>
        Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
      expect(pids.map(niceOf)).toContain(10);
      holder.kill('SIGKILL');
      // orphaned, it notices the closed IPC channel and exits, releasing the data_dir
      const deadline = Date.now() + 10_000;
      while (
        pids.some((p) => existsSync(`/proc/${p}`) && !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8')))
      ) {
        if (Date.now() > deadline) throw new Error(`store process ${pids.join(',')} outlived the broker`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const store = await openStore({ dataDir: holderDir });
      try {
        expect((await store.getSession(session))?.id).toBe(session);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(holderDir, { recursive: true, force: true });
    }
  });
});
