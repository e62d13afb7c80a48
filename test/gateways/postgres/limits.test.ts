// Broker-wide limits on what one client can pin (issue 12): a message must arrive whole within the
// message timeout of its first byte (one byte every few hundred ms kept a 64 MiB buffer alive), and
// unfinished messages across connections share one byte budget. Through the real gateway.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, startGatewayHarness, TARGET } from '../../fixtures/pg-gateway-harness.js';
import { cells, fields, msg, openWire, type Wire } from '../../fixtures/pg-wire.js';

let h: GatewayHarness;
const MiB = 1024 * 1024;

beforeAll(async () => {
  h = await startGatewayHarness({
    limits: { midMessageTimeoutMs: 1000, maxUnfinishedBytesTotal: 3 * MiB },
  });
});
afterAll(async () => {
  await h?.close();
});

async function connect(): Promise<Wire> {
  const s = h.createSession({ access: 'read' });
  return openWire({ port: h.port, user: s.id, password: s.secret, database: TARGET, tls: true });
}

/** the first bytes of a Query message that claims `length` bytes */
function partialQuery(length: number, have: number): Buffer {
  const head = Buffer.alloc(5);
  head.write('Q', 0, 'latin1');
  head.writeInt32BE(length, 1);
  return Buffer.concat([head, Buffer.alloc(have, 0x20)]);
}

describe('broker-wide limits', () => {
  it('a message trickled in byte by byte is cut off at the message timeout of its first byte', async () => {
    const w = await connect();
    const started = Date.now();
    w.send(partialQuery(1000, 10));
    const trickle = setInterval(() => w.send(Buffer.from(' ')), 200);
    const r = await w.read(() => false, 5000);
    clearInterval(trickle);
    const elapsed = Date.now() - started;
    expect(r.closed).toBe(true);
    expect(elapsed).toBeLessThan(3000);
    const err = r.frames.find((f) => f.type === 'E');
    expect(err && fields(err).M).toMatch(/incomplete message not finished within 1000 ms/);
  });

  it('a client streaming whole messages is not cut off however long it streams', async () => {
    const w = await connect();
    const started = Date.now();
    let n = 0;
    while (Date.now() - started < 2500) {
      // each chunk ends inside the next message: the deadline restarts with every whole message
      const next = msg.query(`SELECT ${n}`);
      w.send(Buffer.concat([next.subarray(0, 3)]));
      await new Promise((r) => setTimeout(r, 150));
      w.send(next.subarray(3));
      n++;
    }
    const r = await w.readyAfter(n, 5000);
    w.close();
    expect(r.closed).toBe(false);
    expect(r.frames.filter((f) => f.type === 'D')).toHaveLength(n);
  });

  it('unfinished messages share one byte budget; a full budget refuses the large one, not ordinary statements', async () => {
    const holders: Wire[] = [];
    for (let i = 0; i < 2; i++) {
      const w = await connect();
      w.send(partialQuery(10 * MiB, 1.2 * MiB));
      holders.push(w);
    }
    await new Promise((r) => setTimeout(r, 200));
    const third = await connect();
    third.send(partialQuery(10 * MiB, 1.2 * MiB));
    const refused = await third.read(() => false, 3000);
    expect(refused.closed).toBe(true);
    const err = refused.frames.find((f) => f.type === 'E');
    expect(err && fields(err).C).toBe('53200');
    expect(err && fields(err).M).toMatch(/limits\.unfinished_message_bytes/);
    // an ordinary statement still runs meanwhile
    const other = await connect();
    other.send(msg.query('SELECT 42'));
    const ok = await other.readyAfter(1);
    expect(ok.frames.filter((f) => f.type === 'D').map((f) => cells(f)[0])).toEqual(['42']);
    other.close();
    for (const w of holders) w.close();
  });
});
