// Bytes between a client's channel and the upstream's, both ways, with flow control: a write that
// returns false (the other side's window is used up, its buffer full) pauses the reading side until
// 'drain'. ssh2 grants a channel's peer a window only as its reader consumes data, so a paused side
// stops its sender: a 1 GB `cat` never sits in the broker, at most a couple of windows per channel.
import type { Duplex, Readable, Writable } from 'node:stream';
import type { ClientChannel, ServerChannel } from 'ssh2';

function pump(from: Readable, to: Writable, count: (n: number) => void, tap?: (d: Buffer) => void): void {
  from.on('data', (d: Buffer) => {
    count(d.length);
    tap?.(d);
    if (!to.write(d)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.resume(); // it may have been paused while the channel's start was decided
}

/** What the upstream said about its command's end: an exit status, or the signal that ended it. */
export interface UpstreamExit {
  code?: number;
  /** as ssh2 names it: "SIGTERM" */
  signal?: string;
  coreDumped?: boolean;
  message?: string;
}

/**
 * Call `then` with the upstream channel's exit once it closed. The exit is read from the 'close'
 * event's arguments (ssh2 passes the channel's recorded exit-status or exit-signal), never from a
 * separate 'exit' listener: when the server's whole answer (data, EOF, exit-status, close) comes in
 * one read, ssh2 parses it in one go, right after the exec's reply, and emits 'exit' before the code
 * awaiting that reply could listen; the status was lost and OpenSSH then reported 255. 'close' waits
 * for the channel's data to be read, so it always comes after a listener is there.
 */
export function onUpstreamClose(upstream: ClientChannel, then: (exit: UpstreamExit) => void): void {
  upstream.once('close', (...args: unknown[]) => {
    const [code, signal, coreDumped, message] = args;
    const exit: UpstreamExit = {};
    if (typeof code === 'number') exit.code = code;
    else if (typeof signal === 'string' && signal !== '') {
      exit.signal = signal;
      exit.coreDumped = coreDumped === true;
      if (typeof message === 'string') exit.message = message;
    }
    then(exit);
  });
}

/** Relay an upstream's exit to the client's channel (nothing when the upstream said nothing). */
export function sendExit(client: ServerChannel, exit: UpstreamExit): void {
  if (exit.code !== undefined) client.exit(exit.code);
  else if (exit.signal !== undefined) {
    try {
      client.exit(exit.signal, exit.coreDumped === true, exit.message ?? '');
    } catch {
      // a signal name ssh2 does not know (the protocol allows "name@domain" ones): no status, as OpenSSH's
      // own clients report an unknown end
    }
  }
}

/** How a command or shell ended, as the upstream said. */
export interface ChannelExit {
  exit_code?: number;
  signal?: string;
  /** bytes from the client (stdin) */
  bytes_in: number;
  /** bytes to the client (stdout and stderr) */
  bytes_out: number;
}

export interface SessionRelayTaps {
  /** stdout and stderr, as they pass */
  output?(data: Buffer): void;
  /** stdin, as it passes */
  input?(data: Buffer): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Call `then` once everything written to `w` so far has gone out: an empty write queued behind the
 * data completes only after it (a 'drain' would not come when no write had returned false).
 */
export function afterQueued(w: Writable, then: () => void): void {
  if (w.writableLength === 0 || w.destroyed || w.writableEnded) return then();
  w.write(EMPTY, () => then());
}

/**
 * Relay an exec or shell channel. Resolves when both sides are closed, with the exit status or
 * signal, relayed to the client after all its output went out (an exit-status ahead of the last
 * bytes would be legal, but some clients stop reading at it).
 */
export function relaySession(
  client: ServerChannel,
  upstream: ClientChannel,
  taps: SessionRelayTaps = {},
): Promise<ChannelExit> {
  const result: ChannelExit = { bytes_in: 0, bytes_out: 0 };
  const out = (n: number) => {
    result.bytes_out += n;
  };
  pump(upstream, client, out, taps.output);
  pump(upstream.stderr, client.stderr, out, taps.output);
  pump(
    client,
    upstream,
    (n) => {
      result.bytes_in += n;
    },
    taps.input,
  );
  client.on('end', () => upstream.end());
  return new Promise<ChannelExit>((resolve) => {
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    onUpstreamClose(upstream, (status) => {
      if (status.code !== undefined) result.exit_code = status.code;
      else if (status.signal !== undefined) result.signal = status.signal;
      afterQueued(client, () =>
        afterQueued(client.stderr, () => {
          // exit-status (or exit-signal), then EOF and close (end() sends both): the client's order
          if (client.writable) {
            sendExit(client, status);
            client.end();
          }
          finish();
        }),
      );
    });
    // the client went away first (its ssh was killed): close the upstream channel too
    client.on('close', () => {
      upstream.close();
      finish();
    });
  });
}

/** Relay a forwarded TCP channel; resolves when either side closed both. */
export function relayForward(
  client: Duplex,
  upstream: Duplex,
): Promise<{ bytes_in: number; bytes_out: number }> {
  const result = { bytes_in: 0, bytes_out: 0 };
  pump(client, upstream, (n) => {
    result.bytes_in += n;
  });
  pump(upstream, client, (n) => {
    result.bytes_out += n;
  });
  client.on('end', () => upstream.end());
  upstream.on('end', () => client.end());
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      client.destroy();
      upstream.destroy();
      resolve(result);
    };
    client.on('close', finish);
    upstream.on('close', finish);
    client.on('error', finish);
    upstream.on('error', finish);
  });
}
