// Issue 12, item 6: under heavy CPU load the target's shared catalog connection timed out, and every
// statement waiting on the catalog, in every session on that target, was denied. A catalog exchange is
// read-only, so a transport failure (timeout, connection gone) is retried once on a new connection.
// Reproduced here with a TCP relay between the gateway and the real server that swallows the answers
// of the first catalog connection once it is past its startup: the masked statement must come back
// masked, not denied, and the relay must have seen a second catalog connection.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, startGatewayHarness, TARGET } from '../../fixtures/pg-gateway-harness.js';
import { cells, msg, openWire } from '../../fixtures/pg-wire.js';

interface StallingRelay {
  server: Server;
  /** catalog connections seen (their startup names application_name "hoop-broker catalog") */
  catalogConnections: number;
  /** catalog connections whose answers were swallowed after startup */
  stalled: number;
  /** how many catalog connections still to stall */
  stallNext: number;
  /** swallow the answers of the catalog connections open now, from here on */
  stallLive(): void;
}

function startRelay(pgPort: number): Promise<{ relay: StallingRelay; port: number }> {
  const relay: StallingRelay = {
    server: createServer(),
    catalogConnections: 0,
    stalled: 0,
    stallNext: 0,
    stallLive() {
      for (const c of live) {
        c.stall = true;
        c.pastStartup = true;
        relay.stalled++;
      }
    },
  };
  const sockets = new Set<Socket>();
  const live = new Set<{ stall: boolean; pastStartup: boolean }>();
  relay.server.on('connection', (client) => {
    const upstream = connect(pgPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let sawStartup = false;
    const state = { stall: false, pastStartup: false };
    let pending = Buffer.alloc(0);
    client.on('data', (chunk) => {
      if (!sawStartup) {
        sawStartup = true;
        if (chunk.includes('hoop-broker catalog')) {
          relay.catalogConnections++;
          live.add(state);
          upstream.on('close', () => live.delete(state));
          if (relay.stallNext > 0) {
            relay.stallNext--;
            relay.stalled++;
            state.stall = true;
          }
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!state.stall) return void client.write(chunk);
      if (state.pastStartup) return; // swallowed: the server answered, the gateway never hears it
      // forward whole messages up to and including the first ReadyForQuery (startup complete)
      pending = Buffer.concat([pending, chunk]);
      let pos = 0;
      while (pending.length - pos >= 5) {
        const end = pos + 1 + pending.readInt32BE(pos + 1);
        if (end > pending.length) break;
        const type = pending[pos];
        client.write(pending.subarray(pos, end));
        pos = end;
        if (type === 0x5a) {
          state.pastStartup = true;
          return;
        }
      }
      pending = pending.subarray(pos);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  relay.server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  return new Promise((resolve) =>
    relay.server.listen(0, '127.0.0.1', () => {
      const addr = relay.server.address();
      resolve({ relay, port: typeof addr === 'object' && addr ? addr.port : 0 });
    }),
  );
}

let h: GatewayHarness;
let relay: StallingRelay;

beforeAll(async () => {
  h = await startGatewayHarness({
    // a catalog exchange gives up after 1.5 s (the default is 10 s)
    limits: { upstreamConnectTimeoutMs: 1500 },
    upstreamVia: async (pgPort) => {
      const r = await startRelay(pgPort);
      relay = r.relay;
      return r.port;
    },
  });
});
afterAll(async () => {
  await h?.close();
  relay?.server.close();
});

describe('a catalog connection that stops answering', () => {
  it('is retried once on a new connection: the masked statement is served masked, not denied', async () => {
    const s = h.createSession({ mask: [{ column: 'customers.email' }] });
    relay.stallNext = 1;
    const w = await openWire({ port: h.port, user: s.id, password: s.secret, database: TARGET, tls: true });
    const started = Date.now();
    w.send(msg.query('SELECT id, email FROM customers ORDER BY id'));
    const r = await w.readyAfter(1);
    const errors = r.frames.filter((f) => f.type === 'E');
    expect(errors).toEqual([]);
    const rows = r.frames.filter((f) => f.type === 'D').map((f) => cells(f));
    expect(rows.map((row) => row[0])).toEqual(['1', '2', '3']);
    for (const row of rows) expect(row[1] ?? '').not.toContain('@example');
    // the first catalog connection timed out (1.5 s) and a second one answered
    expect(relay.stalled).toBe(1);
    expect(relay.catalogConnections).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    w.close();
  }, 30_000);

  it('a catalog that fails twice in a row still fails closed: the statement is refused', async () => {
    const s = h.createSession({ mask: [{ column: 'customers.card' }] });
    // a relation the catalog has not read yet: the gateway must read it before answering
    await h.adminSql(
      'CREATE TABLE stall_probe (id int, secret text); INSERT INTO stall_probe VALUES (1, $$x$$)',
    );
    await h.adminSql('GRANT SELECT ON stall_probe TO app_user');
    const before = relay.stalled;
    relay.stallLive();
    relay.stallNext = 1;
    const w = await openWire({ port: h.port, user: s.id, password: s.secret, database: TARGET, tls: true });
    w.send(msg.query('SELECT id, secret FROM stall_probe'));
    const r = await w.readyAfter(1);
    expect(r.frames.filter((f) => f.type === 'D')).toEqual([]);
    expect(r.frames.some((f) => f.type === 'E')).toBe(true);
    expect(relay.stalled - before).toBe(2);
    relay.stallNext = 0;
    // and the session keeps working once the catalog answers again
    w.send(msg.query('SELECT id, secret FROM stall_probe'));
    const again = await w.readyAfter(1);
    expect(again.frames.filter((f) => f.type === 'D').map((f) => cells(f))).toEqual([['1', 'x']]);
    w.close();
  }, 40_000);
});
