// Bench only: a transcript recorder whose hash chain runs on a worker thread (batched), to measure
// the gateway with recording that does not compete with the event loop. Same chainEvent as the store.
import { parentPort } from 'node:worker_threads';
import { chainEvent, type NewEvent, type TranscriptEvent } from '../service/audit/event.js';

const heads = new Map<string, TranscriptEvent>();
parentPort?.on('message', (batch: { id: number; events: Array<[string, NewEvent]> }) => {
  for (const [sessionId, ev] of batch.events)
    heads.set(sessionId, chainEvent(heads.get(sessionId) ?? null, sessionId, ev, new Date()));
  parentPort?.postMessage(batch.id);
});
