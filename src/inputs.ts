// The action's inputs (action.yml), parsed and checked in one place. Pure: the caller supplies how to read
// an input and a file, so tests need no environment.
import { X509Certificate } from 'node:crypto';

export interface ActionInputs {
  /** base URL without a trailing slash; requests go to `${brokerUrl}/v1/...` */
  brokerUrl: string;
  /** OIDC audience to request; defaults to brokerUrl */
  audience: string;
  /** requested targets; empty means every target the policy grants */
  targets: string[];
  ttl: string | undefined;
  reporting: ReportingInputs;
  /** PEM of a private CA that signed the broker's HTTPS certificate */
  caCertPem: string | undefined;
}

/** What the post step needs; parsed separately so a later-broken input cannot stop the revoke. */
export interface ReportingInputs {
  githubToken: string;
  jobSummary: boolean;
  checkRun: boolean;
  failOnDenied: boolean;
}

/** Returns an input's raw value ('' when not set). */
export type InputReader = (name: string) => string;

export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** How the runner passes inputs: INPUT_<NAME>, upper-cased, spaces as underscores, dashes kept. */
export function envInputReader(env: Readonly<Record<string, string | undefined>>): InputReader {
  return (name) => (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
}

const TTL = /^(?=.)([0-9]+h)?([0-9]+m)?([0-9]+s)?$/;
const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

function parseBoolean(read: InputReader, name: string, fallback: boolean, errors: string[]): boolean {
  const raw = read(name);
  if (raw === '') return fallback;
  if (['true', 'True', 'TRUE'].includes(raw)) return true;
  if (['false', 'False', 'FALSE'].includes(raw)) return false;
  errors.push(`${name}: "${raw.slice(0, 40)}" is not a boolean (use true or false)`);
  return fallback;
}

export function parseReportingInputs(read: InputReader): Parsed<ReportingInputs> {
  const errors: string[] = [];
  const value: ReportingInputs = {
    githubToken: read('github-token'),
    jobSummary: parseBoolean(read, 'job-summary', true, errors),
    checkRun: parseBoolean(read, 'check-run', true, errors),
    failOnDenied: parseBoolean(read, 'fail-on-denied', false, errors),
  };
  return errors.length ? { ok: false, errors } : { ok: true, value };
}

function parseBrokerUrl(raw: string, errors: string[]): string {
  if (raw === '') {
    errors.push('broker-url: required (the broker base URL, e.g. https://hoop.example.com)');
    return '';
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    errors.push(`broker-url: "${raw.slice(0, 200)}" is not a URL`);
    return '';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    errors.push(`broker-url: ${url.protocol} is not http or https`);
  // Plain HTTP would carry the OIDC token and the session secret in clear text; only loopback is exempt.
  else if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname))
    errors.push(
      `broker-url: plain http is only allowed for a broker on this machine (localhost); use https://${url.host}`,
    );
  if (url.username || url.password) errors.push('broker-url: must not contain credentials');
  if (url.search || url.hash) errors.push('broker-url: must not contain a query or fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function parseTargets(raw: string, errors: string[]): string[] {
  const names = [...new Set(raw.split(/[\s,]+/).filter((n) => n !== ''))];
  for (const n of names)
    if (!TARGET_NAME.test(n)) errors.push(`targets: "${n.slice(0, 60)}" is not a target name`);
  if (names.length > 100) errors.push(`targets: ${names.length} targets requested; at most 100`);
  return names;
}

function parseCaCert(raw: string, readFile: (path: string) => string, errors: string[]): string | undefined {
  if (raw === '') return undefined;
  let pem = raw;
  if (!raw.includes('-----BEGIN')) {
    try {
      pem = readFile(raw);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      errors.push(
        `ca-cert: cannot read the file "${raw.slice(0, 200)}" (${code}); give a PEM certificate or a path to one`,
      );
      return undefined;
    }
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    errors.push('ca-cert: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)');
    return undefined;
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      errors.push(`ca-cert: certificate ${i + 1} is not a valid X.509 certificate`);
    }
  }
  return `${blocks.join('\n')}\n`;
}

export function parseInputs(read: InputReader, readFile: (path: string) => string): Parsed<ActionInputs> {
  const errors: string[] = [];
  const brokerUrl = parseBrokerUrl(read('broker-url'), errors);
  const audience = read('audience') || brokerUrl;
  const targets = parseTargets(read('targets'), errors);
  const ttlRaw = read('ttl');
  if (ttlRaw !== '' && !TTL.test(ttlRaw))
    errors.push(`ttl: "${ttlRaw.slice(0, 40)}" is not a duration like 15m, 1h or 1h30m`);
  const caCertPem = parseCaCert(read('ca-cert'), readFile, errors);
  const reporting = parseReportingInputs(read);
  if (!reporting.ok) errors.push(...reporting.errors);
  if (errors.length || !reporting.ok) return { ok: false, errors };
  return {
    ok: true,
    value: {
      brokerUrl,
      audience,
      targets,
      ttl: ttlRaw === '' ? undefined : ttlRaw,
      reporting: reporting.value,
      caCertPem,
    },
  };
}
