// Benchmark-only instrumentation for bench/ssh.ts (BENCH_SSH_COUNT=1): counts, per leg, what a copy
// costs in ssh2 and socket terms. Loaded with `--import` into the bench's process (the broker) and the
// bare relay's child; never imported by the service. It wraps, on their prototypes:
//   - Channel#_write: writes the relay's JS makes to a channel (calls, bytes)
//   - Protocol#channelData / channelExtData: ssh packets of channel data sent (calls, bytes)
//   - Protocol#channelWindowAdjust: window adjusts sent
//   - Channel#push: channel data received (ssh packets' payloads handed to the stream)
//   - net.Socket#write: ssh packets handed to the socket (ssh2 writes each packet on its own)
//   - net.Socket#_write / _writev: what the socket then gives libuv (one write syscall attempt each)
// Legs: "client" is the broker's ssh server side (its sockets were accepted by a server), "upstream"
// the broker's ssh client to the target. snapshot() returns the totals; SIGUSR2 prints them on stderr
// as one line `#counters {json}` (how bench/ssh.ts reads the bare relay child's).
import { createRequire } from 'node:module';
import net from 'node:net';

type Leg = 'client' | 'upstream';
interface LegCounts {
  chanWrites: number;
  chanWriteBytes: number;
  dataPackets: number;
  dataBytes: number;
  windowAdjusts: number;
  pushes: number;
  pushBytes: number;
  sockWrites: number;
  sockWriteBytes: number;
  handleWrites: number;
  handleWritev: number;
  pauses: number;
  resumes: number;
}
const zero = (): LegCounts => ({
  chanWrites: 0,
  chanWriteBytes: 0,
  dataPackets: 0,
  dataBytes: 0,
  windowAdjusts: 0,
  pushes: 0,
  pushBytes: 0,
  sockWrites: 0,
  sockWriteBytes: 0,
  handleWrites: 0,
  handleWritev: 0,
  pauses: 0,
  resumes: 0,
});
const counts: Record<Leg, LegCounts> = { client: zero(), upstream: zero() };

export function snapshot(): { client: LegCounts; upstream: LegCounts; cpuMs: number } {
  const cpu = process.cpuUsage();
  return {
    client: { ...counts.client },
    upstream: { ...counts.upstream },
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/** b - a, per field */
export function delta(a: ReturnType<typeof snapshot>, b: ReturnType<typeof snapshot>) {
  const d = (x: LegCounts, y: LegCounts) =>
    Object.fromEntries(Object.keys(x).map((k) => [k, y[k as keyof LegCounts] - x[k as keyof LegCounts]]));
  return { client: d(a.client, b.client), upstream: d(a.upstream, b.upstream), cpuMs: b.cpuMs - a.cpuMs };
}

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const { Channel } = require('ssh2/lib/Channel.js') as { Channel: Any };
const Protocol = require('ssh2/lib/protocol/Protocol.js') as Any;

const chanLeg = (ch: Any): Leg => (ch.server ? 'client' : 'upstream');
const protoLeg = (p: Any): Leg => (p._server ? 'client' : 'upstream');
const sockLeg = (s: Any): Leg | null => (s._sshLeg as Leg | undefined) ?? null;

function wrap(proto: Any, name: string, before: (self: Any, args: Any[]) => void): void {
  const orig = proto[name] as (...a: Any[]) => Any;
  proto[name] = function (this: Any, ...args: Any[]) {
    before(this, args);
    return orig.apply(this, args);
  };
}

wrap(Channel.prototype, '_write', (ch, [data]) => {
  const c = counts[chanLeg(ch)];
  c.chanWrites++;
  c.chanWriteBytes += (data as Buffer).length;
});
wrap(Channel.prototype, 'push', (ch, [data]) => {
  if (!data) return;
  const c = counts[chanLeg(ch)];
  c.pushes++;
  c.pushBytes += (data as Buffer).length;
});
wrap(Channel.prototype, 'pause', (ch) => counts[chanLeg(ch)].pauses++);
wrap(Channel.prototype, 'resume', (ch) => counts[chanLeg(ch)].resumes++);
for (const m of ['channelData', 'channelExtData'])
  wrap(Protocol.prototype, m, (p, [, data]) => {
    const c = counts[protoLeg(p)];
    c.dataPackets++;
    c.dataBytes += (data as Buffer).length;
  });
wrap(Protocol.prototype, 'channelWindowAdjust', (p) => counts[protoLeg(p)].windowAdjusts++);

// a socket's leg: accepted by a server (the ssh listener) or not (ssh2's Client); only sockets that
// carry ssh are counted: tagged on their first write, which for ssh is the identification line
const SocketProto = net.Socket.prototype as Any;
wrap(SocketProto, 'write', (s, [data]) => {
  if (s._sshLeg === undefined) {
    const first = Buffer.isBuffer(data) ? data.subarray(0, 4).toString('latin1') : String(data).slice(0, 4);
    s._sshLeg = first === 'SSH-' ? (s.server ? 'client' : 'upstream') : null;
  }
  const leg = sockLeg(s);
  if (!leg) return;
  counts[leg].sockWrites++;
  counts[leg].sockWriteBytes += typeof data === 'string' ? Buffer.byteLength(data) : (data as Buffer).length;
});
wrap(SocketProto, '_write', (s) => {
  const leg = sockLeg(s);
  if (leg) counts[leg].handleWrites++;
});
wrap(SocketProto, '_writev', (s) => {
  const leg = sockLeg(s);
  if (leg) counts[leg].handleWritev++;
});

process.on('SIGUSR2', () => {
  process.stderr.write(`#counters ${JSON.stringify(snapshot())}\n`);
});
(globalThis as Any).__sshCounters = { snapshot, delta };
