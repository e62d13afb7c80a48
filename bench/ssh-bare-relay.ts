// The floor for bench/ssh.ts: a minimal ssh2 server → ssh2 client relay with no policy, no framing,
// no recording, no session lookup: any public key is accepted, each session channel's exec or
// subsystem is opened upstream and the two channels are piped (Node's pipe: flow control by
// write()/drain, as the gateway's relay does). The same ciphers as the gateway on both legs, so what
// the gateway costs beyond this is the gateway's own work; what this costs is ssh2 and the second
// leg's crypto. Benchmark-only: never started by the broker.
//
// It runs in a process of its own (bench/ssh.ts spawns this file with the upstream as JSON in
// BARE_RELAY_UPSTREAM and reads the port from its first line of output), so the broker's process and
// its CPU figures hold only the broker's work.
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import ssh2, { type ClientChannel, type ServerChannel } from 'ssh2';
import { FAST_CIPHERS } from '../service/gateways/ssh/upstream.js';

export interface BareRelay {
  port: number;
  close(): Promise<void>;
}

function pipeBoth(client: ServerChannel, up: ClientChannel): void {
  client.pipe(up);
  // not ended by the pipe: the exit status goes first, once the last data is out (scp checks it)
  up.pipe(client, { end: false });
  up.stderr.pipe(client.stderr, { end: false });
  up.once('close', (code: unknown) => {
    client.write(Buffer.alloc(0), () => {
      if (typeof code === 'number') client.exit(code);
      client.end();
    });
  });
  client.once('close', () => up.close());
}

export async function startBareRelay(upstream: {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey: string;
}): Promise<BareRelay> {
  const { utils } = ssh2;
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  const pinned = (() => {
    const k = utils.parseKey(upstream.hostKey);
    if (k instanceof Error) throw k;
    return (Array.isArray(k) ? k[0] : k).getPublicSSH();
  })();
  const server = new ssh2.Server(
    { hostKeys: [hostKey], algorithms: { cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] } },
    (conn) => {
      (conn as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
      conn.on('authentication', (ctx) =>
        ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey']),
      );
      conn.on('error', () => undefined);
      conn.on('ready', () => {
        const up = new ssh2.Client();
        up.on('error', () => conn.end());
        conn.on('close', () => up.end());
        const ready = new Promise<void>((resolve) => up.once('ready', () => resolve()));
        up.connect({
          host: upstream.host,
          port: upstream.port,
          username: upstream.user,
          privateKey: upstream.privateKey,
          algorithms: { cipher: [...FAST_CIPHERS] },
          hostVerifier: (key: Buffer) => pinned.equals(key),
        });
        up.setNoDelay(true);
        conn.on('session', (accept) => {
          const session = accept();
          // accepted at once, as the gateway does (session-channel.ts #claimStart): ssh2 refuses an
          // accept that comes after the client's EOF (`ssh host cmd </dev/null` sends it at once)
          session.on('exec', (acc, _rej, info) => {
            const ch = acc();
            ch.pause();
            void ready.then(() =>
              up.exec(info.command, (err, upCh) => (err ? ch.close() : pipeBoth(ch, upCh))),
            );
          });
          session.on('subsystem', (acc, _rej, info) => {
            const ch = acc();
            ch.pause();
            void ready.then(() =>
              up.subsys(info.name, (err, upCh) => (err ? ch.close() : pipeBoth(ch, upCh))),
            );
          });
        });
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const upstream = JSON.parse(process.env.BARE_RELAY_UPSTREAM ?? '{}') as Parameters<
    typeof startBareRelay
  >[0];
  void startBareRelay(upstream).then((relay) => {
    process.stdout.write(`${relay.port}\n`);
    process.on('SIGTERM', () => void relay.close().then(() => process.exit(0)));
  });
}
