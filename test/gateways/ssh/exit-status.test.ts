// Exit statuses and signals relayed, every time: many short commands through the broker, each one's
// status compared with what the command did. The race this guards: when sshd's whole answer (output,
// EOF, exit-status, close) arrived in one read, ssh2 emitted the upstream's 'exit' before the gateway
// listened for it, no exit-status went to the client, and OpenSSH reported 255.
import { readFileSync } from 'node:fs';
import { Client, type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JobSession, type SshHarness, startSshHarness } from './harness.js';

const RUNS = 100;
const SIGNALS = ['TERM', 'KILL', 'HUP', 'INT', 'USR1'];

/** The i-th command and the status it must end with: plain, with stdout, with stderr, reading stdin. */
function command(i: number): { command: string; code: number; input?: string; stdout: string } {
  const code = (i * 37) % 126;
  switch (i % 4) {
    case 0:
      return { command: `exit ${code}`, code, stdout: '' };
    case 1:
      return { command: `printf x${i}; exit ${code}`, code, stdout: `x${i}` };
    case 2:
      return { command: `printf err >&2; exit ${code}`, code, stdout: '' };
    default:
      return { command: `cat; exit ${code}`, code, input: `in${i}`, stdout: `in${i}` };
  }
}

const signalCommand = (name: string) => `kill -${name} $$`;

let h: SshHarness;

beforeAll(async () => {
  const exact = Array.from({ length: RUNS }, (_, i) => ({ exact: command(i).command }));
  h = await startSshHarness({
    grants: {
      push: {
        access: 'write',
        ssh: { commands: { allow: [...exact, ...SIGNALS.map((s) => ({ exact: signalCommand(s) }))] } },
      },
    },
  });
});
afterAll(async () => h?.close());

/** An ssh2 client on the job's key: OpenSSH's ssh shows an exit-signal only as 255, this one names it. */
function connectAsJob(job: JobSession): Promise<Client> {
  const t = job.created.targets.find((x) => x.name === 'build-host')!;
  const c = t.connection as { host: string; port: number; user: string; host_key: string };
  const pinned = Buffer.from(c.host_key.split(' ')[1]!, 'base64');
  return new Promise((resolve, reject) => {
    const client = new Client();
    client
      .on('ready', () => resolve(client))
      .on('error', reject)
      .connect({
        host: c.host,
        port: c.port,
        username: c.user,
        privateKey: readFileSync(job.identityFile),
        hostVerifier: (key: Buffer) => key.equals(pinned),
      });
  });
}

function execEnd(
  client: Client,
  cmd: string,
): Promise<{ code: number | null | undefined; signal: string | undefined }> {
  return new Promise((resolve, reject) => {
    client.exec(cmd, (err, stream: ClientChannel) => {
      if (err) return reject(err);
      stream.resume();
      stream.stderr.resume();
      stream.on('close', (code?: number | null, signal?: string) => resolve({ code, signal }));
      stream.end();
    });
  });
}

describe('exit status relay', () => {
  it(`relays the exit status of ${RUNS} short commands, with and without output and stdin`, async () => {
    const job = await h.open('push');
    const wrong: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const c = command(i);
      const r = await job.ssh(['build-host', c.command], {
        ...(c.input !== undefined ? { input: c.input } : {}),
        timeoutMs: 30_000,
      });
      if (r.code !== c.code) wrong.push(`${c.command}: exit ${r.code} ${r.stderr.trim()}`);
      if (r.stdout !== c.stdout) wrong.push(`${c.command}: stdout ${JSON.stringify(r.stdout)}`);
    }
    expect(wrong).toEqual([]);
    const t = await job.transcriptWhen(
      (x) => x.events.filter((e) => e.kind === 'ssh.exec').length === RUNS,
      20_000,
    );
    const codes = t.events.filter((e) => e.kind === 'ssh.exec').map((e) => e.operation.exit_code);
    expect(codes).toEqual(Array.from({ length: RUNS }, (_, i) => command(i).code));
  }, 300_000);

  it('relays the signal that ended a command, as OpenSSH does (255) and by name to a client that reads it', async () => {
    const job = await h.open('push');
    // OpenSSH's ssh has no exit status to give for a signal: it exits 255, as it does direct
    for (const name of SIGNALS) {
      const r = await job.ssh(['build-host', signalCommand(name)]);
      expect(r.code).toBe(255);
    }
    const client = await connectAsJob(job);
    try {
      for (let round = 0; round < 4; round++) {
        for (const name of SIGNALS) {
          expect(await execEnd(client, signalCommand(name))).toEqual({ code: null, signal: `SIG${name}` });
        }
      }
    } finally {
      client.end();
    }
    const t = await job.transcriptWhen(
      (x) =>
        x.events.filter((e) => e.kind === 'ssh.exec' && e.operation.signal).length === SIGNALS.length * 5,
      20_000,
    );
    const signals = t.events
      .filter((e) => e.kind === 'ssh.exec' && e.operation.signal)
      .map((e) => e.operation.signal);
    expect(signals.slice(0, SIGNALS.length)).toEqual(SIGNALS.map((s) => `SIG${s}`));
  }, 120_000);
});
