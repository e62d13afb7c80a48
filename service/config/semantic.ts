// Checks that need the whole (schema-valid) config: references between sections, uniqueness,
// durations, regexes, URLs. Pure: takes the config and a line lookup, returns issues.
import { formatDuration, parseDuration } from './duration.js';
import type { ConfigPathSegment } from './path.js';
import type { Config, SshGrant } from './schema.js';
import { parseQualifiedName } from '../policy/sql/names.js';
import { regexShapeProblem } from '../policy/match.js';
import type { ConfigIssue } from './schema-errors.js';
import { INLINE_SECRET_MESSAGE } from './schema-errors.js';

/** Defaults that semantic checks compare against (withDefaults applies the same values). */
export const DEFAULT_MAX_TTL = '1h';
export const DEFAULT_SESSION_TTL = '30m';
/** Sessions are for one CI job; a day is already generous. */
export const MAX_SESSION_TTL_MS = 24 * 3_600_000;
/** A larger skew would quietly extend the life of every OIDC token. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** The verbs Kubernetes rules may name: the API's, the subresource verbs, and '*'. */
export const KUBERNETES_VERBS = [
  'get',
  'list',
  'watch',
  'create',
  'update',
  'patch',
  'delete',
  'deletecollection',
  'exec',
  'attach',
  'portforward',
  'proxy',
  'log',
  '*',
];

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Line of the value at a path, for messages like "first defined on line 12". */
export type LineOf = (path: readonly ConfigPathSegment[]) => number;

/** `require:` and `migrations:` read GitHub as the App: they need its id and key; migrations are SQL. */
function githubGrantIssues(
  config: Config,
  grant: Config['policies'][number]['grants'][number],
  kind: string | undefined,
): { path: ConfigPathSegment[]; message: string }[] {
  const issues: { path: ConfigPathSegment[]; message: string }[] = [];
  const app = config.github_app;
  const appMissing =
    app?.app_id === undefined || app.private_key === undefined
      ? 'needs github_app with app_id and private_key (the broker reads GitHub as the App)'
      : null;
  if (grant.require !== undefined) {
    if (appMissing) issues.push({ path: ['require'], message: appMissing });
    if (grant.require.environment_approval === undefined && grant.require.pull_request_reviews === undefined)
      issues.push({
        path: ['require'],
        message: 'must name environment_approval and/or pull_request_reviews',
      });
  }
  if (grant.migrations !== undefined) {
    if (appMissing) issues.push({ path: ['migrations'], message: appMissing });
    if (kind !== undefined && kind !== 'postgres')
      issues.push({
        path: ['migrations'],
        message: `migration files apply to postgres targets only ('${grant.target}' is a ${kind} target)`,
      });
    else if (grant.access === 'read')
      issues.push({
        path: ['migrations'],
        message: 'migrations need a write grant (access: write or admin)',
      });
  }
  return issues;
}

export function semanticIssues(config: Config, lineOf: LineOf): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const report = (path: ConfigPathSegment[], message: string): void => {
    issues.push({ path, at: 'value', message });
  };

  checkUnique(config.issuers, 'issuers', 'issuer name', lineOf, report);
  checkUnique(config.targets, 'targets', 'target name', lineOf, report);
  checkUnique(config.policies, 'policies', 'policy name', lineOf, report);
  checkUnique(config.admin?.tokens ?? [], ['admin', 'tokens'], 'admin token name', lineOf, report);

  checkListeners(config, report);
  config.targets.forEach((target, index) => {
    if (target.kind !== 'kubernetes') return;
    const problem = urlProblem(target.server, ['https:'], false);
    if (problem) report(['targets', index, 'server'], `${problem} (the API server's address)`);
  });
  if (config.public_url !== undefined) {
    const problem = urlProblem(config.public_url, ['https:', 'http:'], false);
    if (problem) report(['public_url'], 'must be an http:// or https:// URL');
  }
  if (config.github_app?.api_url !== undefined) {
    const problem = urlProblem(config.github_app.api_url, ['https:'], true);
    if (problem) report(['github_app', 'api_url'], problem);
  }
  if ((config.github_app?.app_id === undefined) !== (config.github_app?.private_key === undefined))
    report(['github_app'], 'app_id and private_key go together (both, or neither for webhooks only)');
  if (config.store && typeof config.store.url === 'string') {
    if (!/^postgres(?:ql)?:\/\/[^\s]+$/.test(config.store.url)) {
      report(['store', 'url'], 'must be a postgres:// or postgresql:// URL');
    }
  }

  const sinks = config.audit?.export ?? [];
  checkUnique(sinks, ['audit', 'export'], 'export sink name', lineOf, report);
  sinks.forEach((sink, index) => {
    if (sink.kind !== 'webhook') return;
    const problem = urlProblem(sink.url, ['https:'], true);
    if (problem) report(['audit', 'export', index, 'url'], problem);
  });

  (config.approvals?.notify ?? []).forEach((n, index) => {
    if (n.kind !== 'webhook') return;
    const problem = urlProblem(n.url, ['https:'], true);
    if (problem) report(['approvals', 'notify', index, 'url'], problem);
  });
  checkUnique(
    config.approvals?.approver_tokens ?? [],
    ['approvals', 'approver_tokens'],
    'approver token name',
    lineOf,
    report,
  );

  const seenIssuerUrls = new Map<string, number>();
  config.issuers.forEach((issuer, index) => {
    const problem = urlProblem(issuer.issuer, ['https:'], true);
    if (problem) report(['issuers', index, 'issuer'], problem);
    if (issuer.jwks_uri !== undefined) {
      const jwksProblem = urlProblem(issuer.jwks_uri, ['https:'], true);
      if (jwksProblem) report(['issuers', index, 'jwks_uri'], jwksProblem);
    }
    // A token's `iss` must select exactly one issuer entry.
    const url = issuer.issuer.replace(/\/+$/, '');
    const first = seenIssuerUrls.get(url);
    if (first !== undefined) {
      report(
        ['issuers', index, 'issuer'],
        `issuer ${issuer.issuer} is already configured (line ${lineOf(['issuers', first, 'issuer'])})`,
      );
    } else seenIssuerUrls.set(url, index);
  });

  const maxTtlMs =
    checkDuration(config.sessions?.max_ttl, ['sessions', 'max_ttl'], report) ??
    parseDuration(DEFAULT_MAX_TTL)!;
  const maxTtlText = config.sessions?.max_ttl ?? `${DEFAULT_MAX_TTL}, the default`;
  if (config.sessions?.max_ttl !== undefined && maxTtlMs > MAX_SESSION_TTL_MS) {
    report(['sessions', 'max_ttl'], `must be at most ${formatDuration(MAX_SESSION_TTL_MS)}`);
  }
  const defaultTtlMs = checkDuration(config.sessions?.default_ttl, ['sessions', 'default_ttl'], report);
  if (defaultTtlMs !== undefined && defaultTtlMs > maxTtlMs) {
    report(
      ['sessions', 'default_ttl'],
      `${config.sessions?.default_ttl} is longer than sessions.max_ttl (${maxTtlText})`,
    );
  }
  const skewMs = checkDuration(config.limits?.clock_skew, ['limits', 'clock_skew'], report);
  if (skewMs !== undefined && skewMs > MAX_CLOCK_SKEW_MS) {
    report(['limits', 'clock_skew'], `must be at most ${formatDuration(MAX_CLOCK_SKEW_MS)}`);
  }

  config.targets.forEach((target, index) => {
    if (target.kind !== 'ssh') return;
    const given = [target.private_key, target.password].filter((c) => c !== undefined).length;
    if (given !== 1)
      report(
        ['targets', index],
        given === 0
          ? `ssh target '${target.name}' needs a credential: private_key or password (by reference)`
          : `ssh target '${target.name}': give private_key or password, not both`,
      );
  });

  const issuerNames = config.issuers.map((issuer) => issuer.name);
  const kindOf = new Map(config.targets.map((t) => [t.name, t.kind]));
  const targetNames = config.targets.map((target) => target.name);
  config.policies.forEach((policy, p) => {
    const at = (...rest: ConfigPathSegment[]): ConfigPathSegment[] => ['policies', p, ...rest];
    if (policy.issuer !== undefined && !issuerNames.includes(policy.issuer)) {
      report(
        at('issuer'),
        `unknown issuer '${policy.issuer}' (configured issuers: ${issuerNames.join(', ')})`,
      );
    }
    const conditions = Object.entries(policy.when);
    // An empty `when` would match every token of every configured issuer.
    if (conditions.length === 0) {
      report(at('when'), 'must name at least one claim condition (an empty "when" matches every token)');
    }
    for (const [claim, expected] of conditions) {
      if (claim.trim() === '') report(at('when', claim), 'claim name must not be empty');
      const values = Array.isArray(expected) ? expected : [expected];
      values.forEach((value, v) => {
        if (typeof value !== 'string') return;
        const problem = regexProblem(value);
        if (problem) report(Array.isArray(expected) ? at('when', claim, v) : at('when', claim), problem);
      });
    }
    const ttlMs = checkDuration(policy.ttl, at('ttl'), report);
    if (ttlMs !== undefined && ttlMs > maxTtlMs) {
      report(at('ttl'), `${policy.ttl} is longer than sessions.max_ttl (${maxTtlText})`);
    }
    const granted = new Map<string, number>();
    policy.grants.forEach((grant, g) => {
      if (!targetNames.includes(grant.target)) {
        const known =
          targetNames.length > 0
            ? `configured targets: ${targetNames.join(', ')}`
            : 'no targets are configured';
        report(at('grants', g, 'target'), `unknown target '${grant.target}' (${known})`);
      }
      const earlier = granted.get(grant.target);
      if (earlier !== undefined) {
        report(
          at('grants', g, 'target'),
          `target '${grant.target}' is already granted by this policy (line ${lineOf(at('grants', earlier, 'target'))}); use one grant per target`,
        );
      } else granted.set(grant.target, g);
      const kind = kindOf.get(grant.target);
      if (kind === 'ssh') {
        if (grant.mask)
          report(
            at('grants', g, 'mask'),
            `mask rules are for postgres targets; '${grant.target}' is an ssh target`,
          );
        if (grant.deny)
          report(
            at('grants', g, 'deny'),
            `deny rules here are SQL rules for postgres targets; for ssh commands use ssh.commands.deny`,
          );
        for (const issue of sshGrantIssues(grant.ssh ?? {}))
          report(at('grants', g, 'ssh', ...issue.path), issue.message);
      } else if (kind !== undefined && grant.ssh) {
        report(
          at('grants', g, 'ssh'),
          `ssh rules are for ssh targets; '${grant.target}' is a ${kind} target`,
        );
      }
      for (const issue of githubGrantIssues(config, grant, kind))
        report(at('grants', g, ...issue.path), issue.message);
      if (grant.kubernetes !== undefined) {
        if (kind !== undefined && kind !== 'kubernetes')
          report(
            at('grants', g, 'kubernetes'),
            `kubernetes rules apply to kubernetes targets only ('${grant.target}' is a ${kind} target)`,
          );
        for (const list of ['allow', 'deny', 'approve'] as const)
          (grant.kubernetes[list] ?? []).forEach((rule, r) => {
            (rule.verbs ?? []).forEach((verb, v) => {
              if (!KUBERNETES_VERBS.includes(verb))
                report(
                  at('grants', g, 'kubernetes', list, r, 'verbs', v),
                  `unknown verb '${verb}' (verbs: ${KUBERNETES_VERBS.join(', ')})`,
                );
            });
          });
      }
      (grant.mask ?? []).forEach((rule, m) => {
        if (!('column' in rule)) return;
        const parsed = parseQualifiedName(rule.column);
        if (!parsed.ok || parsed.parts.length < 2 || parsed.parts.length > 3) {
          report(
            at('grants', g, 'mask', m, 'column'),
            `must be "table.column" or "schema.table.column" in SQL identifiers (quote mixed-case or unusual names: customers."Email")${parsed.ok ? '' : `: ${parsed.error}`}`,
          );
        }
      });
      if (grant.approve !== undefined && kind !== undefined && kind !== 'postgres')
        report(
          at('grants', g, 'approve'),
          `approve rules here are SQL rules for postgres targets; for ${kind} use ${kind === 'ssh' ? 'ssh.commands.approve' : 'kubernetes.approve'} (with the grant's approvers and approval_timeout)`,
        );
      const approverIssue = (a: { users?: string[]; teams?: string[]; min?: number } | undefined) => {
        if (!a) return null;
        const named = new Set([...(a.users ?? []).map((u) => u.toLowerCase()), ...(a.teams ?? [])]).size;
        if (a.min !== undefined && (a.teams ?? []).length === 0 && a.min > named)
          return `min ${a.min} is more than the ${named} approver(s) listed: no hold could ever be approved`;
        return null;
      };
      const grantApprovers = approverIssue(grant.approvers);
      if (grantApprovers) report(at('grants', g, 'approvers', 'min'), grantApprovers);
      checkDuration(grant.approval_timeout, at('grants', g, 'approval_timeout'), report);
      (grant.approve ?? []).forEach((rule, r) => {
        const issue = approverIssue(rule.approvers);
        if (issue) report(at('grants', g, 'approve', r, 'approvers', 'min'), issue);
        checkDuration(rule.timeout, at('grants', g, 'approve', r, 'timeout'), report);
        if ('table' in rule)
          rule.table.forEach((name, k) => {
            const parsed = parseQualifiedName(name);
            if (!parsed.ok || parsed.parts.length > 2)
              report(
                at('grants', g, 'approve', r, 'table', k),
                `must be "table" or "schema.table" in SQL identifiers${parsed.ok ? '' : `: ${parsed.error}`}`,
              );
          });
      });
      (grant.deny ?? []).forEach((rule, d) => {
        if (!('table' in rule)) return;
        rule.table.forEach((name, k) => {
          const parsed = parseQualifiedName(name);
          if (!parsed.ok || parsed.parts.length > 2)
            report(
              at('grants', g, 'deny', d, 'table', k),
              `must be "table" or "schema.table" in SQL identifiers${parsed.ok ? '' : `: ${parsed.error}`}`,
            );
        });
      });
    });
  });
  return issues;
}

/** The ssh rules of one grant: regexes compile, sftp paths are absolute, forward ports are ports. */
function sshGrantIssues(ssh: SshGrant): { path: ConfigPathSegment[]; message: string }[] {
  const issues: { path: ConfigPathSegment[]; message: string }[] = [];
  for (const list of ['allow', 'deny', 'approve'] as const) {
    (ssh.commands?.[list] ?? []).forEach((pattern, i) => {
      const source =
        typeof pattern === 'string'
          ? pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/')
            ? pattern.slice(1, -1)
            : null
          : 'regex' in pattern
            ? pattern.regex
            : null;
      if (source === null) return;
      const problem = regexShapeProblem(source);
      if (problem) issues.push({ path: ['commands', list, i], message: problem });
    });
  }
  for (const list of ['read', 'write'] as const) {
    (ssh.sftp?.[list] ?? []).forEach((glob, i) => {
      if (!glob.startsWith('/'))
        issues.push({
          path: ['sftp', list, i],
          message:
            'must be an absolute path glob (sftp and scp clients send absolute paths), like /srv/app/**',
        });
    });
  }
  (ssh.forwards ?? []).forEach((dest, i) => {
    const port = dest.slice(dest.lastIndexOf(':') + 1);
    if (port !== '*' && (Number(port) < 1 || Number(port) > 65535))
      issues.push({ path: ['forwards', i], message: `port ${port} is not between 1 and 65535` });
  });
  return issues;
}

function checkUnique(
  items: readonly { name: string }[],
  section: string | readonly string[],
  what: string,
  lineOf: LineOf,
  report: (path: ConfigPathSegment[], message: string) => void,
): void {
  const base = typeof section === 'string' ? [section] : [...section];
  const first = new Map<string, number>();
  items.forEach((item, index) => {
    const earlier = first.get(item.name);
    if (earlier === undefined) {
      first.set(item.name, index);
      return;
    }
    report(
      [...base, index, 'name'],
      `duplicate ${what} '${item.name}' (first defined on line ${lineOf([...base, earlier, 'name'])})`,
    );
  });
}

function checkListeners(config: Config, report: (path: ConfigPathSegment[], message: string) => void): void {
  const used = new Map<number, string>();
  for (const name of ['http', 'postgres', 'ssh', 'kubernetes'] as const) {
    const port = config.listen[name]?.port;
    if (port === undefined || port === 0) continue;
    const owner = used.get(port);
    if (owner) report(['listen', name, 'port'], `port ${port} is already used by ${owner}`);
    else used.set(port, `listen.${name}`);
  }
}

/** Parses an optional duration; reports zero (the pattern already refused malformed text). */
function checkDuration(
  text: string | undefined,
  path: ConfigPathSegment[],
  report: (path: ConfigPathSegment[], message: string) => void,
): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === null) {
    report(path, 'must be a duration greater than zero, like 90s, 15m, 1h or 1h30m');
    return undefined;
  }
  return ms;
}

/** `/…/` condition values are regular expressions (matched anchored); others are exact or glob. */
function regexProblem(value: string): string | undefined {
  if (value.length < 2 || !value.startsWith('/') || !value.endsWith('/')) return undefined;
  const body = value.slice(1, -1);
  if (body === '') return 'empty regular expression //';
  return regexShapeProblem(body) ?? undefined;
}

/** OIDC issuers and JWKS must be https; plain http is tolerated on loopback only (tests). */
function urlProblem(text: string, schemes: readonly string[], loopbackHttp: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an https URL';
  }
  if (schemes.includes(url.protocol)) return undefined;
  if (loopbackHttp && url.protocol === 'http:') {
    return LOOPBACK_HOSTS.has(url.hostname)
      ? undefined
      : 'must be an https URL (http is allowed only for 127.0.0.1, localhost and [::1])';
  }
  return 'must be an https URL';
}

/** store.url given as a string must not carry a password; those belong in {env} or {file}. */
export function inlineSecretIssues(data: unknown): ConfigIssue[] {
  if (typeof data !== 'object' || data === null) return [];
  const store = (data as Record<string, unknown>).store;
  if (typeof store !== 'object' || store === null) return [];
  const url = (store as Record<string, unknown>).url;
  if (typeof url !== 'string' || !urlCarriesPassword(url)) return [];
  return [{ path: ['store', 'url'], at: 'value', message: INLINE_SECRET_MESSAGE }];
}

function urlCarriesPassword(url: string): boolean {
  if (/\bpassword\s*=/i.test(url)) return true; // query parameter or libpq key=value form
  try {
    return new URL(url).password !== '';
  } catch {
    // Unparseable: look for the userinfo form user:secret@host directly.
    return /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]+@/i.test(url);
  }
}
