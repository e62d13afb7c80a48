#!/usr/bin/env node
// hoop-broker serve | check-config | explain | sessions | audit
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ExplainResult, SessionView, Transcript } from './api/schemas.js';
import { verifyChain } from './audit/event.js';
import { BrokerStartError, startBroker } from './broker.js';
import { loadConfigFile } from './config/load.js';
import { formatConfigErrors } from './config/report.js';
import { resolveAllSecrets } from './config/secrets.js';
import { createLogger } from './log.js';

const USAGE = `hoop-broker — CI credential broker

Usage:
  hoop-broker serve --config FILE             run the broker (HTTP API + gateways)
  hoop-broker check-config FILE [--secrets]   validate a config; --secrets also resolves {env}/{file} references
  hoop-broker explain --token FILE (--url URL | --config FILE)
                                              which policy a token matches, and why the others do not
  hoop-broker sessions list [--active] --url URL
  hoop-broker sessions revoke ID --url URL
  hoop-broker audit verify ID --url URL       fetch a transcript and verify its hash chain locally
  hoop-broker audit denials --url URL         recent refused session requests

Admin commands read the admin token from HOOP_ADMIN_TOKEN (or --admin-token-file FILE).
Exit codes: 0 ok, 1 refused/invalid, 2 usage error.`;

type Out = { out: (s: string) => void; err: (s: string) => void };
const io: Out = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) };

export async function main(argv: string[], o: Out = io): Promise<number> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      token: { type: 'string' },
      url: { type: 'string' },
      active: { type: 'boolean' },
      secrets: { type: 'boolean' },
      json: { type: 'boolean' },
      'admin-token-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (!command || command === 'help' || values.help) {
    o.out(USAGE);
    return command ? 0 : 2;
  }
  switch (command) {
    case 'serve':
      return serve(values.config ?? process.env.HOOP_CONFIG, o);
    case 'check-config':
      return checkConfig(positionals[0] ?? values.config, values.secrets ?? false, o);
    case 'explain':
      return explain(values, o);
    case 'sessions':
      return sessionsCommand(positionals, values, o);
    case 'audit':
      return auditCommand(positionals, values, o);
    default:
      o.err(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
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
  o.out(
    `hoop-broker listening: api ${broker.url}${broker.pgPort !== null ? `, postgres :${broker.pgPort}` : ''}`,
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      broker.close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
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
  values: { url?: string | undefined; json?: boolean | undefined; 'admin-token-file'?: string | undefined },
  o: Out,
): Promise<number> {
  const [sub, id] = positionals;
  if (!values.url || !((sub === 'verify' && id) || sub === 'denials')) {
    o.err('usage: hoop-broker audit verify ID --url URL | audit denials --url URL');
    return 2;
  }
  const token = await adminToken(values);
  if (!token) {
    o.err('set HOOP_ADMIN_TOKEN or --admin-token-file');
    return 2;
  }
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
  o.out(`${id}: ${res.body.events.length} events, chain verified, head ${check.head}`);
  return 0;
}

// Run when executed directly (not when imported by tests).
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli.js')) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (process.argv[2] !== 'serve') process.exit(code);
      else process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`hoop-broker: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
