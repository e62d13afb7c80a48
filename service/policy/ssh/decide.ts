// The ssh rules of a grant, judged: exec (plain commands, git, legacy scp), shell, pty, SFTP requests,
// port forwards, environment variables, and the channel kinds that are always refused. Pure: the
// gateway hands over what the client asked for, as data, and turns the Decision back into protocol.
//
// Order for an exec: commands.deny (a guard, matched loosely and against each chained part) first,
// for every command; then git commands by git.read / git.push, legacy scp by sftp.read / sftp.write,
// and every other command by commands.approve (held for a human) and commands.allow (allowed); what
// none of them allows is denied. `access: read` refuses every write (sftp writes, scp uploads, git
// push) and the shell, whatever the rules say.
import type { Access } from '../../config/schema.js';
import type { CommandPattern, SshGrant } from '../../config/targets/ssh.js';
import { allow, type Decision, deny, hold } from '../decision.js';
import { chainedParts, parseCommand } from './command.js';
import {
  describeCommandPattern,
  MAX_COMMAND_CHARS,
  matchAnyPath,
  matchCommand,
  matchDestination,
  matchEnvName,
  normalizePath,
} from './patterns.js';

/** What the ssh rules read from a grant. */
export interface SshRules {
  target: string;
  access: Access;
  ssh?: SshGrant | undefined;
}

/** SFTP requests as the rules see them (open by how the file is opened; the rest by what they do). */
export type SftpRequest =
  | { op: 'open'; path: string; mode: 'read' | 'write' | 'append' | 'read-write' }
  | { op: 'list' | 'stat' | 'readlink' | 'realpath' | 'statvfs'; path: string }
  | { op: 'mkdir' | 'rmdir' | 'remove' | 'setstat'; path: string }
  | { op: 'rename' | 'symlink' | 'hardlink'; path: string; target_path: string };

export type ForwardRequest = { direction: 'local' | 'remote'; host: string; port: number };

/** Environment variables every grant accepts: git's protocol negotiation (`version=2`). */
export const BUILTIN_ENV: Readonly<Record<string, RegExp>> = { GIT_PROTOCOL: /^version=[0-9]$/ };

const MAX_SHOWN = 300;
const show = (text: string): string => {
  const clean = text.replace(/\p{Cc}/gu, '?');
  return JSON.stringify(clean.length > MAX_SHOWN ? `${clean.slice(0, MAX_SHOWN)}…` : clean);
};

/** An exec request's command. */
export function decideExec(rules: SshRules, command: string): Decision {
  const ssh = rules.ssh ?? {};
  if (command.length > MAX_COMMAND_CHARS)
    return deny('ssh.command', `the command is longer than ${MAX_COMMAND_CHARS} characters`);
  if (command.includes('\0')) return deny('ssh.command', 'the command contains a NUL character');
  const denied = denyRuleHit(ssh.commands?.deny, command);
  if (denied) return denied;

  const parsed = parseCommand(command);
  if (parsed.kind === 'git') {
    const repository = normalizePath(parsed.repository.replace(/\/+$/, ''));
    if (repository === null)
      return deny('git', `repository path ${show(parsed.repository)} cannot be judged`);
    if (parsed.service === 'git-receive-pack') {
      if (rules.access === 'read')
        return deny('access: read', `git push to ${show(repository)} refused: the grant's access is read`);
      const rule = matchAnyPath(ssh.git?.push, repository);
      return rule
        ? allow([`git push to ${show(repository)} allowed by git.push ${show(rule)}`])
        : deny(
            'git.push',
            `git push to ${show(repository)} refused: no git.push rule of grant ${rules.target} matches it`,
          );
    }
    const rule = matchAnyPath(ssh.git?.read, repository) ?? matchAnyPath(ssh.git?.push, repository);
    return rule
      ? allow([`git fetch of ${show(repository)} allowed by ${show(rule)}`])
      : deny(
          'git.read',
          `git fetch of ${show(repository)} refused: no git.read (or git.push) rule of grant ${rules.target} matches it`,
        );
  }
  if (parsed.kind === 'scp') {
    const path = normalizePath(parsed.path);
    if (path === null) return deny('scp', `scp path ${show(parsed.path)} cannot be judged`);
    // A sink writes `path` or, when it is a directory, entries below it (any depth with -r); a
    // source reads likewise. The rules must cover all of that: one probe name stands for any entry.
    const probes = [path, childOf(path, 1)];
    if (parsed.recursive) probes.push(childOf(path, 2));
    if (parsed.direction === 'upload') {
      if (rules.access === 'read')
        return deny('access: read', `scp upload to ${show(path)} refused: the grant's access is read`);
      const miss = probes.find((p) => !matchAnyPath(ssh.sftp?.write, p));
      return miss === undefined
        ? allow([`scp upload to ${show(path)} allowed by sftp.write`])
        : deny(
            'sftp.write',
            `scp upload to ${show(path)} refused: sftp.write of grant ${rules.target} does not cover ${miss === path ? 'it' : parsed.recursive ? 'everything below it' : 'the files in it'}`,
          );
    }
    const miss = probes.find((p) => !matchAnyPath(ssh.sftp?.read, p));
    return miss === undefined
      ? allow([`scp download of ${show(path)} allowed by sftp.read`])
      : deny(
          'sftp.read',
          `scp download of ${show(path)} refused: sftp.read of grant ${rules.target} does not cover ${miss === path ? 'it' : parsed.recursive ? 'everything below it' : 'the files in it'}`,
        );
  }

  for (const pattern of ssh.commands?.approve ?? []) {
    const m = matchCommand(pattern, command, true);
    if (m === 'timeout') return regexTimeout(pattern);
    if (m === 'match')
      return hold(
        'commands.approve',
        `command ${show(command)} needs approval: it matches commands.approve ${describeCommandPattern(pattern)}`,
      );
  }
  for (const pattern of ssh.commands?.allow ?? []) {
    const m = matchCommand(pattern, command, true);
    if (m === 'timeout') return regexTimeout(pattern);
    if (m === 'match') return allow([`command allowed by commands.allow ${describeCommandPattern(pattern)}`]);
  }
  return deny(
    'commands.allow',
    ssh.commands?.allow?.length
      ? `command ${show(command)} refused: it matches no commands.allow rule of grant ${rules.target}`
      : `command ${show(command)} refused: grant ${rules.target} allows no commands (commands.allow is empty)`,
  );
}

/** The entry `depth` levels below `path`, standing for any name (it matches `*` and `**`, nothing named). */
function childOf(path: string, depth: number): string {
  const probe = '\u0001hoop-any-entry';
  const base = path === '/' ? '' : path;
  return `${base}${`/${probe}`.repeat(depth)}`;
}

function denyRuleHit(patterns: readonly CommandPattern[] | undefined, command: string): Decision | null {
  if (!patterns) return null;
  const parts = [command, ...chainedParts(command)];
  for (const pattern of patterns) {
    for (const part of parts) {
      const m = matchCommand(pattern, part, false);
      if (m === 'timeout') return regexTimeout(pattern);
      if (m === 'match')
        return deny(
          'commands.deny',
          `command ${show(command)} refused by commands.deny ${describeCommandPattern(pattern)}`,
        );
    }
  }
  return null;
}

function regexTimeout(pattern: CommandPattern): Decision {
  return deny(
    'ssh.command',
    `command refused: matching it against ${describeCommandPattern(pattern)} took too long (a regex that backtracks)`,
  );
}

/** A shell request (`ssh host`, `ssh -t host`). `pty`: a terminal was allocated for it. */
export function decideShell(rules: SshRules, pty: boolean): Decision {
  if (rules.access === 'read')
    return deny('access: read', `a shell refused: the grant's access is read (a shell can run anything)`);
  if (rules.ssh?.shell !== true)
    return deny(
      'shell',
      `a shell refused: grant ${rules.target} does not allow one (shell: true); run a command: ssh ${rules.target} COMMAND`,
    );
  return allow([
    pty ? 'shell with a terminal allowed (shell: true, pty: true)' : 'shell allowed (shell: true)',
  ]);
}

/** A pty-req (`ssh -t`, or a plain `ssh host`). */
export function decidePty(rules: SshRules): Decision {
  return rules.ssh?.pty === true
    ? allow(['terminal allowed (pty: true)'])
    : deny('pty', `a terminal refused: grant ${rules.target} does not allow one (pty: true)`);
}

/** A subsystem request: only sftp exists here. */
export function decideSubsystem(rules: SshRules, name: string): Decision {
  if (name !== 'sftp') return deny('ssh.subsystem', `subsystem ${show(name)} is not served (only sftp)`);
  if (!rules.ssh?.sftp?.read && !rules.ssh?.sftp?.write)
    return deny('sftp', `sftp refused: grant ${rules.target} has no sftp.read or sftp.write rules`);
  return allow(['sftp subsystem']);
}

/** One SFTP request. */
export function decideSftp(rules: SshRules, request: SftpRequest): Decision {
  const sftp = rules.ssh?.sftp ?? {};
  const path = normalizePath(request.path);
  if (path === null) return deny('sftp', `path ${show(request.path)} cannot be judged`);
  // Resolving a name (the client's first request, `cd`) reveals nothing a stat of it would not.
  if (request.op === 'realpath') return allow();
  const readRule = (p: string) => matchAnyPath(sftp.read, p);
  const writeRule = (p: string) => matchAnyPath(sftp.write, p);
  const refuseRead = (what: string) =>
    deny('sftp.read', `${what} ${show(path)} refused: no sftp.read rule of grant ${rules.target} matches it`);
  const needWrite = (what: string, paths: string[]): Decision => {
    if (rules.access === 'read')
      return deny('access: read', `${what} ${show(path)} refused: the grant's access is read`);
    const miss = paths.find((p) => !writeRule(p));
    if (miss !== undefined)
      return deny(
        'sftp.write',
        `${what} ${show(miss)} refused: no sftp.write rule of grant ${rules.target} matches it`,
      );
    return allow();
  };
  switch (request.op) {
    case 'open':
      if (request.mode === 'read') return readRule(path) ? allow() : refuseRead('reading');
      if (request.mode === 'read-write' && !readRule(path)) return refuseRead('reading');
      return needWrite('writing', [path]);
    case 'list':
      return readRule(path) ? allow() : refuseRead('listing');
    case 'readlink':
      return readRule(path) ? allow() : refuseRead('reading the link');
    case 'stat':
    case 'statvfs':
      // metadata: what may be read or written may be looked at
      return readRule(path) || writeRule(path)
        ? allow()
        : deny(
            'sftp.read',
            `stat of ${show(path)} refused: no sftp.read or sftp.write rule of grant ${rules.target} matches it`,
          );
    case 'mkdir':
      return needWrite('creating directory', [path]);
    case 'rmdir':
      return needWrite('removing directory', [path]);
    case 'remove':
      return needWrite('removing', [path]);
    case 'setstat':
      return needWrite('changing attributes of', [path]);
    case 'rename': {
      const to = normalizePath(request.target_path);
      if (to === null) return deny('sftp', `path ${show(request.target_path)} cannot be judged`);
      return needWrite('renaming', [path, to]);
    }
    case 'symlink':
    case 'hardlink': {
      // A link inside a writable tree pointing outside it would let reads and writes through the
      // link's name reach the target: both ends must be writable. A relative target is relative to
      // the link's directory.
      const target = request.target_path.startsWith('/')
        ? normalizePath(request.target_path)
        : normalizePath(`${path.slice(0, path.lastIndexOf('/') + 1) || './'}${request.target_path}`);
      if (target === null) return deny('sftp', `link target ${show(request.target_path)} cannot be judged`);
      return needWrite(request.op === 'symlink' ? 'creating symlink' : 'creating hard link', [path, target]);
    }
  }
}

/** A port forward. Remote forwarding (`ssh -R`) would open a listener on the target: never. */
export function decideForward(rules: SshRules, request: ForwardRequest): Decision {
  const dest = `${request.host.includes(':') ? `[${request.host}]` : request.host}:${request.port}`;
  if (request.direction === 'remote')
    return deny(
      'ssh.forward.remote',
      `remote forwarding (ssh -R ${show(dest)}) is not allowed through the broker`,
    );
  const rule = (rules.ssh?.forwards ?? []).find((r) => matchDestination(r, request.host, request.port));
  return rule
    ? allow([`forward to ${dest} allowed by forwards ${show(rule)}`])
    : deny(
        'forwards',
        rules.ssh?.forwards?.length
          ? `forward to ${show(dest)} refused: it is not in the forwards of grant ${rules.target}`
          : `forward to ${show(dest)} refused: grant ${rules.target} lists no forwards`,
      );
}

/** An env request. The value is never shown (it may be a secret). */
export function decideEnv(rules: SshRules, name: string, value: string): Decision {
  const builtin = BUILTIN_ENV[name];
  if (builtin)
    return builtin.test(value)
      ? allow()
      : deny('env', `environment variable ${show(name)} refused: unexpected value`);
  const rule = (rules.ssh?.env ?? []).find((r) => matchEnvName(r, name));
  return rule
    ? allow()
    : deny(
        'env',
        `environment variable ${show(name)} refused: it is not in the env allow-list of grant ${rules.target}`,
      );
}

/** Agent forwarding would hand the target the job's keys: never. */
export const AGENT_FORWARDING_REFUSED = deny(
  'ssh.agent',
  "agent forwarding is not allowed through the broker (the target would use the job's keys)",
);
/** X11 forwarding: never. */
export const X11_REFUSED = deny('ssh.x11', 'X11 forwarding is not allowed through the broker');
