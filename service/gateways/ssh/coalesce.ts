// One socket write per turn of the event loop, not three per ssh packet.
//
// ssh2 (without its optional native addon, which we do not build) encrypts an AES-GCM packet in three
// pieces and hands each to socket.write on its own: the 4-byte length, the ciphertext, the 16-byte
// tag. With TCP_NODELAY each write is a syscall and a TCP segment of its own: bench/ssh.ts counted
// 3.0 socket writes per ssh packet, ~110 per MB copied on the sending leg, on the broker and on a bare
// ssh2 relay alike. Corking the socket on its first write of a turn and uncorking it on the next tick
// gathers everything written in that turn (every packet of every channel, from one read of the other
// side) into one writev. The bytes and their order are unchanged; nothing waits longer than the
// current turn, so an interactive keystroke or an exit status is not delayed.
import type { Socket } from 'node:net';

export function coalesceWrites(sock: Socket): Socket {
  const write = sock.write.bind(sock) as (...args: unknown[]) => boolean;
  let corked = false;
  const release = () => {
    corked = false;
    // end() uncorks on its own; never uncork more than we corked
    if (sock.writableCorked > 0) sock.uncork();
  };
  sock.write = ((...args: unknown[]) => {
    if (!corked && !sock.writableEnded && !sock.destroyed) {
      corked = true;
      sock.cork();
      process.nextTick(release);
    }
    return write(...args);
  }) as Socket['write'];
  return sock;
}
