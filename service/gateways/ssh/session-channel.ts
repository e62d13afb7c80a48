// One "session" channel of a client connection: its pty, env, agent and X11 requests, then one of exec,
// shell or subsystem (sftp), each judged (policy/ssh), refused with a message on the channel's stderr
// or carried out on an upstream channel of the same kind.
//
// Refusals of the channel's start (a command, a shell, a subsystem) are answered by accepting the
// request, writing "hoop: <reason>" to stderr and ending with exit status 126 (the shell's "cannot
// execute"): OpenSSH, scp, sftp and git all show the reason. Refused pty, env, agent and X11 requests
// are answered with a failure (clients carry on) and their reason is written to stderr when the
// command or shell starts. Every refusal is recorded before the client hears of it.
import { randomBytes } from 'node:crypto';
import type { ClientChannel, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import { TerminalRecording } from '../../audit/asciicast.js';
import type { AllowDecision, Decision } from '../../policy/decision.js';
import type { SshOperation } from '../../policy/operation.js';
import { decide, type SshFacts } from '../../policy/decide.js';
import type { SftpRequest } from '../../policy/ssh/decide.js';

const SSH: SshFacts = { kind: 'ssh' };
import { parseCommand } from '../../policy/ssh/command.js';
import { afterQueued, onUpstreamClose, relaySession, sendExit } from './relay.js';
import { type SftpOutcome, SftpProxy } from './sftp-proxy.js';
import type { ConnectionScope } from './connection-scope.js';

/** Exit status of a refused command, shell or subsystem. */
export const REFUSED_EXIT_STATUS = 126;

const SFTP_STATUS_NAMES: Record<number, string> = {
  1: 'EOF',
  2: 'NO_SUCH_FILE',
  3: 'PERMISSION_DENIED',
  4: 'FAILURE',
  5: 'BAD_MESSAGE',
  8: 'OP_UNSUPPORTED',
};

export class SessionChannel {
  readonly #scope: ConnectionScope;
  #pty: PseudoTtyInfo | null = null;
  readonly #env: Record<string, string> = {};
  readonly #notices: string[] = [];
  #channel: ServerChannel | null = null;
  #upstream: ClientChannel | null = null;
  #recording: TerminalRecording | null = null;
  #started = false;

  constructor(scope: ConnectionScope, session: Session) {
    this.#scope = scope;
    session.on('pty', (accept, reject, info) => this.#onPty(accept, reject, info));
    session.on('window-change', (accept, _reject, info) => {
      accept?.();
      if (this.#pty) Object.assign(this.#pty, { cols: info.cols, rows: info.rows });
      this.#upstream?.setWindow(info.rows, info.cols, info.height, info.width);
      this.#recording?.resize(info.cols, info.rows);
    });
    session.on('env', (accept, reject, info) => this.#onEnv(accept, reject, info.key, info.val));
    session.on('auth-agent', (_accept, reject) =>
      this.#refuseRequest(
        reject,
        'agent-forwarding',
        undefined,
        decide(this.#scope.rules, { kind: 'ssh.request', request: 'agent-forwarding' }, SSH),
      ),
    );
    session.on('x11', (_accept, reject) =>
      this.#refuseRequest(
        reject,
        'x11',
        undefined,
        decide(this.#scope.rules, { kind: 'ssh.request', request: 'x11' }, SSH),
      ),
    );
    session.on('signal', (accept, _reject, info) => {
      accept?.();
      this.#upstream?.signal(info.name);
    });
    session.on('exec', (accept, reject, info) => void this.#onExec(accept, reject, info.command));
    session.on('shell', (accept, reject) => void this.#onShell(accept, reject));
    session.on('subsystem', (accept, reject, info) => void this.#onSubsystem(accept, reject, info.name));
  }

  /** The session ended (revoked, expired, broker shutdown): say why and end the channel. */
  end(message: string): void {
    const ch = this.#channel;
    if (!ch || !ch.writable) return;
    ch.stderr.write(`\r\n${message}\r\n`);
    ch.exit(255);
    ch.end();
    this.#upstream?.close();
  }

  #onPty(accept: (() => void) | undefined, reject: (() => void) | undefined, info: PseudoTtyInfo): void {
    const decision = decide(this.#scope.rules, { kind: 'ssh.request', request: 'pty', name: info.term }, SSH);
    if (decision.effect === 'allow') {
      this.#pty = { ...info };
      accept?.();
      return;
    }
    this.#refuseRequest(reject, 'pty', info.term, decision);
  }

  #onEnv(
    accept: (() => void) | undefined,
    reject: (() => void) | undefined,
    key: string,
    value: string,
  ): void {
    const decision = decide(
      this.#scope.rules,
      { kind: 'ssh.request', request: 'env', name: key },
      { kind: 'ssh', envValue: value },
    );
    if (decision.effect === 'allow') {
      this.#env[key] = value;
      accept?.();
      return;
    }
    this.#refuseRequest(reject, 'env', key, decision);
  }

  /** A refused side request: recorded, answered with a failure, its reason shown when the channel starts. */
  #refuseRequest(
    reject: (() => void) | undefined,
    request: 'pty' | 'env' | 'agent-forwarding' | 'x11',
    name: string | undefined,
    decision: Decision,
  ): void {
    this.#notices.push(`hoop: ${decision.reasons[0] ?? `${request} refused`}`);
    void this.#scope.flow
      .refuse({ kind: 'ssh.request', request, ...(name !== undefined ? { name } : {}) }, decision)
      .then(() => reject?.());
  }

  #header(command?: string) {
    return {
      width: this.#pty?.cols || 80,
      height: this.#pty?.rows || 24,
      timestamp: Math.floor(this.#scope.now().getTime() / 1000),
      title: `${this.#scope.target} (${this.#scope.sessionId})`,
      env: { TERM: this.#pty?.term || 'dumb' },
      ...(command !== undefined ? { command } : {}),
    };
  }

  /** A channel whose start was refused: the reasons on stderr, exit status 126. */
  #refuseStart(ch: ServerChannel, decision: Decision): void {
    const lines = [...this.#notices, ...decision.reasons.map((r) => `hoop: ${r}`)];
    ch.stderr.write(`${lines.join('\r\n')}\r\n`);
    ch.exit(REFUSED_EXIT_STATUS);
    ch.end();
  }

  /** The start was allowed, but the upstream could not be reached (host key, login, network). */
  #failStart(ch: ServerChannel, message: string): void {
    ch.stderr.write(`hoop: ${message}\r\n`);
    ch.exit(255);
    ch.end();
  }

  /** Settle a decision (a hold goes to the approver) and record a refusal; the allow, or null. */
  async #settle(
    op: SshOperation,
    decision: Decision,
    ch?: ServerChannel | null,
  ): Promise<AllowDecision | { refused: Decision }> {
    // a hold: the client hears at once (on stderr) where to approve and until when
    const settled = await this.#scope.flow.settle(op, decision, {
      onHeld: (a, links) =>
        ch?.stderr.write(
          `hoop: held for approval ${a.id} until ${a.expires_at} (then denied); approve with: ${links.cli}\r\n`,
        ),
    });
    if (settled.effect === 'allow') return settled;
    await this.#scope.flow.refuse(op, settled);
    return { refused: settled };
  }

  /**
   * Accept the channel's start at once: ssh2 drops a client's EOF that arrives before the accept (and
   * then refuses the accept), and `ssh host cmd </dev/null` sends its EOF right after the request.
   * The decision follows; a refusal is then said on the accepted channel.
   */
  #claimStart(
    accept: () => ServerChannel | undefined,
    reject: (() => void) | undefined,
  ): ServerChannel | null {
    if (this.#started) {
      reject?.();
      return null;
    }
    this.#started = true;
    const ch = accept() ?? null;
    this.#channel = ch;
    // stdin waits in the channel (ssh2 stops granting window) until the relay reads it
    ch?.pause();
    return ch;
  }

  async #onExec(
    accept: () => ServerChannel | undefined,
    reject: (() => void) | undefined,
    command: string,
  ): Promise<void> {
    const ch = this.#claimStart(accept, reject);
    if (!ch) return;
    const op: SshOperation = { kind: 'ssh.exec', command };
    const settled = await this.#settle(op, decide(this.#scope.rules, op, SSH), ch);
    if ('refused' in settled) return this.#refuseStart(ch, settled.refused);
    const startedAt = performance.now();
    let up: ClientChannel;
    try {
      const upstream = await this.#scope.upstream();
      up = await new Promise<ClientChannel>((resolve, reject) => {
        upstream.exec(command, { env: this.#env, ...(this.#pty ? { pty: this.#pty } : {}) }, (err, stream) =>
          err ? reject(err) : resolve(stream),
        );
      });
    } catch (err) {
      return this.#failStart(ch, this.#scope.upstreamMessage(err));
    }
    if (!ch.writable) {
      up.close();
      return;
    }
    this.#upstream = up;
    if (this.#notices.length > 0) ch.stderr.write(`${this.#notices.join('\r\n')}\r\n`);
    // Plain commands' terminal output is recorded; git's and scp's streams are file data (their
    // transcript events carry the byte counts).
    if (parseCommand(command).kind === 'plain') this.#startRecording(command);
    const exit = await relaySession(ch, up, this.#taps());
    const recording = await this.#recording?.finish();
    this.#scope.flow.completed(op, settled.reasons, {
      duration_ms: performance.now() - startedAt,
      bytes: exit.bytes_in + exit.bytes_out,
      bytes_in: exit.bytes_in,
      bytes_out: exit.bytes_out,
      ...(exit.exit_code !== undefined ? { exit_code: exit.exit_code } : {}),
      ...(exit.signal !== undefined ? { signal: exit.signal } : {}),
      ...(recording ? { recording } : {}),
    });
  }

  async #onShell(accept: () => ServerChannel | undefined, reject: (() => void) | undefined): Promise<void> {
    const ch = this.#claimStart(accept, reject);
    if (!ch) return;
    const op: SshOperation = { kind: 'ssh.shell', ...(this.#pty ? { term: this.#pty.term } : {}) };
    const settled = await this.#settle(op, decide(this.#scope.rules, op, SSH), ch);
    if ('refused' in settled) return this.#refuseStart(ch, settled.refused);
    const startedAt = performance.now();
    let up: ClientChannel;
    try {
      const upstream = await this.#scope.upstream();
      up = await new Promise<ClientChannel>((resolve, reject) => {
        upstream.shell(this.#pty ?? false, { env: this.#env }, (err, stream) =>
          err ? reject(err) : resolve(stream),
        );
      });
    } catch (err) {
      return this.#failStart(ch, this.#scope.upstreamMessage(err));
    }
    if (!ch.writable) {
      up.close();
      return;
    }
    this.#upstream = up;
    if (this.#notices.length > 0) ch.stderr.write(`${this.#notices.join('\r\n')}\r\n`);
    this.#startRecording();
    const exit = await relaySession(ch, up, this.#taps());
    const recording = await this.#recording?.finish();
    this.#scope.flow.completed(op, settled.reasons, {
      duration_ms: performance.now() - startedAt,
      bytes: exit.bytes_in + exit.bytes_out,
      bytes_in: exit.bytes_in,
      bytes_out: exit.bytes_out,
      ...(exit.exit_code !== undefined ? { exit_code: exit.exit_code } : {}),
      ...(exit.signal !== undefined ? { signal: exit.signal } : {}),
      ...(recording ? { recording } : {}),
    });
  }

  #startRecording(command?: string): void {
    const scope = this.#scope;
    this.#recording = new TerminalRecording({
      id: `rec_${randomBytes(8).toString('hex')}`,
      header: this.#header(command),
      recordInput: scope.rules.ssh?.record_input === true && this.#pty !== null,
      maxBytes: scope.maxRecordingBytes,
      write: (chunks) => scope.recordings.append(scope.sessionId, chunks),
      onError: (err) => scope.logger.error({ err }, 'ssh recording chunk could not be written'),
    });
  }

  #taps() {
    const rec = this.#recording;
    return rec ? { output: (d: Buffer) => rec.output(d), input: (d: Buffer) => rec.input(d) } : {};
  }

  async #onSubsystem(
    accept: () => ServerChannel | undefined,
    reject: (() => void) | undefined,
    name: string,
  ): Promise<void> {
    const ch = this.#claimStart(accept, reject);
    if (!ch) return;
    const decision = decide(this.#scope.rules, { kind: 'ssh.request', request: 'subsystem', name }, SSH);
    if (decision.effect !== 'allow') {
      await this.#scope.flow.refuse({ kind: 'ssh.request', request: 'subsystem', name }, decision);
      return this.#refuseStart(ch, decision);
    }
    let up: ClientChannel;
    try {
      const upstream = await this.#scope.upstream();
      up = await new Promise<ClientChannel>((resolve, reject) => {
        upstream.subsys(name, (err, stream) => (err ? reject(err) : resolve(stream)));
      });
    } catch (err) {
      return this.#failStart(ch, this.#scope.upstreamMessage(err));
    }
    if (!ch.writable) {
      up.close();
      return;
    }
    this.#upstream = up;
    const scope = this.#scope;
    const flow = scope.flow;
    const toOperation = (r: SftpRequest): SshOperation => ({ kind: 'ssh.sftp', ...r });
    const proxy = new SftpProxy(ch, up, {
      judge: (r) => decide(scope.rules, toOperation(r), SSH),
      refused: async (r, d) => {
        if (!(await flow.refuse(toOperation(r), d))) throw new Error('refusal not recorded');
        // sftp and scp show a status by its code's words only; the reason goes to stderr, which they show
        ch.stderr.write(`hoop: ${d.reasons[0] ?? 'refused by policy'}\n`);
      },
      completed: (o: SftpOutcome) =>
        flow.completed(toOperation(o.request), [], {
          duration_ms: o.duration_ms,
          bytes: o.bytes_read + o.bytes_written,
          bytes_in: o.bytes_written,
          bytes_out: o.bytes_read,
          ...(o.status !== null && o.status !== 0
            ? { error: SFTP_STATUS_NAMES[o.status] ?? `status ${o.status}` }
            : {}),
        }),
      failed: (message) => {
        scope.logger.warn({ message }, 'sftp channel ended');
        ch.stderr.write(`hoop: ${message}\r\n`);
        ch.close();
        up.close();
      },
    });
    up.stderr.on('data', (d: Buffer) => ch.stderr.write(d));
    ch.on('close', () => {
      proxy.finish();
      up.close();
    });
    // the server's exit status goes to the client after the last reply (scp checks it)
    onUpstreamClose(up, (exit) => {
      proxy.finish();
      afterQueued(ch, () => {
        if (ch.writable) {
          sendExit(ch, exit);
          ch.end();
        }
      });
    });
  }
}
