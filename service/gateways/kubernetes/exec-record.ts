// What an exec or attach session did, read from the channel protocol as it passes (WebSocket
// messages or SPDY streams): bytes per stream, the exit status from the error stream's Status, and,
// when the grant records output, stdout/stderr as an asciicast v2 recording (capped).

/** Recorded output is capped; the recording says when it was cut. */
export const MAX_CAST_BYTES = 1024 * 1024;

export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

export interface ExecSummary {
  stdin_bytes: number;
  stdout_bytes: number;
  stderr_bytes: number;
  /** 0 on Success, the ExitCode cause otherwise; null when no status came (connection cut) */
  exit_code: number | null;
  /** the Status message when the command failed for another reason */
  error?: string;
  asciicast?: string;
  asciicast_truncated?: boolean;
}

export class ExecRecording {
  readonly #started = Date.now();
  readonly #recordOutput: boolean;
  #cast: string[] = [];
  #castBytes = 0;
  #truncated = false;
  #width = 80;
  #height = 24;
  readonly #command: string;
  readonly summary: ExecSummary = { stdin_bytes: 0, stdout_bytes: 0, stderr_bytes: 0, exit_code: null };
  #status = '';

  constructor(command: string, recordOutput: boolean) {
    this.#command = command;
    this.#recordOutput = recordOutput;
  }

  /** bytes the client sent on a channel */
  fromClient(channel: number, data: Buffer): void {
    if (channel === CHANNEL.stdin) this.summary.stdin_bytes += data.length;
    else if (channel === CHANNEL.resize) {
      try {
        const size = JSON.parse(data.toString('utf8')) as { Width?: number; Height?: number };
        if (typeof size.Width === 'number' && typeof size.Height === 'number') {
          if (this.#cast.length === 0) {
            this.#width = size.Width;
            this.#height = size.Height;
          } else this.#event('r', `${size.Width}x${size.Height}`);
        }
      } catch {
        // a resize message that is not JSON changes nothing here
      }
    }
  }

  /** bytes the server sent on a channel */
  fromServer(channel: number, data: Buffer): void {
    if (channel === CHANNEL.stdout) {
      this.summary.stdout_bytes += data.length;
      if (data.length) this.#event('o', data.toString('utf8'));
    } else if (channel === CHANNEL.stderr) {
      this.summary.stderr_bytes += data.length;
      if (data.length) this.#event('o', data.toString('utf8'));
    } else if (channel === CHANNEL.error) {
      this.#status += data.toString('utf8');
      this.#readStatus();
    }
  }

  #readStatus(): void {
    let s: {
      status?: string;
      message?: string;
      reason?: string;
      details?: { causes?: { reason?: string; message?: string }[] };
    };
    try {
      s = JSON.parse(this.#status);
    } catch {
      return; // not complete yet (SPDY may split it), or plain text of an old protocol
    }
    if (s.status === 'Success') this.summary.exit_code = 0;
    else {
      const cause = s.details?.causes?.find((c) => c.reason === 'ExitCode');
      const code = cause?.message !== undefined ? Number.parseInt(cause.message, 10) : Number.NaN;
      if (Number.isInteger(code)) this.summary.exit_code = code;
      else if (s.message) this.summary.error = s.message.slice(0, 1000);
    }
  }

  #event(type: 'o' | 'r', text: string): void {
    if (!this.#recordOutput || this.#truncated) return;
    const line = JSON.stringify([Number(((Date.now() - this.#started) / 1000).toFixed(6)), type, text]);
    if (this.#castBytes + line.length > MAX_CAST_BYTES) {
      this.#truncated = true;
      return;
    }
    this.#cast.push(line);
    this.#castBytes += line.length + 1;
  }

  finish(): ExecSummary {
    if (this.#recordOutput) {
      const header = JSON.stringify({
        version: 2,
        width: this.#width,
        height: this.#height,
        timestamp: Math.floor(this.#started / 1000),
        command: this.#command,
      });
      this.summary.asciicast = `${[header, ...this.#cast].join('\n')}\n`;
      if (this.#truncated) this.summary.asciicast_truncated = true;
    }
    return this.summary;
  }
}
