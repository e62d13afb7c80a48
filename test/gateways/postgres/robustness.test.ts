// Protocol robustness: truncated, oversized, malformed and garbage messages, stalled and vanishing
// clients, pipelining with denials. The broker answers with typed errors, survives, and other
// connections are unaffected.
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, startGatewayHarness } from '../../fixtures/pg-gateway-harness.js';
import { collectFrames, errorFields, frame, isReady, psql, rawSession, sleep, tcp } from './helpers.js';

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(async () => {
  await h?.close();
});

async function stillServes(): Promise<void> {
  const s = h.createSession();
  const r = await psql(h, s, ['-At', '-c', 'SELECT 7']);
  expect(r.stdout.trim()).toBe('7');
}

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(50);
  }
  return false;
}

describe('before authentication', () => {
  it('survives truncated startup packets and clients that vanish', async () => {
    for (const bytes of [
      Buffer.from([0, 0]),
      Buffer.from([0, 0, 0, 40, 0, 3, 0, 0, 0x75]),
      Buffer.alloc(0),
    ]) {
      const sock = await tcp(h.port);
      sock.end(bytes);
    }
    expect(await waitFor(() => h.gateway.connectionCount() === 0)).toBe(true);
    await stillServes();
  });

  it('refuses garbage and oversized startup packets with 08P01', async () => {
    for (const [bytes, message] of [
      [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /invalid length of startup packet/],
      [Buffer.from([0, 0x10, 0, 0, 0, 3, 0, 0]), /invalid length of startup packet \(1048576\)/],
      [Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), /invalid length of startup packet/],
    ] as const) {
      const sock = await tcp(h.port);
      const got = collectFrames(sock, () => false, 3000);
      sock.write(bytes);
      const { frames, closed } = await got;
      expect(closed).toBe(true);
      expect(errorFields(frames[0]!)).toMatchObject({ S: 'FATAL', C: '08P01' });
      expect(errorFields(frames[0]!).M).toMatch(message);
    }
    await stillServes();
  });

  it('refuses plaintext sent after SSLRequest (no injection into the TLS session)', async () => {
    const sock = await tcp(h.port);
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    const got = collectFrames(sock, () => false, 3000);
    sock.write(Buffer.concat([ssl, serialize.query('SELECT 1')]));
    const { frames, closed } = await got;
    expect(closed).toBe(true);
    expect(errorFields(frames[0]!)).toMatchObject({
      C: '08P01',
      M: 'hoop: received unencrypted data after SSL request',
    });
  });
});

describe('after authentication', () => {
  it('refuses an oversized message from its header with a FATAL 08P01', async () => {
    const conn = await rawSession(h.port, h.createSession());
    const got = collectFrames(conn.socket, () => false, 3000);
    const header = Buffer.alloc(5);
    header.write('Q', 0, 'latin1');
    header.writeInt32BE(200 * 1024 * 1024, 1);
    conn.socket.write(header);
    const { frames, closed } = await got;
    expect(closed).toBe(true);
    expect(errorFields(frames[0]!)).toMatchObject({ S: 'FATAL', C: '08P01' });
    expect(errorFields(frames[0]!).M).toMatch(/exceeds the broker's limit of 67108864 bytes/);
    await stillServes();
  });

  it('refuses an unknown message type with a FATAL 08P01', async () => {
    const conn = await rawSession(h.port, h.createSession());
    const got = collectFrames(conn.socket, () => false, 3000);
    conn.socket.write(frame('z', 'whatever'));
    const { frames, closed } = await got;
    expect(closed).toBe(true);
    expect(errorFields(frames[0]!)).toMatchObject({
      S: 'FATAL',
      C: '08P01',
      M: 'hoop: invalid frontend message type "z"',
    });
  });

  it('answers a malformed but well-framed message with a plain ERROR and stays usable', async () => {
    const s = h.createSession();
    const conn = await rawSession(h.port, s);
    let got = collectFrames(conn.socket, isReady);
    conn.socket.write(frame('Q', Buffer.from('SELECT 1\0; DROP TABLE customers\0')));
    let { frames } = await got;
    expect(frames.map((f) => f.type)).toEqual(['E', 'Z']);
    expect(errorFields(frames[0]!)).toMatchObject({ S: 'ERROR', C: '08P01' });
    got = collectFrames(conn.socket, (_f, all) => all.filter(isReady).length === 2);
    conn.socket.write(
      Buffer.concat([frame('B', Buffer.from([0, 0, 0])), serialize.sync(), serialize.query('SELECT 5')]),
    );
    ({ frames } = await got);
    expect(frames.map((f) => f.type)).toEqual(['E', 'Z', 'T', 'D', 'C', 'Z']);
    expect(frames[3]!.body.toString('latin1', 6)).toBe('5');
    conn.socket.destroy();
  });

  it('closes a client that stalls in the middle of a message', async () => {
    const g = await h.startGateway({ limits: { midMessageTimeoutMs: 300 } });
    const conn = await rawSession(g.port, h.createSession());
    const got = collectFrames(conn.socket, () => false, 5000);
    conn.socket.write(serialize.query('SELECT 1').subarray(0, 7));
    const started = Date.now();
    const { frames, closed } = await got;
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(errorFields(frames[0]!)).toMatchObject({
      S: 'FATAL',
      C: '08P01',
      M: 'hoop: incomplete message not finished within 300 ms',
    });
  });

  it('frees the upstream backend when a client disconnects mid-query', async () => {
    const conn = await rawSession(h.port, h.createSession());
    conn.socket.write(
      serialize.query('SELECT count(*) FROM generate_series(1, 500000000) AS mid_query_marker'),
    );
    const running = async () =>
      (
        await h.adminSql(
          "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%mid_query_marker%' AND pid <> pg_backend_pid()",
        )
      ).trim();
    expect(await waitFor(async () => (await running()) === '1')).toBe(true);
    conn.socket.destroy();
    expect(await waitFor(async () => (await running()) === '0')).toBe(true);
    await stillServes();
  });

  it('keeps responses in order for pipelined simple queries with a denial in the middle', async () => {
    const conn = await rawSession(h.port, h.createSession());
    const got = collectFrames(conn.socket, (_f, all) => all.filter(isReady).length === 3);
    conn.socket.write(
      Buffer.concat([
        serialize.query('SELECT 1'),
        serialize.query('DELETE FROM orders'),
        serialize.query('SELECT 3'),
      ]),
    );
    const { frames } = await got;
    expect(frames.map((f) => f.type).join('')).toBe('TDCZEZTDCZ');
    expect(errorFields(frames[4]!)).toMatchObject({ S: 'ERROR', C: '42501' });
    expect(frames[7]!.body.toString('latin1', 6)).toBe('3');
    conn.socket.destroy();
  });

  it('skips the rest of an extended batch after a denied Parse and rolls back its implicit transaction', async () => {
    const s = h.createSession({ access: 'write', deny: [{ statement: ['DROP'] }] });
    const conn = await rawSession(h.port, s);
    const got = collectFrames(conn.socket, (_f, all) => all.filter(isReady).length === 2);
    conn.socket.write(
      Buffer.concat([
        serialize.parse({ text: 'INSERT INTO orders VALUES (50, 1, 1)' }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.parse({ name: 'drop_it', text: 'DROP TABLE orders' }),
        serialize.bind({ statement: 'drop_it' }),
        serialize.execute({}),
        serialize.sync(),
        serialize.parse({ text: 'SELECT count(*) FROM orders WHERE id = 50' }),
        serialize.bind({}),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    const { frames } = await got;
    expect(frames.map((f) => f.type).join('')).toBe('12CEZ12TDCZ');
    expect(errorFields(frames[3]!)).toMatchObject({ C: '42501' });
    expect(errorFields(frames[3]!).M).toContain('DROP TABLE denied by policy rule');
    expect(frames[8]!.body.toString('latin1', 6)).toBe('0'); // the INSERT was rolled back with the batch
    conn.socket.destroy();
    expect((await h.adminSql('SELECT count(*) FROM orders WHERE id = 50')).trim()).toBe('0');
  });

  it('refuses a FunctionCall of an OID that names no function, and stays usable', async () => {
    const conn = await rawSession(h.port, h.createSession({ access: 'write' }));
    const got = collectFrames(conn.socket, (_f, all) => all.filter(isReady).length === 2);
    // FunctionCall: function OID 1 (no function has it), no argument formats, no arguments, text result
    // (function-call.test.ts calls real functions)
    const body = Buffer.alloc(10);
    body.writeInt32BE(1, 0);
    conn.socket.write(Buffer.concat([frame('F', body), serialize.query('SELECT 8')]));
    const { frames } = await got;
    expect(frames.map((f) => f.type).join('')).toBe('EZTDCZ');
    expect(errorFields(frames[0]!)).toMatchObject({ S: 'ERROR', C: '42501' });
    expect(errorFields(frames[0]!).M).toContain(
      'FUNCTION CALL denied by policy rule "protocol: FunctionCall"',
    );
    conn.socket.destroy();
  });

  it('closes cleanly on Terminate and records why', async () => {
    const s = h.createSession();
    const conn = await rawSession(h.port, s);
    const closed = new Promise((resolve) => conn.socket.on('close', resolve));
    conn.socket.write(frame('X', Buffer.alloc(0)));
    await closed;
    expect(await waitFor(() => h.events(s.id).some((e) => e.kind === 'pg.connection.closed'))).toBe(true);
    expect(h.events(s.id).at(-1)?.operation).toMatchObject({ reason: 'client terminated' });
  });
});
