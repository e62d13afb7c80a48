// The main step: OIDC token -> broker session -> files and variables for the job's tools.
// Every credential is registered with core.setSecret the moment it exists, before anything can print it.
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as core from '@actions/core';
import type { ErrorBody, SessionCreated } from '../service/api/schemas.js';
import type { ActionsCore, Env } from './actions-core.js';
import { BrokerClient, type BrokerFailure, describeFailure, isTransient, scrub } from './broker-client.js';
import { targetEnvPrefix } from './connect/postgres.js';
import { generateSshKeyPair } from './connect/ssh.js';
import { createSessionDir, planWiring, sessionDirPath, writeSessionFiles } from './connect/wire.js';
import { type ActionInputs, envInputReader, parseInputs } from './inputs.js';
import { claimLines, decodeJwtClaims } from './oidc-claims.js';
import { encodeSavedSession, STATE_SECRET, STATE_SESSION } from './state.js';

export const ID_TOKEN_HINT =
  'This job cannot request an OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL is not set. Add\n' +
  '  permissions:\n    id-token: write\n' +
  'to the job (or the workflow). Pull requests from forks never get an OIDC token with the pull_request event.';

export interface MainDeps {
  core: ActionsCore;
  env: Env;
  readFile?: (path: string) => string;
  /** attempts to open the session (each with a fresh OIDC token) and the first retry delay */
  openAttempts?: number;
  retryDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** Entry point used by dist/main.js. */
export async function run(): Promise<void> {
  await runMain({ core, env: process.env });
}

export async function runMain(deps: MainDeps): Promise<void> {
  const secrets: string[] = [];
  try {
    await openAndWire(deps, secrets);
  } catch (e) {
    // A programmer error or an I/O failure: report it, never with a credential in it.
    deps.core.setFailed(scrub(`hoop: ${(e as Error).message ?? String(e)}`, secrets));
  }
}

function reasonLine(r: ErrorBody['reasons'][number]): string {
  const facts: string[] = [];
  if (r.policy) facts.push(`policy "${r.policy}"`);
  if (r.target) facts.push(`target "${r.target}"`);
  if (r.claim) facts.push(`claim ${r.claim}`);
  if (r.expected !== undefined) facts.push(`expected ${JSON.stringify(r.expected)}`);
  if (r.actual !== undefined) facts.push(`actual ${JSON.stringify(r.actual)}`);
  const detail = facts.length ? ` (${facts.join(', ')})` : '';
  return `  • ${r.message || 'refused'}${detail}`;
}

function reportRefusal(
  c: ActionsCore,
  f: Extract<BrokerFailure, { kind: 'http' }>,
  token: string | undefined,
): void {
  c.info(`The broker refused to open a session (HTTP ${f.status}: ${f.error}):`);
  for (const r of f.reasons) c.info(reasonLine(r));
  if (f.reasons.length === 0) c.info('  • (the broker gave no reasons)');
  const claims = token ? decodeJwtClaims(token) : null;
  if (claims) {
    c.startGroup(
      "This job's OIDC token claims (decoded without verification; compare them with the policy's `when`)",
    );
    for (const { name, value } of claimLines(claims)) c.info(`${name}: ${value}`);
    c.endGroup();
  }
  const first = f.reasons[0]?.message;
  c.setFailed(
    `hoop: the broker refused the session: HTTP ${f.status} ${f.error}${first ? ` — ${first}` : ''}` +
      (f.reasons.length > 1 ? ` (and ${f.reasons.length - 1} more reasons above)` : ''),
  );
}

function reportFailure(c: ActionsCore, inputs: ActionInputs, f: BrokerFailure): void {
  if (f.kind === 'unreachable')
    c.setFailed(
      `hoop: could not reach the broker at ${inputs.brokerUrl}: ${f.message}. ` +
        'Check broker-url, that the runner can reach it, and ca-cert if the broker uses a private CA.',
    );
  else c.setFailed(`hoop: opening the session failed: ${describeFailure(f)}`);
}

async function openSession(
  deps: MainDeps,
  inputs: ActionInputs,
  client: BrokerClient,
  sshPublicKey: string,
  secrets: string[],
): Promise<
  { ok: true; session: SessionCreated } | { ok: false; failure: BrokerFailure; token: string | undefined }
> {
  const c = deps.core;
  const attempts = deps.openAttempts ?? 3;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let last: { ok: false; failure: BrokerFailure; token: string | undefined } | undefined;
  for (let n = 1; n <= attempts; n++) {
    // A fresh token per attempt: the broker accepts each token once, and a lost answer must not
    // leave the retry holding a spent token.
    const token = await c.getIDToken(inputs.audience);
    c.setSecret(token);
    secrets.push(token);
    const res = await client.openSession({
      oidc_token: token,
      ...(inputs.targets.length ? { targets: inputs.targets } : {}),
      ...(inputs.ttl ? { ttl: inputs.ttl } : {}),
      ssh_public_key: sshPublicKey,
    });
    if (res.ok) return { ok: true, session: res.value };
    last = { ok: false, failure: res.failure, token };
    if (!isTransient(res.failure) || n === attempts) break;
    const delay = (deps.retryDelayMs ?? 500) * 2 ** (n - 1);
    c.info(
      `hoop: ${describeFailure(res.failure)}; retrying in ${delay} ms (attempt ${n + 1} of ${attempts})`,
    );
    await sleep(delay);
  }
  return last!;
}

async function openAndWire(deps: MainDeps, secrets: string[]): Promise<void> {
  const { core: c, env } = deps;
  const readFile = deps.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const parsed = parseInputs(envInputReader(env), readFile);
  if (!parsed.ok) {
    c.setFailed(`hoop: invalid inputs:\n${parsed.errors.map((e) => `  - ${e}`).join('\n')}`);
    return;
  }
  const inputs = parsed.value;
  if (inputs.reporting.githubToken) c.setSecret(inputs.reporting.githubToken);
  if (!env.ACTIONS_ID_TOKEN_REQUEST_URL || !env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    c.setFailed(`hoop: ${ID_TOKEN_HINT}`);
    return;
  }

  const client = new BrokerClient({
    baseUrl: inputs.brokerUrl,
    caPem: inputs.caCertPem,
    userAgent: 'hoop-action',
  });
  // Generated before the session exists: the broker binds the public half to the session.
  const sshKey = generateSshKeyPair(
    `hoop-action@${env.GITHUB_REPOSITORY ?? 'local'}#${env.GITHUB_RUN_ID ?? '0'}`,
  );

  let opened: Awaited<ReturnType<typeof openSession>>;
  try {
    opened = await openSession(deps, inputs, client, sshKey.publicKey, secrets);
  } catch (e) {
    // core.getIDToken failed: the token service refused or was unreachable.
    c.setFailed(
      scrub(
        `hoop: could not get an OIDC token for audience "${inputs.audience}": ${(e as Error).message}`,
        secrets,
      ),
    );
    return;
  }
  if (!opened.ok) {
    const f = opened.failure;
    if (f.kind === 'http' && (f.status === 401 || f.status === 403)) reportRefusal(c, f, opened.token);
    else reportFailure(c, inputs, f);
    return;
  }

  const session = opened.session;
  // Mask first: from here on the secret exists in this process and in files.
  c.setSecret(session.secret);
  if (encodeURIComponent(session.secret) !== session.secret) c.setSecret(encodeURIComponent(session.secret));
  secrets.push(session.secret);

  // State first, so the post step can revoke whatever fails from here on.
  const dir = sessionDirPath(env.RUNNER_TEMP || tmpdir());
  c.saveState(STATE_SECRET, session.secret);
  c.saveState(
    STATE_SESSION,
    encodeSavedSession({
      brokerUrl: inputs.brokerUrl,
      caCertPem: inputs.caCertPem ?? null,
      dir,
      id: session.id,
      expiresAt: session.expires_at,
      policy: session.policy,
      identity: session.identity,
      targets: session.targets.map((t) => ({ name: t.name, kind: t.kind, access: t.access })),
    }),
  );

  try {
    createSessionDir(dir);
  } catch (e) {
    c.setFailed(`hoop: cannot create ${dir} for the session's files (RUNNER_TEMP): ${(e as Error).message}`);
    return;
  }
  const plan = planWiring(session, { dir, sshKey, caCertPem: inputs.caCertPem });
  if (!plan.ok) {
    c.setFailed(
      `hoop: the session was opened but cannot be wired up (it is revoked at the end of the job):\n${plan.errors.map((e) => `  - ${e}`).join('\n')}`,
    );
    return;
  }
  writeSessionFiles(plan.value.files);
  for (const [name, value] of Object.entries(plan.value.env)) c.exportVariable(name, value);
  for (const [name, value] of Object.entries(plan.value.outputs))
    if (value !== undefined) c.setOutput(name, value);

  c.info(
    `hoop: session ${session.id} opened by policy "${session.policy}", expires at ${session.expires_at}`,
  );
  const pgCount = session.targets.filter((t) => t.kind === 'postgres').length;
  for (const t of session.targets) {
    let wired = '';
    if (t.kind === 'postgres')
      wired =
        pgCount === 1
          ? `PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT, DATABASE_URL and ${targetEnvPrefix(t.name)}*`
          : `${targetEnvPrefix(t.name)}PGHOST … ${targetEnvPrefix(t.name)}DATABASE_URL`;
    else if (t.kind === 'kubernetes') wired = `KUBECONFIG (context ${t.name})`;
    else if (t.kind === 'ssh') wired = `HOOP_SSH_CONFIG (ssh -F "$HOOP_SSH_CONFIG" ${t.name})`;
    c.info(`  ${t.name}: ${t.kind}, ${t.access} access${wired ? ` → ${wired}` : ''}`);
  }
  if (session.targets.length === 0) c.warning('hoop: the policy granted no targets');
  for (const note of plan.value.notes) c.warning(`hoop: ${note}`);
}
