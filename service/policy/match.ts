// Policy matching: verified claims in, the first matching policy out, with every failed condition of
// every other policy explained (policy, claim, expected, actual). Pure: data in, data out.
//
// A condition value is one of:
//   - exact:  `main`, `123456`, `true`           numbers and booleans compare as strings, so
//             `repository_id: 123456` matches the claim "123456" and `ref_protected: true` matches "true"
//   - glob:   any string containing `*` or `?`    `*` matches any run of characters, `/` included and
//             possibly empty (`refs/heads/*` matches `refs/heads/feature/x`); `?` exactly one character;
//             `\*`, `\?`, `\\` are literal
//   - regex:  `/…/`                               JavaScript syntax, no flags, always anchored as ^(?:…)$
//   - a list of the above: any one matching is enough
// Matching is case-sensitive. A claim that is absent (or null) fails every condition; an empty string
// is a value. Objects and arrays never match. Claim values longer than MAX_MATCHED_VALUE_CHARS never
// match: claim values come from the token's subject (branch names, workflow names, actor), and a cap
// bounds the work any pattern can be made to do.
//
// Regexes are the policy author's, but the text is the attacker's: on a backtracking engine a pattern
// like /(a+)+b/ takes exponential time. So regexes run on V8's linear-time engine (the `l` flag,
// enabled below): an automaton, no backtracking, time proportional to text × pattern, whatever the
// text and however loaded the machine; no time budget decides a match. What that engine cannot run
// (backreferences, lookaround, counted repeats too large to unroll) is refused when the config loads,
// with the pattern named (regexShapeProblem), and never matches at run time (fail closed). Texts are
// bounded (MAX_MATCHED_VALUE_CHARS here, the ssh rules' own caps). Only if the engine were missing
// (a Node without the flag) would regexes fall back to a node:vm run with a generous backstop budget,
// REGEX_BACKSTOP_MS; a timeout there is a non-match with a reason. Globs never use a regex engine:
// they use a linear two-pointer matcher.
//
// `sub` comes in two GitHub formats: `repo:OWNER/REPO:…` and the immutable `repo:OWNER@OWNER_ID/REPO@REPO_ID:…`.
// A `sub` condition holds when it matches either form of the token's subject (see subjectForms): the
// other form is rebuilt from the signed repository, repository_owner, repository_owner_id and
// repository_id claims, so a policy written in either format matches tokens issued in either.
//
// Policies are considered in config order and the first that matches wins; every policy is still
// evaluated so the explanation is complete.
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Policy } from '../config/schema.js';
import type { Reason } from '../reasons.js';
import type { PolicyExplanation } from './explanation.js';

export type ConditionValue = string | number | boolean;
export type Condition = ConditionValue | readonly ConditionValue[];
export type MatchOutcome = { ok: true } | { ok: false; message: string };
export type { PolicyExplanation };
export interface PolicyEvaluation {
  /** the first policy, in config order, whose every condition holds */
  matched: Policy | null;
  /** one entry per policy, in config order */
  explanations: PolicyExplanation[];
}

export const MAX_MATCHED_VALUE_CHARS = 1024;
/** The fallback path's budget (only without the linear engine): a backstop, not a judge of speed. */
export const REGEX_BACKSTOP_MS = 1000;
/** @deprecated the name the budget had; it is only a backstop now */
export const REGEX_TIMEOUT_MS = REGEX_BACKSTOP_MS;

// The flag only makes V8 accept the `l` flag; other regexes are untouched.
v8.setFlagsFromString('--enable-experimental-regexp-engine');
/** `l`: V8's linear-time engine (eslint's no-invalid-regexp does not know the flag) */
const LINEAR_FLAG = 'l';
const LINEAR_ENGINE = (() => {
  try {
    return new RegExp('a', LINEAR_FLAG).test('a');
  } catch {
    return false;
  }
})();

/** Compiled anchored linear regexes by source (null: the engine cannot run it); bounded. */
const linearCache = new Map<string, RegExp | null>();
function linearRegex(source: string): RegExp | null {
  let re = linearCache.get(source);
  if (re !== undefined) return re;
  try {
    re = new RegExp(`^(?:${source})$`, LINEAR_FLAG);
  } catch {
    re = null;
  }
  if (linearCache.size >= 1000) linearCache.clear();
  linearCache.set(source, re);
  return re;
}

/**
 * Why a regex source cannot be used as a rule, or null: not valid JavaScript, or not runnable in
 * linear time (backreferences, lookahead/lookbehind, counted repeats too large to unroll such as
 * (x{1,64}){0,20}). For config validation, so the author hears it at start-up, naming the pattern.
 */
export function regexShapeProblem(source: string): string | null {
  try {
    new RegExp(`^(?:${source})$`);
  } catch (err) {
    const reason = err instanceof Error ? (err.message.split(': ').pop() ?? err.message) : 'invalid';
    return `invalid regular expression /${source}/: ${reason}`;
  }
  if (LINEAR_ENGINE && linearRegex(source) === null)
    return `/${source}/ cannot be matched in linear time (backreferences, lookahead/lookbehind and large counted repeats like {1,64} nested in another repeat are refused, so no text can make a match run long); rewrite it, e.g. with + or * instead of large counts`;
  return null;
}
const MAX_SHOWN_CHARS = 200;

type Pattern =
  | { kind: 'exact'; text: string }
  | { kind: 'glob'; tokens: GlobToken[]; text: string }
  | { kind: 'regex'; source: string; text: string };
type GlobToken = { kind: 'char'; ch: string } | { kind: 'one' } | { kind: 'star' };

function compile(value: ConditionValue): Pattern {
  if (typeof value !== 'string') return { kind: 'exact', text: String(value) };
  if (value.length > 2 && value.startsWith('/') && value.endsWith('/')) {
    return { kind: 'regex', source: value.slice(1, -1), text: value };
  }
  if (value.includes('*') || value.includes('?'))
    return { kind: 'glob', tokens: parseGlob(value), text: value };
  return { kind: 'exact', text: value };
}

function parseGlob(glob: string): GlobToken[] {
  const tokens: GlobToken[] = [];
  const chars = Array.from(glob);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '\\' && i + 1 < chars.length) tokens.push({ kind: 'char', ch: chars[++i]! });
    else if (ch === '*') {
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' });
    } else if (ch === '?') tokens.push({ kind: 'one' });
    else tokens.push({ kind: 'char', ch });
  }
  return tokens;
}

/** Wildcard match in O(text × pattern) worst case, no backtracking blow-up: retry only from the last `*`. */
function globMatches(tokens: readonly GlobToken[], text: readonly string[]): boolean {
  let t = 0;
  let p = 0;
  let starAt = -1;
  let starText = 0;
  while (t < text.length) {
    const token = tokens[p];
    if (token && (token.kind === 'one' || (token.kind === 'char' && token.ch === text[t]))) {
      p++;
      t++;
    } else if (token?.kind === 'star') {
      starAt = p++;
      starText = t;
    } else if (starAt >= 0) {
      p = starAt + 1;
      t = ++starText;
    } else {
      return false;
    }
  }
  while (tokens[p]?.kind === 'star') p++;
  return p === tokens.length;
}

// One sandbox context for all regex runs; the `timeout` option interrupts a runaway match. Also used by
// the ssh command rules (policy/ssh/patterns.ts): the pattern is the operator's, the text the job's.
let regexContext: vm.Context | undefined;
const regexScript = new vm.Script('new RegExp(source).test(text)');

export type RegexRun = 'match' | 'no-match' | 'timeout' | 'invalid';
export function runRegex(source: string, text: string): RegexRun {
  if (LINEAR_ENGINE) {
    const re = linearRegex(source);
    if (re === null) return 'invalid';
    return re.test(text) ? 'match' : 'no-match';
  }
  try {
    new RegExp(source);
  } catch {
    return 'invalid';
  }
  regexContext ??= vm.createContext({ source: '', text: '' });
  regexContext.source = `^(?:${source})$`;
  regexContext.text = text;
  try {
    return regexScript.runInContext(regexContext, { timeout: REGEX_BACKSTOP_MS }) === true
      ? 'match'
      : 'no-match';
  } catch {
    return 'timeout';
  } finally {
    regexContext.text = '';
  }
}

function show(text: string): string {
  const clean = text.replace(/\p{Cc}/gu, '?');
  return JSON.stringify(clean.length > MAX_SHOWN_CHARS ? `${clean.slice(0, MAX_SHOWN_CHARS)}…` : clean);
}

/** How a condition reads in an explanation: `"main"`, `glob "refs/heads/*"`, `regex /v[0-9]+/`, `one of [...]`. */
export function describeCondition(expected: Condition): string {
  if (Array.isArray(expected)) return `one of [${expected.map((v) => describeCondition(v)).join(', ')}]`;
  const pattern = compile(expected as ConditionValue);
  if (pattern.kind === 'regex') return `regex ${pattern.text}`;
  if (pattern.kind === 'glob') return `glob ${show(pattern.text)}`;
  return show(pattern.text);
}

/** The `expected` field of a Reason: an exact value as itself (like `actual`), patterns described. */
function expectedText(expected: Condition): string {
  if (!Array.isArray(expected) && compile(expected as ConditionValue).kind === 'exact')
    return String(expected);
  return describeCondition(expected);
}

/** A claim value as text, or why it cannot be matched. */
function claimText(actual: unknown): { ok: true; text: string } | { ok: false; message: string } {
  if (actual === undefined || actual === null)
    return { ok: false, message: 'the token has no such claim (absent)' };
  if (typeof actual === 'string') {
    if (actual.length > MAX_MATCHED_VALUE_CHARS) {
      return {
        ok: false,
        message: `the claim value is ${actual.length} characters; values over ${MAX_MATCHED_VALUE_CHARS} never match`,
      };
    }
    return { ok: true, text: actual };
  }
  if (typeof actual === 'number' || typeof actual === 'boolean') return { ok: true, text: String(actual) };
  return {
    ok: false,
    message: 'the claim is a list or an object; only strings, numbers and booleans can be matched',
  };
}

function matchOne(pattern: Pattern, text: string): MatchOutcome {
  switch (pattern.kind) {
    case 'exact':
      return text === pattern.text
        ? { ok: true }
        : { ok: false, message: `${show(text)} does not equal ${show(pattern.text)}` };
    case 'glob':
      return globMatches(pattern.tokens, Array.from(text))
        ? { ok: true }
        : { ok: false, message: `${show(text)} does not match glob ${show(pattern.text)}` };
    case 'regex': {
      const run = runRegex(pattern.source, text);
      if (run === 'match') return { ok: true };
      if (run === 'invalid')
        return {
          ok: false,
          message: `the policy's regex ${pattern.text} is not a valid regular expression, or cannot be matched in linear time`,
        };
      if (run === 'timeout') {
        return {
          ok: false,
          message: `regex ${pattern.text} took longer than ${REGEX_BACKSTOP_MS} ms on ${show(text)}; treated as no match`,
        };
      }
      return { ok: false, message: `${show(text)} does not match regex ${pattern.text}` };
    }
  }
}

/** Does the claim value satisfy the condition? A list of alternatives holds when any one does. */
export function matchCondition(expected: Condition, actual: unknown): MatchOutcome {
  const value = claimText(actual);
  if (!value.ok) return value;
  const alternatives: readonly ConditionValue[] = Array.isArray(expected)
    ? expected
    : [expected as ConditionValue];
  const failures: string[] = [];
  for (const alternative of alternatives) {
    const outcome = matchOne(compile(alternative), value.text);
    if (outcome.ok) return outcome;
    failures.push(outcome.message);
  }
  if (alternatives.length === 1) return { ok: false, message: failures[0]! };
  return { ok: false, message: `${show(value.text)} matches none of ${describeCondition(expected)}` };
}

/**
 * Why a condition value is unusable, or null. For config validation: the matcher itself fails closed
 * on these (an invalid regex never matches), but an author should hear about them at start-up.
 */
export function conditionProblem(expected: Condition): string | null {
  const alternatives: readonly ConditionValue[] = Array.isArray(expected)
    ? expected
    : [expected as ConditionValue];
  for (const value of alternatives) {
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return `${value} is not a finite number`;
      // YAML turns a long unquoted id into a float: 12345678901234567890 would compare as 12345678901234567000.
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        return `${value} is too large to be exact as a number; quote it as a string`;
      }
      continue;
    }
    if (typeof value !== 'string') continue;
    const pattern = compile(value);
    if (pattern.kind === 'regex') {
      try {
        new RegExp(pattern.source);
      } catch (err) {
        return `${value} is not a valid regular expression: ${(err as Error).message}`;
      }
      const problem = regexShapeProblem(pattern.source);
      if (problem) return problem;
    } else if (/^\/.+\/[a-z]+$/.test(value)) {
      return `${value} looks like a regex with flags; flags are not supported (it would be compared as exact text)`;
    }
  }
  return null;
}

const IMMUTABLE_SUB = /^repo:([^/@:]+)@(\d+)\/([^/@:]+)@(\d+):([\s\S]*)$/;

/**
 * The token's subject in every GitHub format we can derive from signed claims: the `sub` as issued,
 * then the other format (legacy names-only ↔ immutable with ids). Only for subjects that start with
 * `repo:` + the token's own repository, i.e. GitHub's default templates.
 */
export function subjectForms(claims: Readonly<Record<string, unknown>>): string[] {
  const sub = ownClaim(claims, 'sub');
  if (typeof sub !== 'string') return [];
  const immutable = IMMUTABLE_SUB.exec(sub);
  if (immutable) return [sub, `repo:${immutable[1]}/${immutable[3]}:${immutable[5]}`];

  const repository = ownClaim(claims, 'repository');
  const owner = ownClaim(claims, 'repository_owner');
  const ownerId = ownClaim(claims, 'repository_owner_id');
  const repositoryId = ownClaim(claims, 'repository_id');
  if (typeof repository !== 'string' || typeof owner !== 'string') return [sub];
  if (!isId(ownerId) || !isId(repositoryId)) return [sub];
  const prefix = `repo:${repository}:`;
  if (!repository.startsWith(`${owner}/`) || !sub.startsWith(prefix)) return [sub];
  const name = repository.slice(owner.length + 1);
  return [
    sub,
    `repo:${owner}@${String(ownerId)}/${name}@${String(repositoryId)}:${sub.slice(prefix.length)}`,
  ];
}

const isId = (value: unknown): value is string | number =>
  (typeof value === 'string' && /^\d+$/.test(value)) ||
  (typeof value === 'number' && Number.isSafeInteger(value));

/** Own properties only: a policy naming `constructor` or `__proto__` must see "absent", not Object.prototype. */
function ownClaim(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  return Object.hasOwn(claims, name) ? claims[name] : undefined;
}

function displayActual(actual: unknown): string {
  if (actual === undefined || actual === null) return '(absent)';
  if (typeof actual === 'string') {
    const clean = actual.replace(/\p{Cc}/gu, '?');
    return clean.length > MAX_SHOWN_CHARS
      ? `${clean.slice(0, MAX_SHOWN_CHARS)}… (${clean.length} chars)`
      : clean;
  }
  if (typeof actual === 'number' || typeof actual === 'boolean') return String(actual);
  const json = JSON.stringify(actual) ?? String(actual);
  return json.length > MAX_SHOWN_CHARS ? `${json.slice(0, MAX_SHOWN_CHARS)}…` : json;
}

/** Every failed condition of one policy (empty: it matches). */
export function policyFailures(
  policy: Policy,
  claims: Readonly<Record<string, unknown>>,
  issuerName: string,
): Reason[] {
  const failures: Reason[] = [];
  const label = `policy "${policy.name}"`;
  if (policy.issuer !== undefined && policy.issuer !== issuerName) {
    failures.push({
      policy: policy.name,
      claim: 'issuer',
      expected: policy.issuer,
      actual: issuerName,
      message: `${label}: only tokens from issuer "${policy.issuer}" are accepted; this token is from "${issuerName}"`,
    });
  }
  const conditions = Object.entries(policy.when);
  if (conditions.length === 0) {
    // A policy without conditions would hand its grants to any token with our audience: refuse it.
    failures.push({
      policy: policy.name,
      message: `${label}: has no "when" conditions; a policy must name at least one claim, so it matches nothing`,
    });
  }
  for (const [claim, expected] of conditions) {
    const actual = ownClaim(claims, claim);
    if (claim === 'sub') {
      const forms = subjectForms(claims);
      if (forms.length > 0 && forms.some((form) => matchCondition(expected, form).ok)) continue;
      const outcome = matchCondition(expected, actual);
      const also = forms.length > 1 ? ` (also compared as ${show(forms[1]!)})` : '';
      failures.push({
        policy: policy.name,
        claim,
        expected: expectedText(expected),
        actual: displayActual(actual),
        message: `${label}: claim "sub": ${outcome.ok ? 'does not match' : outcome.message}${also}`,
      });
      continue;
    }
    const outcome = matchCondition(expected, actual);
    if (outcome.ok) continue;
    failures.push({
      policy: policy.name,
      claim,
      expected: expectedText(expected),
      actual: displayActual(actual),
      message: `${label}: claim "${claim}": ${outcome.message}`,
    });
  }
  return failures;
}

/** First matching policy in config order; an explanation for every policy (grants shown for matches). */
export function evaluatePolicies(
  policies: readonly Policy[],
  claims: Readonly<Record<string, unknown>>,
  issuerName: string,
): PolicyEvaluation {
  let matched: Policy | null = null;
  const explanations: PolicyExplanation[] = [];
  for (const policy of policies) {
    const failures = policyFailures(policy, claims, issuerName);
    const ok = failures.length === 0;
    if (ok && matched === null) matched = policy;
    explanations.push({
      name: policy.name,
      matched: ok,
      failures,
      ...(ok ? { grants: policy.grants.map((g) => ({ target: g.target, access: g.access })) } : {}),
    });
  }
  return { matched, explanations };
}
