// The recorder group-commits: events of many sessions queued within the window go out in one store
// transaction, in order per session, and each caller learns when its own event is durable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NewEvent, verifyChain } from '../../service/audit/event.js';
import { TranscriptRecorder } from '../../service/audit/recorder.js';
import { createLogger } from '../../service/log.js';
import { PGlite } from '@electric-sql/pglite';
import { storeOnPGlite } from '../../service/store/embedded.js';
import { openStore } from '../../service/store/open.js';
import type { EventBatch, EventTextBatch, Store } from '../../service/store/store.js';
import { makeSession, openedEvent, tokenFor } from '../store/store-suite.js';

const stmt = (sql: string): NewEvent => ({
  target: 'db',
  kind: 'pg.statement',
  operation: { sql },
  decision: 'allow',
  reasons: [],
});

/** The event an event text (eventText) was made from: its three parts joined by commas are its JSON. */
const eventOf = (text: string): NewEvent => JSON.parse(text.split('\n').join(',')) as NewEvent;

describe('TranscriptRecorder', () => {
  /** two open sessions of `store`, the second then revoked */
  async function liveAndEnded() {
    const [live, ended] = [makeSession(), makeSession()];
    for (const s of [live, ended]) await store.openSession(s, openedEvent(s), tokenFor());
    await store.endSession(ended.id, new Date(), 'revoked', {
      target: null,
      kind: 'session.revoked',
      operation: {},
      decision: 'info',
      reasons: [],
    });
    return [live, ended] as const;
  }

  let store: Store;
  const batches: EventTextBatch[][] = [];
  beforeAll(async () => {
    // the embedded store in its process: the recorder hands it each event as its text (eventText)
    const real = await openStore({ dataDir: null });
    expect(real.appendEventTexts).toBeTypeOf('function');
    const appendEventTexts = real.appendEventTexts!.bind(real);
    real.appendEventTexts = async (b) => {
      batches.push(b.map((x) => ({ sessionId: x.sessionId, events: [...x.events] })));
      return appendEventTexts(b);
    };
    real.appendEventBatches = () => Promise.reject(new Error('the recorder should send event texts'));
    store = real;
  });
  afterAll(async () => store?.close());

  it('writes events of several sessions queued together in one transaction, ordered per session', async () => {
    const sessions = [makeSession(), makeSession(), makeSession()];
    for (const s of sessions) expect((await store.openSession(s, openedEvent(s), tokenFor())).ok).toBe(true);
    const recorder = new TranscriptRecorder(store, createLogger('silent'), { flushDelayMs: 20 });
    batches.length = 0;
    const written = await Promise.all(
      Array.from({ length: 30 }, (_, i) => recorder.record(sessions[i % 3]!.id, stmt(`select ${i}`))),
    );
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((b) => b.events.length)).toEqual([10, 10, 10]);
    for (const [i, e] of written.entries()) {
      expect(e.session_id).toBe(sessions[i % 3]!.id);
      expect(e.seq).toBe(Math.floor(i / 3) + 2);
    }
    for (const s of sessions) {
      const events = await store.listEvents(s.id);
      expect(events.map((e) => e.operation.sql ?? e.kind)).toEqual([
        'session.opened',
        ...Array.from({ length: 10 }, (_, k) => `select ${k * 3 + sessions.indexOf(s)}`),
      ]);
      expect(verifyChain(events).ok).toBe(true);
    }
    await recorder.close();
  });

  it('lets background events wait for their longer window; an awaited event takes them along at once', async () => {
    const s = makeSession();
    expect((await store.openSession(s, openedEvent(s), tokenFor())).ok).toBe(true);
    const recorder = new TranscriptRecorder(store, createLogger('silent'), {
      flushDelayMs: 10,
      backgroundDelayMs: 400,
    });
    batches.length = 0;
    const t0 = performance.now();
    const background = [1, 2, 3].map((i) => recorder.record(s.id, stmt(`select ${i}`), { background: true }));
    await new Promise((r) => setTimeout(r, 100));
    expect(batches).toHaveLength(0); // still waiting for company
    const denial = await recorder.record(s.id, { ...stmt('drop table t'), decision: 'deny' });
    expect(performance.now() - t0).toBeLessThan(350);
    expect(denial.seq).toBe(5);
    expect((await Promise.all(background)).map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(batches).toHaveLength(1);
    // a text's three parts joined by commas are the event's JSON
    expect(batches[0]![0]!.events.map((e) => eventOf(e).operation.sql)).toEqual([
      'select 1',
      'select 2',
      'select 3',
      'drop table t',
    ]);
    // alone, a background event waits for its whole window
    const t1 = performance.now();
    await recorder.record(s.id, stmt('select 4'), { background: true });
    expect(performance.now() - t1).toBeGreaterThanOrEqual(390);
    expect(batches).toHaveLength(2);
    await recorder.close();
  });

  it('commits an immediate event (before_forward) without the flush delay, taking the queue along', async () => {
    const s = makeSession();
    expect((await store.openSession(s, openedEvent(s), tokenFor())).ok).toBe(true);
    const recorder = new TranscriptRecorder(store, createLogger('silent'), {
      flushDelayMs: 1000,
      backgroundDelayMs: 2000,
    });
    batches.length = 0;
    const t0 = performance.now();
    const background = recorder.record(s.id, stmt('select 1'), { background: true });
    const first = await recorder.record(s.id, stmt('insert 1'), { immediate: true });
    expect(performance.now() - t0).toBeLessThan(800); // not the 1 s flush delay (generous: loaded machine)
    expect(first.seq).toBe(3);
    expect((await background).seq).toBe(2);
    // several at once share a commit (what arrives during a commit goes in the next one, at once)
    const t1 = performance.now();
    const many = await Promise.all(
      [1, 2, 3, 4].map((i) => recorder.record(s.id, stmt(`insert ${i + 1}`), { immediate: true })),
    );
    expect(performance.now() - t1).toBeLessThan(800);
    expect(many.map((e) => e.seq)).toEqual([4, 5, 6, 7]);
    expect(batches.length).toBeLessThanOrEqual(3);
    await recorder.close();
  });

  it('hands a store without appendEventTexts the events themselves', async () => {
    const local = storeOnPGlite(await PGlite.create());
    try {
      await local.migrate();
      local.appendEventTexts = undefined as unknown as typeof local.appendEventTexts;
      const objects: EventBatch[][] = [];
      const appendEventBatches = local.appendEventBatches.bind(local);
      local.appendEventBatches = (b) => {
        objects.push(b as EventBatch[]);
        return appendEventBatches(b);
      };
      const s = makeSession();
      await local.openSession(s, openedEvent(s), tokenFor());
      const recorder = new TranscriptRecorder(local, createLogger('silent'), { flushDelayMs: 5 });
      const awkward = {
        ...stmt('select 1'),
        rows: undefined,
        operation: { sql: 'select 1', nested: { b: 1, a: [2] } },
      };
      const [first, second] = await Promise.all([
        recorder.record(s.id, awkward),
        recorder.record(s.id, stmt('select 2'), { background: true }),
      ]);
      expect([first.seq, second.seq]).toEqual([2, 3]);
      expect(objects.flat().flatMap((b) => b.events)).toHaveLength(2);
      const events = await local.listEvents(s.id);
      expect(events[1]!.operation).toEqual(awkward.operation);
      expect(verifyChain(events).ok).toBe(true);
      await recorder.close();
    } finally {
      await local.close();
    }
  });

  it('recordBackground reports by callback, once, never before returning; an ended session gets the error', async () => {
    const [live, ended] = await liveAndEnded();
    const recorder = new TranscriptRecorder(store, createLogger('silent'), {
      flushDelayMs: 5,
      backgroundDelayMs: 20,
    });
    const calls: Array<[string, unknown, number]> = [];
    let returned = false;
    const settled = new Promise<void>((resolve) => {
      let n = 0;
      const done = (who: string) => (err: unknown, seq: number) => {
        expect(returned).toBe(true);
        calls.push([who, err, seq]);
        if (++n === 3) resolve();
      };
      recorder.recordBackground(live.id, stmt('select 1'), done('live-1'));
      recorder.recordBackground(ended.id, stmt('select 2'), done('ended'));
      recorder.recordBackground(live.id, stmt('select 3'), done('live-2'));
      returned = true;
    });
    await settled;
    expect(calls.find((c) => c[0] === 'live-1')).toEqual(['live-1', null, 2]);
    expect(calls.find((c) => c[0] === 'live-2')).toEqual(['live-2', null, 3]);
    const refused = calls.find((c) => c[0] === 'ended')!;
    expect(refused[1]).toBeInstanceOf(Error);
    expect(String(refused[1])).toMatch(/ended/);
    await recorder.close();
    // closed: still a callback, still not before returning
    let after = false;
    const late = new Promise<unknown>((resolve) => {
      recorder.recordBackground(live.id, stmt('select 4'), (err) => resolve([after, err]));
      after = true;
    });
    const [wasAfter, err] = (await late) as [boolean, unknown];
    expect(wasAfter).toBe(true);
    expect(String(err)).toMatch(/recorder is closed/);
  });

  it('rejects the events of an ended session only, and flushes what is queued on close', async () => {
    const [live, ended] = await liveAndEnded();
    const recorder = new TranscriptRecorder(store, createLogger('silent'), { flushDelayMs: 1000 });
    const ok = recorder.record(live.id, stmt('select 1'));
    const refused = recorder.record(ended.id, stmt('select 2'));
    const closing = recorder.close(); // must not wait for the 1 s window
    await expect(ok).resolves.toMatchObject({ seq: 2 });
    await expect(refused).rejects.toThrow(/ended/);
    await closing;
    await expect(recorder.record(live.id, stmt('select 3'))).rejects.toThrow('recorder is closed');
  });
});
