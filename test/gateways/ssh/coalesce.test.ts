// coalesceWrites: what ssh2 writes in one turn of the event loop leaves as one writev, bytes and order
// unchanged, over a real loopback socket.
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../../service/gateways/ssh/coalesce.js';

interface Pair {
  sender: Socket;
  received: () => Buffer;
  close: () => void;
}

async function pair(): Promise<Pair> {
  const chunks: Buffer[] = [];
  const server = createServer((s) => s.on('data', (d: Buffer) => chunks.push(d)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const sender = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(sender, 'connect');
  return {
    sender,
    received: () => Buffer.concat(chunks),
    close: () => {
      sender.destroy();
      server.close();
    },
  };
}

/** Count the socket's calls into the handle: one _write or one _writev is one syscall's worth. */
function countHandleWrites(sock: Socket): { writes: number; pieces: number } {
  const n = { writes: 0, pieces: 0 };
  const s = sock as unknown as {
    _write: (...a: unknown[]) => void;
    _writev: (chunks: unknown[], cb: unknown) => void;
  };
  const w = s._write.bind(sock);
  const wv = s._writev.bind(sock);
  s._write = (...a: unknown[]) => {
    n.writes++;
    n.pieces++;
    w(...a);
  };
  s._writev = (chunks: unknown[], cb: unknown) => {
    n.writes++;
    n.pieces += chunks.length;
    wv(chunks, cb);
  };
  return n;
}

const waitFor = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

describe('coalesceWrites', () => {
  let p: Pair | null = null;
  afterEach(() => {
    p?.close();
    p = null;
  });

  it('sends the writes of one turn as one writev, in order', async () => {
    p = await pair();
    const sock = coalesceWrites(p.sender);
    const n = countHandleWrites(sock);
    // an ssh packet as ssh2 writes it without its addon: length, ciphertext, tag
    const parts = [Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 0xab), Buffer.alloc(16, 0xcd)];
    for (let k = 0; k < 3; k++) for (const b of parts) sock.write(b);
    await waitFor(() => p!.received().length === 3 * 52);
    expect(n.writes).toBe(1);
    expect(n.pieces).toBe(9);
    expect(p.received()).toEqual(Buffer.concat([...parts, ...parts, ...parts]));
  });

  it('delays nothing past the turn: writes of separate turns go out separately', async () => {
    p = await pair();
    const sock = coalesceWrites(p.sender);
    const n = countHandleWrites(sock);
    sock.write(Buffer.from('a'));
    await new Promise((r) => setImmediate(r));
    expect(n.writes).toBe(1); // already handed to the kernel, before any later turn
    sock.write(Buffer.from('b'));
    sock.write(Buffer.from('c'));
    await waitFor(() => p!.received().length === 3);
    expect(n.writes).toBe(2);
    expect(p.received().toString()).toBe('abc');
  });

  it('leaves a cork of its owner alone and survives end() within the turn', async () => {
    p = await pair();
    const sock = coalesceWrites(p.sender);
    sock.cork(); // the owner's own cork: still corked after our release
    sock.write(Buffer.from('x'));
    await new Promise((r) => setImmediate(r));
    expect(sock.writableCorked).toBe(1);
    sock.uncork();
    sock.write(Buffer.from('y'));
    sock.end(Buffer.from('z'));
    await new Promise((r) => setImmediate(r));
    expect(sock.writableCorked).toBe(0);
    await waitFor(() => p!.received().toString() === 'xyz');
  });
});
