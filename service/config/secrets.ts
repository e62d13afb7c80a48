// Resolves secret references ({env: NAME} / {file: PATH}) at start-up. Messages name the variable
// or file and the config path, never the value.
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type ConfigError, fileReason, type Locate, sortConfigErrors } from './errors.js';
import { type ConfigPathSegment, formatConfigPath } from './path.js';
import type { Config, SecretRef } from './schema.js';

export type SecretResult = { ok: true; value: string } | { ok: false; message: string };

/** Environment variables, as in process.env. */
export type SecretEnv = Readonly<Record<string, string | undefined>>;

export type SecretsResult = { ok: true; secrets: Map<string, string> } | { ok: false; errors: ConfigError[] };

/** Secret files are small (a password, a token, a URL); anything bigger is a wrong path. */
const MAX_SECRET_FILE_BYTES = 64 * 1024;

/**
 * The value behind one reference. Env values are used as they are; file contents lose one trailing
 * newline ("\n" or "\r\n"). Empty values are refused. Relative file paths resolve against `baseDir`
 * (default: the working directory).
 */
export async function resolveSecret(
  ref: SecretRef,
  env: SecretEnv = process.env,
  baseDir: string = process.cwd(),
): Promise<SecretResult> {
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined) return { ok: false, message: `environment variable ${ref.env} is not set` };
    if (value === '') return { ok: false, message: `environment variable ${ref.env} is empty` };
    return { ok: true, value };
  }
  const path = resolve(baseDir, ref.file);
  let text: string;
  try {
    text = await readSmallFile(path);
  } catch (error) {
    const reason = error instanceof SecretFileTooLarge ? error.message : fileReason(error);
    return { ok: false, message: `cannot read secret file ${ref.file}: ${reason}` };
  }
  const value = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  if (value === '') return { ok: false, message: `secret file ${ref.file} is empty` };
  return { ok: true, value };
}

class SecretFileTooLarge extends Error {}

async function readSmallFile(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(MAX_SECRET_FILE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > MAX_SECRET_FILE_BYTES)
      throw new SecretFileTooLarge(`larger than ${MAX_SECRET_FILE_BYTES / 1024} KiB`);
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}

function isSecretRef(value: unknown): value is SecretRef {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && (keys[0] === 'env' || keys[0] === 'file');
}

/** Every secret reference in a config, with its path: target credentials, admin tokens, store.url, the ssh host key, webhook secrets, the checkpoint key. */
export function secretReferences(config: Config): { path: ConfigPathSegment[]; ref: SecretRef }[] {
  const refs: { path: ConfigPathSegment[]; ref: SecretRef }[] = [];
  if (config.store && typeof config.store.url !== 'string')
    refs.push({ path: ['store', 'url'], ref: config.store.url });
  // Every kind of target holds its credentials as SecretRef fields (a postgres target's password, …).
  config.targets.forEach((target, index) => {
    for (const [key, value] of Object.entries(target))
      if (isSecretRef(value)) refs.push({ path: ['targets', index, key], ref: value });
    // a kubernetes target's bearer token sits one level down (credentials.token)
    if (target.kind === 'kubernetes' && 'token' in target.credentials)
      refs.push({ path: ['targets', index, 'credentials', 'token'], ref: target.credentials.token });
  });
  (config.admin?.tokens ?? []).forEach((token, index) => {
    refs.push({ path: ['admin', 'tokens', index, 'token'], ref: token.token });
  });
  if (config.listen.ssh?.host_key)
    refs.push({ path: ['listen', 'ssh', 'host_key'], ref: config.listen.ssh.host_key });
  if (config.github_app)
    refs.push({ path: ['github_app', 'webhook_secret'], ref: config.github_app.webhook_secret });
  if (config.github_app?.private_key)
    refs.push({ path: ['github_app', 'private_key'], ref: config.github_app.private_key });
  if (config.audit?.checkpoint?.key)
    refs.push({ path: ['audit', 'checkpoint', 'key'], ref: config.audit.checkpoint.key });
  (config.audit?.export ?? []).forEach((sink, index) => {
    if (sink.kind === 'webhook') refs.push({ path: ['audit', 'export', index, 'secret'], ref: sink.secret });
  });
  (config.approvals?.approver_tokens ?? []).forEach((t, index) => {
    refs.push({ path: ['approvals', 'approver_tokens', index, 'token'], ref: t.token });
  });
  (config.approvals?.notify ?? []).forEach((n, index) => {
    if (n.kind === 'slack') refs.push({ path: ['approvals', 'notify', index, 'url'], ref: n.url });
    else refs.push({ path: ['approvals', 'notify', index, 'secret'], ref: n.secret });
  });
  return refs;
}

/**
 * Resolves every reference; on success the map is keyed by config path (`targets[0].password`,
 * `admin.tokens[1].token`, `store.url` when given by reference). All failures are reported
 * together; without `locate` their line/column is 0 (unknown).
 */
export async function resolveAllSecrets(
  config: Config,
  env: SecretEnv = process.env,
  locate?: Locate,
  baseDir: string = process.cwd(),
): Promise<SecretsResult> {
  const refs = secretReferences(config);
  const results = await Promise.all(refs.map(({ ref }) => resolveSecret(ref, env, baseDir)));
  const secrets = new Map<string, string>();
  const errors: ConfigError[] = [];
  results.forEach((result, index) => {
    const path = formatConfigPath(refs[index]?.path ?? []);
    if (result.ok) secrets.set(path, result.value);
    else errors.push({ path, ...(locate ? locate(path) : { line: 0, column: 0 }), message: result.message });
  });
  return errors.length > 0 ? { ok: false, errors: sortConfigErrors(errors) } : { ok: true, secrets };
}
