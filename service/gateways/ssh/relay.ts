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
  upstream.on('exit', (code: number | null, signal?: string) => {
    if (typeof code === 'number') result.exit_code = code;
    else if (signal) result.signal = signal;
  });
  return new Promise<ChannelExit>((resolve) => {
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    upstream.on('close', () => {
      afterQueued(client, () =>
        afterQueued(client.stderr, () => {
          if (client.writable) {
            if (result.exit_code !== undefined) client.exit(result.exit_code);
            else if (result.signal !== undefined) client.exit(result.signal, false, '');
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
