// The matchers behind the ssh rules: command patterns, path globs, forward destinations, env names.
// Pure. Globs use a linear matcher (no regex engine); regexes run with a time budget (match.ts).
import type { CommandPattern } from '../../config/targets/ssh.js';
import { runRegex } from '../match.js';

/**
 * Characters a remote shell gives meaning beyond a word: command separators, pipes, substitutions,
 * redirections, quotes' escapes, newlines. A `*` or `?` in an allow or approve rule never matches one,
 * so a rule cannot be stretched into a second command (`make *` ⇏ `make x; curl … | sh`).
 */
export const SHELL_METACHARACTERS = new Set([';', '&', '|', '`', '$', '(', ')', '<', '>', '\n', '\r', '\\']);

/** Longest command the rules look at; a longer one is denied (it is no one's hand-typed command). */
export const MAX_COMMAND_CHARS = 64 * 1024;

type Token = { kind: 'char'; ch: string } | { kind: 'one' } | { kind: 'star' };

function parseGlob(glob: string): Token[] {
  const tokens: Token[] = [];
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

/**
 * Wildcard match, O(text × pattern) at worst (retry only from the last `*`). `wild(ch)`: may a
 * wildcard stand for this character?
 */
function globMatch(
  tokens: readonly Token[],
  text: readonly string[],
  wild: (ch: string) => boolean,
): boolean {
  let t = 0;
  let p = 0;
  let starAt = -1;
  let starText = 0;
  while (t < text.length) {
    const token = tokens[p];
    const ch = text[t]!;
    if (token && ((token.kind === 'one' && wild(ch)) || (token.kind === 'char' && token.ch === ch))) {
      p++;
      t++;
    } else if (token?.kind === 'star') {
      starAt = p++;
      starText = t;
    } else if (starAt >= 0 && wild(text[starText]!)) {
      // the star swallows one more character, if it may
      p = starAt + 1;
      t = ++starText;
    } else {
      return false;
    }
  }
  while (tokens[p]?.kind === 'star') p++;
  return p === tokens.length;
}

export type CommandMatch = 'match' | 'no-match' | 'timeout';

/** How a command pattern reads in a reason: `"make test"`, `glob "make *"`, `regex /…/`. */
export function describeCommandPattern(pattern: CommandPattern): string {
  const { kind, text } = commandPatternForm(pattern);
  return kind === 'exact'
    ? JSON.stringify(text)
    : kind === 'regex'
      ? `regex /${text}/`
      : `glob ${JSON.stringify(text)}`;
}

function commandPatternForm(pattern: CommandPattern): { kind: 'exact' | 'glob' | 'regex'; text: string } {
  if (typeof pattern !== 'string') {
    if ('exact' in pattern) return { kind: 'exact', text: pattern.exact };
    if ('regex' in pattern) return { kind: 'regex', text: pattern.regex };
    return { kind: 'glob', text: pattern.glob };
  }
  if (pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/'))
    return { kind: 'regex', text: pattern.slice(1, -1) };
  return { kind: 'glob', text: pattern };
}

/**
 * Does `command` match? `strict` (allow and approve rules): wildcards never stand for a shell
 * metacharacter. Deny rules match loosely: there a wider match is the safe side.
 */
export function matchCommand(pattern: CommandPattern, command: string, strict: boolean): CommandMatch {
  const { kind, text } = commandPatternForm(pattern);
  if (kind === 'exact') return text === command ? 'match' : 'no-match';
  if (kind === 'regex') {
    const run = runRegex(text, command);
    return run === 'match' ? 'match' : run === 'timeout' ? 'timeout' : 'no-match';
  }
  const wild = strict ? (ch: string) => !SHELL_METACHARACTERS.has(ch) : () => true;
  return globMatch(parseGlob(text), Array.from(command), wild) ? 'match' : 'no-match';
}

/**
 * A path as the rules see it: `.` and empty segments dropped, `..` resolved lexically (a `..` above
 * the root or above the start of a relative path makes it unjudgeable: null). Symlinks on the server
 * are not seen: a path rule is about names.
 */
export function normalizePath(path: string): string | null {
  if (path === '' || path.includes('\0')) return null;
  const absolute = path.startsWith('/');
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) return null;
      out.pop();
    } else out.push(segment);
  }
  const joined = out.join('/');
  if (absolute) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

type PathToken = Token | { kind: 'globstar' };

function parsePathGlob(glob: string): PathToken[] {
  const tokens: PathToken[] = [];
  const chars = Array.from(glob);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '\\' && i + 1 < chars.length) tokens.push({ kind: 'char', ch: chars[++i]! });
    else if (ch === '*' && chars[i + 1] === '*') {
      while (chars[i + 1] === '*') i++;
      if (tokens.at(-1)?.kind !== 'globstar') tokens.push({ kind: 'globstar' });
    } else if (ch === '*') {
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' });
    } else if (ch === '?') tokens.push({ kind: 'one' });
    else tokens.push({ kind: 'char', ch });
  }
  return tokens;
}

/** Backtracking-free enough for paths: a memo over (token, char) bounds the work to their product. */
function pathGlobMatch(tokens: readonly PathToken[], text: readonly string[]): boolean {
  const memo = new Map<number, boolean>();
  const width = text.length + 1;
  const at = (p: number, t: number): boolean => {
    const key = p * width + t;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    const token = tokens[p];
    if (!token) result = t === text.length;
    else if (token.kind === 'globstar') result = at(p + 1, t) || (t < text.length && at(p, t + 1));
    else if (token.kind === 'star')
      result = at(p + 1, t) || (t < text.length && text[t] !== '/' && at(p, t + 1));
    else if (t >= text.length) result = false;
    else if (token.kind === 'one') result = text[t] !== '/' && at(p + 1, t + 1);
    else result = token.ch === text[t] && at(p + 1, t + 1);
    memo.set(key, result);
    return result;
  };
  return at(0, 0);
}

/**
 * Does a (normalized) path match a path glob? `dir/**` also matches `dir` itself; a glob's own `.`
 * and `..` segments are normalized the same way as paths. Paths longer than 4096 characters never match.
 */
export function matchPath(glob: string, path: string): boolean {
  if (path.length > 4096) return false;
  const trimmed = glob.length > 1 ? glob.replace(/\/+$/, '') : glob;
  const normalized = normalizePath(trimmed) ?? trimmed;
  const text = Array.from(path);
  if (pathGlobMatch(parsePathGlob(normalized), text)) return true;
  if (normalized.endsWith('/**')) return pathGlobMatch(parsePathGlob(normalized.slice(0, -3)), text);
  return false;
}

export const matchAnyPath = (globs: readonly string[] | undefined, path: string): string | undefined =>
  (globs ?? []).find((glob) => matchPath(glob, path));

/** A forward destination rule against a requested host and port (host case-insensitive). */
export function matchDestination(rule: string, host: string, port: number): boolean {
  const colon = rule.lastIndexOf(':');
  if (colon < 0) return false;
  let ruleHost = rule.slice(0, colon);
  const rulePort = rule.slice(colon + 1);
  if (rulePort !== '*' && Number(rulePort) !== port) return false;
  if (ruleHost.startsWith('[') && ruleHost.endsWith(']')) ruleHost = ruleHost.slice(1, -1);
  const requested = (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host).toLowerCase();
  return globMatch(parseGlob(ruleHost.toLowerCase()), Array.from(requested), () => true);
}

/** An env allow-list entry (a name or a glob of names) against a variable name. */
export function matchEnvName(rule: string, name: string): boolean {
  return globMatch(parseGlob(rule), Array.from(name), () => true);
}
