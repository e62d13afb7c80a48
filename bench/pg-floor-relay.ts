// The floor for a recording PostgreSQL proxy in Node.js on this machine (bench/pg.ts, its "floor"
// column): the bare relay's byte copies plus the least that per-statement recording needs, and nothing
// else. It frames both directions (a reply can only be told apart by its frame), remembers each
// statement's text (Query; Parse, Bind and Execute of the extended protocol), and when the server
// completes a statement hands one pg.statement event, the broker's own shape, to the broker's own
// recorder (TranscriptRecorder, eventText, the embedded store in its process), after the answer went out.
//
// No policy, no masking, no authentication of its own (the client authenticates to PostgreSQL through
// it, as through the bare relay), one statement per Query: it is a measuring device, not a gateway.
// What separates the broker from it is the broker's policy, masking and protocol model; what separates
// it from the bare relay is what recording every statement costs at the least.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { NewEvent } from '../service/audit/event.js';
import type { Settle } from '../service/audit/recorder.js';

export interface FloorRecorder {
  recordBackground(sessionId: string, event: NewEvent, done: Settle): void;
}

interface Statement {
  text: string;
  protocol: 'simple' | 'extended';
  startedAt: number;
}

/** Splits a byte stream into PostgreSQL messages (type byte + int32 length), across chunks. */
class Framer {
  private stash: Buffer | null = null;
  /** the first message has no type byte (the startup packet; only the client side) */
  constructor(private untyped: boolean) {}

  /** Calls `each(type, body)` for every whole message; keeps the rest for the next chunk. */
  feed(chunk: Buffer, each: (type: number, buf: Buffer, start: number, end: number) => void): void {
    let buf = chunk;
    if (this.stash) {
      buf = Buffer.concat([this.stash, chunk]);
      this.stash = null;
    }
    let pos = 0;
    while (this.untyped) {
      if (buf.length - pos < 4) break;
      const len = buf.readInt32BE(pos);
      if (buf.length - pos < len) break;
      const code = buf.readInt32BE(pos + 4);
      pos += len;
      // SSLRequest / GSSENCRequest are followed by another untyped packet; a startup packet ends it
      if (code !== 80877103 && code !== 80877104) this.untyped = false;
    }
    while (!this.untyped && buf.length - pos >= 5) {
      const end = pos + 1 + buf.readInt32BE(pos + 1);
      if (end > buf.length) break;
      each(buf[pos]!, buf, pos + 5, end);
      pos = end;
    }
    if (pos < buf.length) this.stash = Buffer.from(buf.subarray(pos));
  }
}

const cstring = (buf: Buffer, start: number): [string, number] => {
  const nul = buf.indexOf(0, start);
  return [buf.toString('utf8', start, nul), nul + 1];
};

export function startFloorRelay(
  upstreamPort: number,
  sessionId: string,
  target: string,
  recorder: FloorRecorder,
  /** copy bytes only, in this process (the bare relay where the floor runs: tells the process from the work) */
  bare = false,
): Promise<Server> {
  let connSeq = 0;
  const server = createServer({ noDelay: true }, (client: Socket) => {
    const connId = `floor-${++connSeq}`;
    const upstream = connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
    const fromClient = new Framer(true);
    const fromServer = new Framer(false);
    const prepared = new Map<string, string>();
    const portals = new Map<string, string>();
    const running: Statement[] = [];
    const done: NewEvent[] = [];
    const settle: Settle = (err) => {
      if (err) client.destroy();
    };

    if (bare) {
      client.on('data', (chunk: Buffer) => {
        if (!upstream.write(chunk)) client.pause();
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!client.write(chunk)) upstream.pause();
      });
    } else {
      client.on('data', (chunk: Buffer) => {
        fromClient.feed(chunk, (type, buf, start, end) => {
          if (type === 0x51 /* Q */) {
            running.push({
              text: buf.toString('utf8', start, end - 1),
              protocol: 'simple',
              startedAt: performance.now(),
            });
          } else if (type === 0x50 /* P */) {
            const [name, at] = cstring(buf, start);
            prepared.set(name, cstring(buf, at)[0]);
          } else if (type === 0x42 /* B */) {
            const [portal, at] = cstring(buf, start);
            portals.set(portal, prepared.get(cstring(buf, at)[0]) ?? '');
          } else if (type === 0x45 /* E */) {
            const text = portals.get(cstring(buf, start)[0]) ?? '';
            running.push({ text, protocol: 'extended', startedAt: performance.now() });
          }
        });
        if (!upstream.write(chunk)) client.pause();
      });
      upstream.on('data', (chunk: Buffer) => {
        let bytes = 0;
        fromServer.feed(chunk, (type, buf, start, end) => {
          if (type === 0x44 /* D */) bytes += end - start + 5;
          else if (type === 0x43 /* C */ || type === 0x45 /* E */) {
            const s = running.shift();
            if (!s) return;
            const tag = type === 0x43 ? buf.toString('latin1', start, end - 1) : '';
            const n = tag.lastIndexOf(' ');
            const event: NewEvent = {
              target,
              kind: 'pg.statement',
              operation: {
                conn_id: connId,
                protocol: s.protocol,
                statement: s.text,
                statement_kind: tag.slice(0, tag.indexOf(' ') >>> 0) || 'SELECT',
              },
              decision: 'allow',
              reasons: [],
              bytes,
              duration_ms: Math.round((performance.now() - s.startedAt) * 1000) / 1000,
              masked: 0,
            };
            if (n > 0) event.rows = Number(tag.slice(n + 1));
            done.push(event);
            bytes = 0;
          }
        });
        if (!client.write(chunk)) upstream.pause();
        // after the answer went out, as the broker does
        for (const ev of done) recorder.recordBackground(sessionId, ev, settle);
        done.length = 0;
      });
    }
    client.on('drain', () => upstream.resume());
    upstream.on('drain', () => client.resume());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
