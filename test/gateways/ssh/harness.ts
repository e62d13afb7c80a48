// The ssh gateway end to end, the way a job uses it: a real sshd (test/fixtures/sshd.ts) as the target,
// the real broker with an ssh listener, sessions opened over the HTTP API with an OIDC token and the
// ephemeral key the action generates, and the ssh config, key and known_hosts the action writes
// (src/connect/ssh.ts), used by the real OpenSSH clients.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SessionCreated, Transcript } from '../../../service/api/schemas.js';
import type { Config, Grant } from '../../../service/config/schema.js';
import { generateSshKeyPair, knownHosts, sshConfig, sshSettings } from '../../../src/connect/ssh.js';
import { startBroker, type TestBroker } from '../../fixtures/broker.js';
import { type OidcIssuer, startOidcIssuer } from '../../fixtures/oidc-issuer.js';
import { type SshdServer, startSshd } from '../../fixtures/sshd.js';

const execFileAsync = promisify(execFile);
export const AUDIENCE = 'https://hoop.ssh.test';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A session as a job has it: the files the action wrote, and the clients run with them. */
export interface JobSession {
  created: SessionCreated;
  dir: string;
  configFile: string;
  identityFile: string;
  /** the ssh user name for a target (from the session's connection settings) */
  userFor(target: string): string;
  /** run a program with the job's environment (GIT_SSH_COMMAND set for git) */
  run(
    file: string,
    args: string[],
    opts?: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv },
  ): Promise<RunResult>;
  /** `ssh -F config <args>` */
  ssh(
    args: string[],
    opts?: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv },
  ): Promise<RunResult>;
  transcript(): Promise<Transcript>;
  /** the transcript once `ready` holds for it (events are recorded just after the client is answered) */
  transcriptWhen(ready: (t: Transcript) => boolean, timeoutMs?: number): Promise<Transcript>;
  revoke(): Promise<void>;
}

export interface SshHarness {
  sshd: SshdServer;
  broker: TestBroker;
  issuer: OidcIssuer;
  dir: string;
  /** the login's home on the target, where tests put files */
  home: string;
  /** open a session under the policy whose event_name this is */
  open(eventName: string, opts?: { ttl?: string }): Promise<JobSession>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** grants by event_name (each becomes a policy `when: {event_name}`), target `build-host` */
  grants:
    Record<string, Omit<Grant, 'target'>> | ((sshd: SshdServer) => Record<string, Omit<Grant, 'target'>>);
  /** extra targets (e.g. one whose pinned host key is wrong) with the grants that reach them */
  extraTargets?: (
    sshd: SshdServer,
    keyFile: string,
  ) => { targets: Config['targets']; grants: Record<string, Grant[]> };
  /** extra sshd_config lines */
  sshdConfig?: string[];
  /** listen.ssh.host_key (the broker's host key by reference); absent: generated in data_dir */
  brokerHostKey?: NonNullable<Config['listen']['ssh']>['host_key'];
  /** the broker's data_dir (kept: the caller removes it); absent: a fresh one */
  dataDir?: string;
  /** config.approvals (approver tokens by env reference) and the env they read */
  approvals?: { config: NonNullable<Config['approvals']>; env: Record<string, string> };
}

export async function startSshHarness(opts: HarnessOptions): Promise<SshHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-ssh-it-'));
  const upstreamKey = join(dir, 'broker_upstream_key');
  await execFileAsync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'hoop-broker',
    '-f',
    upstreamKey,
  ]);
  const [sshd, issuer] = await Promise.all([
    startSshd({
      authorizedKeys: [readFileSync(`${upstreamKey}.pub`, 'utf8').trim()],
      ...(opts.sshdConfig ? { config: opts.sshdConfig } : {}),
    }),
    startOidcIssuer({ audience: AUDIENCE }),
  ]);
  const extra = opts.extraTargets?.(sshd, upstreamKey);
  const byEvent = typeof opts.grants === 'function' ? opts.grants(sshd) : opts.grants;
  const policies: Config['policies'] = Object.entries(byEvent).map(([event, grant]) => ({
    name: `on-${event}`,
    when: { event_name: event },
    grants: [{ target: 'build-host', ...grant }, ...(extra?.grants[event] ?? [])],
  }));
  for (const [event, grants] of Object.entries(extra?.grants ?? {}))
    if (!byEvent[event]) policies.push({ name: `on-${event}`, when: { event_name: event }, grants });
  const config: Config = {
    listen: {
      http: { port: 0, host: '127.0.0.1' },
      ssh: { port: 0, host: '127.0.0.1', ...(opts.brokerHostKey ? { host_key: opts.brokerHostKey } : {}) },
    },
    ...(opts.dataDir ? { data_dir: opts.dataDir } : {}),
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUDIENCE }],
    targets: [
      {
        name: 'build-host',
        kind: 'ssh',
        host: '127.0.0.1',
        port: sshd.port,
        user: sshd.user,
        host_key: sshd.hostKey,
        private_key: { file: upstreamKey },
      },
      ...(extra?.targets ?? []),
    ],
    policies,
    ...(opts.approvals ? { approvals: opts.approvals.config } : {}),
  };
  let broker: TestBroker;
  try {
    broker = await startBroker({ config, ...(opts.approvals ? { env: opts.approvals.env } : {}) });
  } catch (err) {
    await Promise.all([sshd.stop(), issuer.close()]);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let jobs = 0;
  const harness: SshHarness = {
    sshd,
    broker,
    issuer,
    dir,
    home: sshd.home,
    async open(eventName, o = {}) {
      const jobDir = join(dir, `job-${++jobs}`);
      mkdirSync(jobDir, { mode: 0o700 });
      const key = generateSshKeyPair(`hoop-action@test#${jobs}`);
      const res = await fetch(`${broker.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          oidc_token: await issuer.mint({ event_name: eventName }),
          ssh_public_key: key.publicKey,
          ...(o.ttl ? { ttl: o.ttl } : {}),
        }),
      });
      if (res.status !== 201) throw new Error(`session refused: ${res.status} ${await res.text()}`);
      const created = (await res.json()) as SessionCreated;
      const settings = created.targets.map((t) => {
        if (t.kind !== 'ssh') throw new Error(`unexpected target kind ${t.kind}`);
        const s = sshSettings(t);
        if (!s.ok) throw new Error(s.error);
        return s.value;
      });
      const identityFile = join(jobDir, 'id_ed25519');
      const knownHostsFile = join(jobDir, 'known_hosts');
      const configFile = join(jobDir, 'ssh_config');
      writeFileSync(identityFile, key.privateKey, { mode: 0o600 });
      writeFileSync(knownHostsFile, knownHosts(settings), { mode: 0o600 });
      writeFileSync(configFile, sshConfig(settings, { identityFile, knownHostsFile }, created.id), {
        mode: 0o600,
      });
      const baseEnv: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: jobDir,
        LANG: 'C.UTF-8',
        GIT_SSH_COMMAND: `ssh -F ${configFile}`,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_AUTHOR_NAME: 'job',
        GIT_AUTHOR_EMAIL: 'job@hoop.invalid',
        GIT_COMMITTER_NAME: 'job',
        GIT_COMMITTER_EMAIL: 'job@hoop.invalid',
      };
      const runIt: JobSession['run'] = (file, args, ro = {}) =>
        runProcess(file, args, { ...baseEnv, ...ro.env }, jobDir, ro.input, ro.timeoutMs ?? 20_000);
      const job: JobSession = {
        created,
        dir: jobDir,
        configFile,
        identityFile,
        userFor: (target) => {
          const t = created.targets.find((x) => x.name === target);
          return (t?.connection as { user: string }).user;
        },
        run: runIt,
        ssh: (args, ro) => runIt('ssh', ['-F', configFile, ...args], ro),
        async transcript() {
          const r = await fetch(`${broker.url}/v1/sessions/${created.id}/transcript`, {
            headers: { authorization: `Bearer ${created.secret}` },
          });
          return (await r.json()) as Transcript;
        },
        async transcriptWhen(ready, timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const t = await job.transcript();
            if (ready(t)) return t;
            if (Date.now() > deadline)
              throw new Error(`transcript never got ready: ${JSON.stringify(t.events.map((e) => e.kind))}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        },
        async revoke() {
          const r = await fetch(`${broker.url}/v1/sessions/${created.id}`, {
            method: 'DELETE',
            headers: { authorization: `Bearer ${created.secret}` },
          });
          if (r.status !== 200) throw new Error(`revoke: ${r.status}`);
        },
      };
      return job;
    },
    async close() {
      await broker.close();
      await Promise.all([sshd.stop(), issuer.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** Run a program to its end (killed after `timeoutMs`), collecting output. */
export function runProcess(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  input: string | Buffer | undefined,
  timeoutMs: number,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}
