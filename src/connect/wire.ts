// From an opened session to what later steps use: files to write (CA, kubeconfig, ssh key/config) and
// variables/outputs to export. Planning is pure; writeSessionFiles does the I/O.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { SessionCreated } from '../../service/api/schemas.js';
import { type KubernetesSettings, kubeconfig, kubernetesSettings } from './kubernetes.js';
import { type PostgresSettings, postgresExports, postgresSettings } from './postgres.js';
import { knownHosts, type SshKeyPair, type SshSettings, sshConfig, sshSettings } from './ssh.js';

export interface PlannedFile {
  path: string;
  content: string;
}

export interface ActionOutputs {
  'session-id': string;
  'expires-at': string;
  'database-url'?: string;
  kubeconfig?: string;
  'ssh-config'?: string;
}

export interface Wiring {
  files: PlannedFile[];
  env: Record<string, string>;
  outputs: ActionOutputs;
  /** targets this version cannot wire (unknown kinds): reported, not fatal */
  notes: string[];
}

export interface WiringOptions {
  /** a private directory for this session's files (RUNNER_TEMP/hoop-…) */
  dir: string;
  sshKey: SshKeyPair;
  /** the ca-cert input, used for PGSSLROOTCERT when the broker sends no CA */
  caCertPem: string | undefined;
}

export function planWiring(
  session: SessionCreated,
  opts: WiringOptions,
): { ok: true; value: Wiring } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const files: PlannedFile[] = [];
  const env: Record<string, string> = {};
  const outputs: ActionOutputs = { 'session-id': session.id, 'expires-at': session.expires_at };
  const notes: string[] = [];
  const caPem = session.ca_pem ?? opts.caCertPem;

  const pg: PostgresSettings[] = [];
  const kube: KubernetesSettings[] = [];
  const ssh: SshSettings[] = [];
  const caPath = join(opts.dir, 'broker-ca.pem');
  for (const target of session.targets) {
    if (target.kind === 'postgres') {
      const s = postgresSettings(target, session.secret, caPem ? caPath : 'system');
      if (s.ok) pg.push(s.value);
      else errors.push(s.error);
    } else if (target.kind === 'kubernetes') {
      const s = kubernetesSettings(target, session.ca_pem);
      if (s.ok) kube.push(s.value);
      else errors.push(s.error);
    } else if (target.kind === 'ssh') {
      const s = sshSettings(target);
      if (s.ok) ssh.push(s.value);
      else errors.push(s.error);
    } else {
      // a kind this version's contract does not know yet (a newer broker)
      const unknown: { name: string; kind: string } = target;
      notes.push(
        `target ${unknown.name} has kind "${unknown.kind}", which this version of the action does not wire`,
      );
    }
  }

  if (pg.length) {
    if (caPem) files.push({ path: caPath, content: caPem });
    const exported = postgresExports(pg);
    if (exported.ok) {
      Object.assign(env, exported.value.env);
      if (exported.value.databaseUrl) outputs['database-url'] = exported.value.databaseUrl;
    } else errors.push(exported.error);
  }
  if (kube.length) {
    const path = join(opts.dir, 'kubeconfig');
    files.push({ path, content: kubeconfig(kube, session.secret) });
    env.KUBECONFIG = path;
    outputs.kubeconfig = path;
  }
  if (ssh.length) {
    const sshFiles = {
      identityFile: join(opts.dir, 'id_ed25519'),
      knownHostsFile: join(opts.dir, 'known_hosts'),
    };
    const configFile = join(opts.dir, 'ssh_config');
    try {
      files.push(
        { path: sshFiles.identityFile, content: opts.sshKey.privateKey },
        { path: `${sshFiles.identityFile}.pub`, content: `${opts.sshKey.publicKey}\n` },
        { path: sshFiles.knownHostsFile, content: knownHosts(ssh) },
        { path: configFile, content: sshConfig(ssh, sshFiles, session.id) },
      );
      env.HOOP_SSH_CONFIG = configFile;
      outputs['ssh-config'] = configFile;
    } catch (e) {
      errors.push(`ssh config: ${(e as Error).message}`);
    }
  }
  return errors.length ? { ok: false, errors } : { ok: true, value: { files, env, outputs, notes } };
}

/** A new, not yet created, directory name under `parent` for this session's files (hoop-XXXXXX). */
export function sessionDirPath(parent: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const suffix = Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
  return join(parent, `hoop-${suffix}`);
}

/** Create the session directory, private (0700); fails if it already exists. */
export function createSessionDir(dir: string): void {
  mkdirSync(dirname(dir), { recursive: true });
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** Every file 0600: they hold the session secret, the private key, or sit next to them. */
export function writeSessionFiles(files: readonly PlannedFile[]): void {
  for (const f of files) {
    writeFileSync(f.path, f.content, { mode: 0o600 });
    chmodSync(f.path, 0o600);
  }
}
