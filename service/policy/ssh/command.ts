// What an exec request's command string is, as far as the rules care: a git transport command (judged
// by repository rules), a legacy scp (judged by path rules), or a plain command (judged by command
// rules). Pure.
//
// The remote shell interprets the string, so a command is recognised as git or scp only when it is
// exactly that program and its arguments as plain words (unquoted safe characters, single quotes as
// git writes them, backslash escapes) with nothing the shell would expand or chain: no unquoted
// metacharacters, globs, `~`, `$`, variables or substitutions. Anything else is a plain command.

export type ParsedCommand =
  | {
      kind: 'git';
      service: 'git-upload-pack' | 'git-receive-pack' | 'git-upload-archive';
      repository: string;
    }
  | {
      kind: 'scp';
      /** -t: the client sends files to `path` (sink); -f: the client fetches `path` (source) */
      direction: 'upload' | 'download';
      path: string;
      recursive: boolean;
      /** the words after `scp`, as the rules show them */
      flags: string[];
    }
  | { kind: 'plain' };

/** A word may hold these unquoted without the shell doing anything to them (no `~`, globs or `$`). */
const SAFE_UNQUOTED = /^[A-Za-z0-9_@%+=:,./-]$/;

/**
 * Split a command into shell words when it is nothing but plain words. null when the shell would do
 * more than split it (metacharacters, expansions, an unterminated quote).
 */
export function plainWords(command: string): string[] | null {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  const chars = Array.from(command);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === ' ' || ch === '\t') {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
      continue;
    }
    if (ch === "'") {
      const end = chars.indexOf("'", i + 1);
      if (end < 0) return null;
      current += chars.slice(i + 1, end).join('');
      i = end;
      inWord = true;
      continue;
    }
    if (ch === '\\') {
      const next = chars[i + 1];
      if (next === undefined || next === '\n') return null;
      current += next;
      i++;
      inWord = true;
      continue;
    }
    if (!SAFE_UNQUOTED.test(ch)) return null;
    current += ch;
    inWord = true;
  }
  if (inWord) words.push(current);
  // `NAME=value cmd` sets a variable for cmd: not a plain program and its arguments
  if (words[0]?.includes('=')) return null;
  return words;
}

const GIT_SERVICES = new Set(['git-upload-pack', 'git-receive-pack', 'git-upload-archive']);
const SCP_FLAGS = new Set(['-t', '-f', '-r', '-p', '-d', '-v', '-q']);

export function parseCommand(command: string): ParsedCommand {
  const words = plainWords(command);
  if (!words || words.length === 0) return { kind: 'plain' };
  const [program, ...args] = words;
  if (GIT_SERVICES.has(program!)) {
    // `git-upload-pack '<path>'`; git 2.x sends exactly one argument
    if (args.length !== 1 || args[0] === '' || args[0]!.startsWith('-')) return { kind: 'plain' };
    return {
      kind: 'git',
      service: program as 'git-upload-pack' | 'git-receive-pack' | 'git-upload-archive',
      repository: args[0]!,
    };
  }
  if (program === 'scp') {
    const flags: string[] = [];
    let i = 0;
    for (; i < args.length; i++) {
      const arg = args[i]!;
      if (arg === '--') {
        i++;
        break;
      }
      if (!arg.startsWith('-')) break;
      // combined short flags, as scp's getopt takes them (`-pt`)
      const letters = arg.slice(1).split('');
      if (letters.length === 0 || !letters.every((l) => SCP_FLAGS.has(`-${l}`))) return { kind: 'plain' };
      flags.push(...letters.map((l) => `-${l}`));
    }
    const rest = args.slice(i);
    const to = flags.includes('-t');
    const from = flags.includes('-f');
    if (rest.length !== 1 || to === from || rest[0] === '') return { kind: 'plain' };
    return {
      kind: 'scp',
      direction: to ? 'upload' : 'download',
      path: rest[0]!,
      recursive: flags.includes('-r'),
      flags,
    };
  }
  return { kind: 'plain' };
}

/**
 * The simple commands a command line chains (split at `;`, `&`, `|`, newlines; `&&` and `||` too),
 * for deny rules only: a guard against mistakes, never a parser of the shell's grammar.
 */
export function chainedParts(command: string): string[] {
  return command
    .split(/\|\||&&|[;&|\n\r]/)
    .map((part) => part.trim())
    .filter((part) => part !== '');
}
