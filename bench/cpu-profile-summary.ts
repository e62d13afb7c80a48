// Summarise a V8 .cpuprofile (from `BENCH_PROFILE_DIR=… npm run bench:pg`, which runs the gateway child
// under --cpu-prof): with no window, the share of non-idle samples per second of the profile (to find
// the seconds one pgbench run covered); with a window, self and inclusive time of the top frames in it.
//
//   node --import tsx bench/cpu-profile-summary.ts PROFILE.cpuprofile            # busy share per second
//   node --import tsx bench/cpu-profile-summary.ts PROFILE.cpuprofile 23 30 [N]   # top N frames, seconds 23–30
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, fromArg, toArg, topArg] = process.argv.slice(2);
if (!file) throw new Error('usage: cpu-profile-summary.ts PROFILE.cpuprofile [FROM_S TO_S [N]]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parents = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
const label = (f: CallFrame) =>
  `${f.functionName || '(anonymous)'} ${f.url.split('/').pop() ?? ''}:${f.lineNumber}`;
const at: number[] = [];
let clock = 0;
for (const d of profile.timeDeltas) at.push((clock += d) / 1e6);

if (fromArg === undefined) {
  const seconds = new Map<number, { all: number; busy: number }>();
  profile.samples.forEach((id, i) => {
    const s = Math.floor(at[i]!);
    const e = seconds.get(s) ?? { all: 0, busy: 0 };
    e.all++;
    if (nodes.get(id)!.callFrame.functionName !== '(idle)') e.busy++;
    seconds.set(s, e);
  });
  for (const [s, e] of seconds) console.log(`${s}s ${Math.round((100 * e.busy) / e.all)}% busy`);
} else {
  const from = Number(fromArg);
  const to = Number(toArg ?? Infinity);
  const top = Number(topArg ?? 40);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    if (at[i]! < from || at[i]! > to) return;
    const d = profile.timeDeltas[i]!;
    total += d;
    const frame = nodes.get(id)!.callFrame;
    if (frame.functionName === '(idle)') {
      idle += d;
      return;
    }
    self.set(label(frame), (self.get(label(frame)) ?? 0) + d);
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parents.get(n)) {
      const l = label(nodes.get(n)!.callFrame);
      if (seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + d);
    }
  });
  const pct = (v: number) => `${((100 * v) / total).toFixed(1).padStart(5)}%`;
  console.log(
    `${(total / 1e6).toFixed(2)} s sampled, ${pct(idle)} idle; shares of all samples in the window`,
  );
  for (const [title, map] of [
    ['self', self],
    ['inclusive', inclusive],
  ] as const) {
    console.log(`-- ${title}`);
    for (const [k, v] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(pct(v), k);
  }
}
