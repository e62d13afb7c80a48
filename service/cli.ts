#!/usr/bin/env node
// hoop-broker serve | check-config | explain | sessions | approvals | audit | dev
// Size (over 600 lines): one dispatcher with each command's option table and help text beside its
// handler, so `--help` and the README test read one list; the commands themselves are thin calls
// into the broker, the API client and audit/ (approvals' own commands live in approvals/cli.ts).
import { createHash, createPublicKey } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ExplainResult, Recordings, SessionView, Transcript } from './api/schemas.js';
import { APPROVALS_HELP, approvalsCommand } from './approvals/cli.js';
import { mergeRecordings } from './audit/asciicast.js';
import { keyIdOf, verifyCheckpointSequence, verifyHeadsAgainstTranscripts } from './audit/checkpoint.js';
import { verifyChain } from './audit/event.js';
import { type Broker, BrokerStartError, startBroker } from './broker.js';
import { parseDuration } from './config/duration.js';
import { loadConfigFile } from './config/load.js';
import { formatConfigErrors } from './config/report.js';
import { resolveAllSecrets } from './config/secrets.js';
import { parseClaimsArgument } from './dev/claims.js';
import { requestDevToken, startDevIssuer } from './dev/issuer.js';
import { createLogger } from './log.js';

const DEV_ISSUER_PORT = 8091;

const COMMANDS = {
  serve: `hoop-broker serve --config FILE

Run the broker: the HTTP API and the gateways the config's listen section names. The config may also
come from HOOP_CONFIG. On start it prints where the API, the gateways and the CA file are, and what
to run next. SIGINT/SIGTERM shut it down gracefully.

Options:
  -c, --config FILE   the YAML config (see README, "Configuration")
  -h, --help          this text`,
  'check-config': `hoop-broker check-config FILE [--secrets]

Validate a config without starting anything; every error is printed as FILE:LINE:COL path: message.

Options:
  --secrets           also resolve every {env}/{file} secret reference (in this environment)
  -h, --help          this text`,
  explain: `hoop-broker explain --token FILE (--url URL | --config FILE) [--json]

Which policy an OIDC token matches, and for every other policy the condition that failed.

Options:
  --token FILE        a file holding the token (e.g. from \`hoop-broker dev token\`)
  --url URL           ask a running broker (POST /v1/explain)
  -c, --config FILE   evaluate locally against this config (fetches the issuer's keys)
  --json              the result as JSON
  -h, --help          this text`,
  sessions: `hoop-broker sessions list [--active] [--json] --url URL
hoop-broker sessions revoke ID --url URL

List sessions (newest first) or revoke one (its live connections are closed).

Options:
  --url URL                 the broker's API
  --active                  only sessions neither ended nor expired
  --json                    the sessions as JSON
  --admin-token-file FILE   the admin token (default: the HOOP_ADMIN_TOKEN variable)
  -h, --help                this text`,
  approvals: APPROVALS_HELP,
  audit: `hoop-broker audit verify ID --url URL
hoop-broker audit verify --url URL [--public-key FILE]
hoop-broker audit denials --url URL
hoop-broker audit export --url URL [--since T] [--until T] [--format jsonl|ocsf]
hoop-broker audit replay ID --url URL [--out FILE] [--recording RID]

verify ID: fetch a session's transcript and verify its hash chain locally.
verify: check the signed checkpoints (signatures, links, no session vanished unless retention pruned
        it) and that every session's transcript still reaches the head the latest one signed: a
        session deleted or truncated in the store shows here.
denials: recent refused session requests.
replay ID: the session's terminal recordings (ssh) as one asciicast file for \`asciinema play\`
        (default ID.cast), each checked against the SHA-256 in its chain-verified transcript event.
export: every audit record (transcript events with their session's identity, refused session
        requests) as JSON lines on stdout, for backfilling a SIEM; the count goes to stderr.

Options:
  --url URL                 the broker's API
  --since T, --until T      export: records at or after / before T (ISO-8601, or an age: 24h, 7d, 30m)
  --format jsonl|ocsf       export: the broker's records (default) or OCSF 1.1 events
  --public-key FILE         verify: the checkpoint key (PEM) to trust, kept apart from the broker
                            (default: the key GET /v1/audit/checkpoint-key serves)
  --admin-token-file FILE   the admin token (default: the HOOP_ADMIN_TOKEN variable)
  -h, --help                this text`,
  healthcheck: `hoop-broker healthcheck [--url URL]

Exit 0 when the broker answers GET URL with 200 within 4 s, else 1: the container image's
HEALTHCHECK (slim images have no curl).

Options:
  --url URL           default http://127.0.0.1:8080/healthz (/readyz also checks the store)
  -h, --help          this text`,
  dev: `hoop-broker dev issuer [--port N] [--audience AUD]
hoop-broker dev token --claims CLAIMS [--issuer URL] [--audience AUD]

FOR LOCAL USE ONLY. A development OIDC issuer that mints tokens shaped like GitHub Actions' job
tokens, to try the broker without GitHub. A broker accepts them only when its config lists the
issuer's URL (http://127.0.0.1:PORT) under issuers:; a config naming only GitHub's issuer refuses
them. Tokens carry the claim "hoop_dev_token": true.

  dev issuer   run the issuer on 127.0.0.1 (loopback only); prints its URL
  dev token    ask a running issuer for a token and print it

Options:
  --port N            dev issuer: port to listen on (default 8091)
  --claims CLAIMS     dev token: claims to set over the GitHub-shaped defaults, as a JSON object
                      or name=value pairs: --claims event_name=push,ref=refs/heads/main
                      (a JSON null removes a claim)
  --issuer URL        dev token: the issuer (default http://127.0.0.1:8091)
  --audience AUD      the token's aud (default https://hoop.example.com)
  -h, --help          this text`,
} as const;
type CommandName = keyof typeof COMMANDS;

const USAGE = `hoop-broker — CI credential broker

Usage:
  hoop-broker serve --config FILE             run the broker (HTTP API + gateways)
  hoop-broker check-config FILE [--secrets]   validate a config; --secrets also resolves {env}/{file} references
  hoop-broker explain --token FILE (--url URL | --config FILE)
                                              which policy a token matches, and why the others do not
  hoop-broker sessions list [--active] --url URL
  hoop-broker sessions revoke ID --url URL
  hoop-broker approvals list|show|approve|deny [ID] --url URL
                                              held operations; decide one (approver or admin token)
  hoop-broker audit verify ID --url URL       fetch a transcript and verify its hash chain locally
  hoop-broker audit verify --url URL          check the signed checkpoints: deleted/truncated sessions
  hoop-broker audit denials --url URL         recent refused session requests
  hoop-broker audit export --url URL [--since T] [--format jsonl|ocsf]
                                              audit records as JSON lines (SIEM backfill)
  hoop-broker dev issuer | dev token          a LOCAL development OIDC issuer and its tokens
  hoop-broker healthcheck [--url URL]         exit 0 when the broker is healthy (container HEALTHCHECK)
  hoop-broker COMMAND --help                  the options of one command

Admin commands read the admin token from HOOP_ADMIN_TOKEN (or --admin-token-file FILE).
Exit codes: 0 ok, 1 refused/invalid, 2 usage error.`;

type Out = { out: (s: string) => void; err: (s: string) => void };
const io: Out = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) };

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  token: { type: 'string' },
  url: { type: 'string' },
  active: { type: 'boolean' },
  secrets: { type: 'boolean' },
  json: { type: 'boolean' },
  'admin-token-file': { type: 'string' },
  port: { type: 'string' },
  claims: { type: 'string' },
  issuer: { type: 'string' },
  audience: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  format: { type: 'string' },
  'public-key': { type: 'string' },
  out: { type: 'string', short: 'o' },
  recording: { type: 'string' },
  state: { type: 'string' },
  session: { type: 'string' },
  reason: { type: 'string' },
  sha256: { type: 'string' },
  'token-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const isCommand = (c: string): c is CommandName => Object.hasOwn(COMMANDS, c);

export async function main(argv: string[], o: Out = io): Promise<number> {
  const [command, ...rest] = argv;
  if (!command) {
    o.err(USAGE);
    return 2;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0];
    if (topic && isCommand(topic)) o.out(COMMANDS[topic]);
    else o.out(USAGE);
    return 0;
  }
  if (!isCommand(command)) {
    o.err(`unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    o.out(COMMANDS[command]);
    return 0;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    o.err(`${(err as Error).message}\n\n${COMMANDS[command]}`);
    return 2;
  }
  const { values, positionals } = parsed;
  switch (command) {
    case 'serve':
      return serve(values.config ?? process.env.HOOP_CONFIG, o);
    case 'check-config':
      return checkConfig(positionals[0] ?? values.config, values.secrets ?? false, o);
    case 'explain':
      return explain(values, o);
    case 'sessions':
      return sessionsCommand(positionals, values, o);
    case 'approvals':
      return approvalsCommand(positionals, values, o);
    case 'audit':
      return auditCommand(positionals, values, o);
    case 'dev':
      return devCommand(positionals, values, o);
    case 'healthcheck':
      return healthcheck(values.url ?? 'http://127.0.0.1:8080/healthz', o);
  }
}

async function serve(path: string | undefined, o: Out): Promise<number> {
  if (!path) {
    o.err('serve needs --config FILE (or HOOP_CONFIG)');
    return 2;
  }
  const loaded = await loadConfigFile(path);
  if (!loaded.ok) {
    o.err(formatConfigErrors(path, loaded.errors));
    return 1;
  }
  const logger = createLogger(loaded.config.log?.level ?? 'info');
  let broker: Awaited<ReturnType<typeof startBroker>>;
  try {
    broker = await startBroker(loaded.config, { logger, locate: loaded.locate });
  } catch (err) {
    if (err instanceof BrokerStartError) {
      o.err(err.errors.length ? formatConfigErrors(path, err.errors) : err.message);
      return 1;
    }
    throw err;
  }
  o.out(startupText(broker, path));
  const graceMs = parseDuration(loaded.config.shutdown_grace ?? '25s') ?? 25_000;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // a second signal: do not wait for the clients any longer
        logger.warn({ signal }, 'shutting down now');
        broker.close().then(resolve, resolve);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      broker.shutdown(graceMs).then(resolve, resolve);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

async function checkConfig(path: string | undefined, withSecrets: boolean, o: Out): Promise<number> {
  if (!path) {
    o.err('check-config needs a FILE');
    return 2;
  }
  const loaded = await loadConfigFile(path);
  if (!loaded.ok) {
    o.err(formatConfigErrors(path, loaded.errors));
    return 1;
  }
  if (withSecrets) {
    const secrets = await resolveAllSecrets(loaded.config, process.env, loaded.locate);
    if (!secrets.ok) {
      o.err(formatConfigErrors(path, secrets.errors));
      return 1;
    }
  }
  const c = loaded.config;
  o.out(
    `${path}: ok (${c.issuers.length} issuer(s), ${c.targets.length} target(s), ${c.policies.length} policy(ies))`,
  );
  return 0;
}

function adminToken(values: {
  'admin-token-file'?: string | undefined;
}): Promise<string | undefined> | string | undefined {
  if (values['admin-token-file']) return readFile(values['admin-token-file'], 'utf8').then((s) => s.trim());
  return process.env.HOOP_ADMIN_TOKEN;
}

async function api<T>(
  url: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(path, url), {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed as T };
}

function printError(o: Out, status: number, body: unknown): number {
  const b = body as { error?: string; reasons?: { message: string }[] };
  o.err(`HTTP ${status}: ${b?.error ?? String(body)}`);
  for (const r of b?.reasons ?? []) o.err(`  - ${r.message}`);
  return 1;
}

export function formatExplain(r: ExplainResult): string {
  const lines = [`issuer: ${r.issuer}`, `matched policy: ${r.matched_policy ?? '(none)'}`, ''];
  for (const p of r.policies) {
    lines.push(`${p.matched ? '✓' : '✗'} ${p.name}`);
    for (const f of p.failures) lines.push(`    ${f.message}`);
    for (const g of p.grants ?? []) lines.push(`    grant ${g.target}: ${g.access}`);
  }
  return lines.join('\n');
}

async function explain(
  values: {
    token?: string | undefined;
    url?: string | undefined;
    config?: string | undefined;
    json?: boolean | undefined;
  },
  o: Out,
): Promise<number> {
  if (!values.token || (!values.url && !values.config)) {
    o.err('explain needs --token FILE and --url URL (ask a broker) or --config FILE (evaluate locally)');
    return 2;
  }
  const token = (await readFile(values.token, 'utf8')).trim();
  let result: ExplainResult;
  if (values.url) {
    const res = await api<ExplainResult>(values.url, 'POST', '/v1/explain', undefined, { oidc_token: token });
    if (res.status !== 200) return printError(o, res.status, res.body);
    result = res.body;
  } else {
    const loaded = await loadConfigFile(values.config!);
    if (!loaded.ok) {
      o.err(formatConfigErrors(values.config!, loaded.errors));
      return 1;
    }
    const { explainToken } = await import('./identity/explain.js');
    const out = await explainToken(loaded.config, token, new Date());
    if (!out.ok) return printError(o, 401, out.body);
    result = out.value;
  }
  o.out(values.json ? JSON.stringify(result, null, 2) : formatExplain(result));
  return result.matched_policy ? 0 : 1;
}

async function sessionsCommand(
  positionals: string[],
  values: {
    url?: string | undefined;
    active?: boolean | undefined;
    json?: boolean | undefined;
    'admin-token-file'?: string | undefined;
  },
  o: Out,
): Promise<number> {
  const [sub, id] = positionals;
  if (!values.url || (sub !== 'list' && sub !== 'revoke') || (sub === 'revoke' && !id)) {
    o.err('usage: hoop-broker sessions list [--active] --url URL | sessions revoke ID --url URL');
    return 2;
  }
  const token = await adminToken(values);
  if (!token) {
    o.err('set HOOP_ADMIN_TOKEN or --admin-token-file');
    return 2;
  }
  if (sub === 'list') {
    const res = await api<{ sessions: SessionView[] }>(
      values.url,
      'GET',
      `/v1/sessions${values.active ? '?active=true' : ''}`,
      token,
    );
    if (res.status !== 200) return printError(o, res.status, res.body);
    if (values.json) o.out(JSON.stringify(res.body.sessions, null, 2));
    else
      for (const s of res.body.sessions) {
        o.out(
          [
            s.id,
            s.state,
            s.policy,
            String(s.identity.repository ?? '-'),
            `run ${String(s.identity.run_id ?? '-')}`,
            `expires ${s.expires_at}`,
          ].join('  '),
        );
      }
    return 0;
  }
  const res = await api<SessionView>(values.url, 'DELETE', `/v1/sessions/${encodeURIComponent(id!)}`, token);
  if (res.status !== 200) return printError(o, res.status, res.body);
  o.out(`${res.body.id}: ${res.body.state}`);
  return 0;
}

async function auditCommand(
  positionals: string[],
  values: {
    url?: string | undefined;
    json?: boolean | undefined;
    'admin-token-file'?: string | undefined;
    since?: string | undefined;
    until?: string | undefined;
    format?: string | undefined;
    'public-key'?: string | undefined;
    out?: string | undefined;
    recording?: string | undefined;
  },
  o: Out,
): Promise<number> {
  const [sub, id] = positionals;
  if (
    !values.url ||
    !(sub === 'verify' || sub === 'denials' || sub === 'export' || (sub === 'replay' && id))
  ) {
    o.err(COMMANDS.audit);
    return 2;
  }
  const token = await adminToken(values);
  if (!token) {
    o.err('set HOOP_ADMIN_TOKEN or --admin-token-file');
    return 2;
  }
  if (sub === 'export') return auditExport(values.url, token, values, o);
  if (sub === 'verify' && !id) return verifyCheckpoints(values.url, token, values['public-key'], o);
  if (sub === 'denials') {
    const res = await api<{ denials: { at: string; kind: string; reasons: string[] }[] }>(
      values.url,
      'GET',
      '/v1/denials',
      token,
    );
    if (res.status !== 200) return printError(o, res.status, res.body);
    for (const d of res.body.denials) o.out(`${d.at}  ${d.kind}  ${d.reasons.join('; ')}`);
    return 0;
  }
  const res = await api<Transcript>(
    values.url,
    'GET',
    `/v1/sessions/${encodeURIComponent(id!)}/transcript`,
    token,
  );
  if (res.status !== 200) return printError(o, res.status, res.body);
  const check = verifyChain(res.body.events);
  if (!check.ok) {
    o.err(`chain broken at seq ${check.seq}: ${check.problem}`);
    return 1;
  }
  if (sub === 'replay') return replay(values.url, token, id!, res.body, values, o);
  o.out(`${id}: ${res.body.events.length} events, chain verified, head ${check.head}`);
  return 0;
}

/**
 * The session's recordings in transcript order, each checked against the SHA-256 its (chain-verified)
 * transcript event carries, merged into one asciicast file.
 */
async function replay(
  url: string,
  token: string,
  id: string,
  transcript: Transcript,
  values: { out?: string | undefined; recording?: string | undefined },
  o: Out,
): Promise<number> {
  const res = await api<Recordings>(url, 'GET', `/v1/sessions/${encodeURIComponent(id)}/recordings`, token);
  if (res.status !== 200) return printError(o, res.status, res.body);
  const casts = new Map(res.body.recordings.map((r) => [r.id, r.cast]));
  const parts: { cast: string; label: string }[] = [];
  for (const e of transcript.events) {
    const rec = e.operation.recording as { id?: string; sha256?: string } | undefined;
    if (!rec?.id || (values.recording && rec.id !== values.recording)) continue;
    const cast = casts.get(rec.id);
    if (cast === undefined) {
      o.err(`recording ${rec.id} (seq ${e.seq}) is missing from the broker's answer`);
      return 1;
    }
    if (createHash('sha256').update(cast).digest('hex') !== rec.sha256) {
      o.err(`recording ${rec.id} (seq ${e.seq}) does not match the SHA-256 in its transcript event`);
      return 1;
    }
    const what = typeof e.operation.command === 'string' ? e.operation.command : 'shell';
    parts.push({ cast, label: `${e.at} ${e.target ?? ''}: ${what}` });
  }
  if (parts.length === 0) {
    o.err(
      values.recording
        ? `no recording ${values.recording} in session ${id}`
        : `session ${id} has no recordings`,
    );
    return 1;
  }
  const file = values.out ?? `${id}.cast`;
  await writeFile(file, mergeRecordings(parts, `hoop session ${id}`));
  o.out(
    `${file}: ${parts.length} recording(s), verified against the transcript (head ${transcript.head_hash})`,
  );
  return 0;
}

/** What a person starting the broker needs to know: where everything is, and what to run next. */
export function startupText(broker: Broker, configPath: string): string {
  const c = broker.config;
  const lines = [
    'hoop-broker is running',
    `  API          ${broker.url}   (OpenAPI ${broker.url}/docs/json)`,
  ];
  if (broker.pgPort !== null) {
    const pgTargets = c.targets.filter((t) => t.kind === 'postgres').map((t) => t.name);
    lines.push(
      `  PostgreSQL   ${broker.pgHost}:${broker.pgPort}   (targets: ${pgTargets.join(', ') || 'none'}; TLS + SCRAM, user = session id)`,
    );
  }
  if (broker.sshPort !== null) {
    const sshTargets = c.targets.filter((t) => t.kind === 'ssh').map((t) => t.name);
    lines.push(
      `  SSH          :${broker.sshPort}   (targets: ${sshTargets.join(', ') || 'none'}; the session's key)`,
    );
  }
  if (broker.k8sPort !== null) {
    const k8sTargets = c.targets.filter((t) => t.kind === 'kubernetes').map((t) => t.name);
    lines.push(
      `  Kubernetes   https://…:${broker.k8sPort}/k8s/<target>   (targets: ${k8sTargets.join(', ') || 'none'}; bearer = session secret)`,
    );
  }
  lines.push(
    broker.caFile
      ? `  CA file      ${broker.caFile}   (clients verify the broker with it: PGSSLROOTCERT)`
      : '  CA file      none: the configured certificate is publicly trusted',
  );
  lines.push(
    `  store        ${broker.store.kind === 'embedded' ? `embedded, in ${c.data_dir}` : 'PostgreSQL (store.url)'}`,
  );
  const isLocal = (issuer: string) => /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:|\/|$)/.test(issuer);
  for (const i of c.issuers)
    lines.push(
      `  issuer       ${i.name}: ${i.issuer} (audience ${i.audience})${isLocal(i.issuer) ? '  LOCAL development issuer' : ''}`,
    );
  const dev = c.issuers.find((i) => isLocal(i.issuer));
  lines.push('', 'Next:');
  if (dev) {
    lines.push(
      `  hoop-broker dev token --issuer ${dev.issuer} --audience ${dev.audience} --claims event_name=pull_request > token.jwt`,
      `  hoop-broker explain --token token.jwt --url ${broker.url}`,
    );
  } else {
    lines.push(
      `  in a workflow: uses: <owner>/hoop-action@v1 with broker-url: ${broker.url} (permissions: id-token: write)`,
      `  check a token: hoop-broker explain --token FILE --url ${broker.url}`,
    );
  }
  lines.push(`  validate edits: hoop-broker check-config ${configPath}`);
  return lines.join('\n');
}

/** A time given as ISO-8601 or as an age ("24h", "7d", "30m" ago). */
export function parseSince(text: string, now: Date): Date | null {
  const age = /^(\d+)([dhm])$/.exec(text);
  if (age)
    return new Date(
      now.getTime() - Number(age[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[age[2] as 'd' | 'h' | 'm'],
    );
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : new Date(t);
}

async function auditExport(
  url: string,
  token: string,
  values: { since?: string | undefined; until?: string | undefined; format?: string | undefined },
  o: Out,
): Promise<number> {
  const format = values.format ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'ocsf') {
    o.err('--format must be jsonl or ocsf');
    return 2;
  }
  const now = new Date();
  const since = values.since ? parseSince(values.since, now) : null;
  const until = values.until ? parseSince(values.until, now) : null;
  if ((values.since && !since) || (values.until && !until)) {
    o.err('--since/--until take an ISO-8601 time or an age like 24h, 7d');
    return 2;
  }
  let after = '';
  let count = 0;
  for (;;) {
    const res = await api<{ records: Record<string, unknown>[]; next: string; drained: boolean }>(
      url,
      'GET',
      `/v1/audit/export?limit=500&format=${format}${after ? `&after=${after}` : ''}`,
      token,
    );
    if (res.status !== 200) return printError(o, res.status, res.body);
    for (const r of res.body.records) {
      const at = format === 'ocsf' ? Number(r.time) : Date.parse(String(r.at));
      if (since && at < since.getTime()) continue;
      if (until && at >= until.getTime()) continue;
      o.out(JSON.stringify(r));
      count++;
    }
    after = res.body.next;
    if (res.body.drained) break;
  }
  o.err(`${count} record(s)`);
  return 0;
}

async function verifyCheckpoints(
  url: string,
  token: string,
  publicKeyFile: string | undefined,
  o: Out,
): Promise<number> {
  let pem: string;
  if (publicKeyFile) pem = await readFile(publicKeyFile, 'utf8');
  else {
    const k = await api<{ public_key_pem: string }>(url, 'GET', '/v1/audit/checkpoint-key');
    if (k.status !== 200) return printError(o, k.status, k.body);
    pem = k.body.public_key_pem;
    o.err(
      '(trusting the key the broker serves; pass --public-key FILE to check against a copy kept elsewhere)',
    );
  }
  const key = createPublicKey(pem);
  const rows: { seq: number; body: string; signature: string; key_id: string }[] = [];
  for (let after = 0; ;) {
    const page = await api<{ checkpoints: typeof rows }>(
      url,
      'GET',
      `/v1/audit/checkpoints?after=${after}&limit=500`,
      token,
    );
    if (page.status !== 200) return printError(o, page.status, page.body);
    rows.push(...page.body.checkpoints);
    if (page.body.checkpoints.length < 500) break;
    after = rows.at(-1)!.seq;
  }
  if (rows.length === 0) {
    o.err('no checkpoints yet (the broker writes one per audit.checkpoint.interval when anything changed)');
    return 1;
  }
  const seq = verifyCheckpointSequence(rows, new Map([[keyIdOf(key), key]]));
  const heads = seq.latest?.sessions ?? [];
  const transcripts = await verifyHeadsAgainstTranscripts(heads, async (id) => {
    const t = await api<Transcript>(url, 'GET', `/v1/sessions/${encodeURIComponent(id)}/transcript`, token);
    if (t.status === 404) return null;
    if (t.status !== 200) throw new Error(`transcript of ${id}: HTTP ${t.status}`);
    return t.body.events;
  });
  const problems = [...seq.problems, ...transcripts];
  for (const p of problems)
    o.err(
      `✗ ${p.checkpoint !== undefined ? `checkpoint ${p.checkpoint}` : ''}${p.session ? ` session ${p.session}` : ''}: ${p.problem}`,
    );
  if (problems.length > 0) {
    o.err(`${problems.length} problem(s) in ${rows.length} checkpoint(s)`);
    return 1;
  }
  o.out(
    `${rows.length} checkpoint(s) verified (${rows[0]!.seq}..${rows.at(-1)!.seq}); the latest signs ${heads.length} session head(s), every transcript reaches its head`,
  );
  return 0;
}

async function healthcheck(url: string, o: Out): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
    await res.body?.cancel();
    if (res.status === 200) return 0;
    o.err(`${url}: HTTP ${res.status}`);
  } catch (err) {
    o.err(`${url}: ${(err as Error).message}`);
  }
  return 1;
}

async function devCommand(
  positionals: string[],
  values: {
    port?: string | undefined;
    claims?: string | undefined;
    issuer?: string | undefined;
    audience?: string | undefined;
  },
  o: Out,
): Promise<number> {
  const [sub] = positionals;
  if (sub === 'issuer') {
    const port = values.port === undefined ? DEV_ISSUER_PORT : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      o.err('--port must be a port number');
      return 2;
    }
    const issuer = await startDevIssuer({ port, ...(values.audience ? { audience: values.audience } : {}) });
    o.out(
      [
        `LOCAL DEVELOPMENT issuer at ${issuer.issuer} (loopback only; never trust it in production)`,
        'A broker accepts its tokens only when its config lists it:',
        `  issuers: [{ name: dev, issuer: ${issuer.issuer}, audience: ${values.audience ?? 'https://hoop.example.com'} }]`,
        `Mint a token: hoop-broker dev token --issuer ${issuer.issuer} --claims event_name=pull_request`,
      ].join('\n'),
    );
    await new Promise<void>((resolve) => {
      const stop = () => issuer.close().then(resolve, resolve);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  }
  if (sub === 'token') {
    let claims: Record<string, unknown>;
    try {
      claims = values.claims ? parseClaimsArgument(values.claims) : {};
    } catch (err) {
      o.err((err as Error).message);
      return 2;
    }
    const issuerUrl = values.issuer ?? `http://127.0.0.1:${DEV_ISSUER_PORT}`;
    try {
      o.out(await requestDevToken(issuerUrl, claims, values.audience));
    } catch (err) {
      o.err(`could not get a token from the development issuer at ${issuerUrl}: ${(err as Error).message}`);
      o.err('(start one with: hoop-broker dev issuer)');
      return 1;
    }
    return 0;
  }
  o.err(COMMANDS.dev);
  return 2;
}

/** Run when executed directly, also through a symlink (node_modules/.bin, npx); not when imported by tests. */
function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => {
      // serve and dev issuer keep running until a signal; everything else exits with its code
      if (process.argv[2] !== 'serve' && !(process.argv[2] === 'dev' && process.argv[3] === 'issuer'))
        process.exit(code);
      else process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`hoop-broker: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
