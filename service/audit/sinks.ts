// Where exported audit records go: stdout, a rotated file, an HTTPS webhook. A sink's deliver()
// resolves only once the records are handed over for good (written and fsynced; a 2xx answer), so the
// exporter saves its position after it and a crash re-sends rather than loses (at least once).
import { createHash, createHmac } from 'node:crypto';
import { type FileHandle, mkdir, open, rename, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import type { ExportFormatName } from './export-format.js';

export interface AuditSink {
  readonly name: string;
  readonly format: ExportFormatName;
  /** Hand over these lines (each one JSON record, no newline); resolves when they are delivered. */
  deliver(lines: readonly string[]): Promise<void>;
  /** Stop retrying (a pending deliver rejects) and release what the sink holds. */
  close(): Promise<void>;
}

export class SinkClosedError extends Error {
  override readonly name = 'SinkClosedError';
}

export function stdoutSink(
  name: string,
  format: ExportFormatName,
  out: Writable = process.stdout,
): AuditSink {
  return {
    name,
    format,
    deliver: (lines) =>
      new Promise((resolve, reject) => {
        if (lines.length === 0) return resolve();
        out.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve()));
      }),
    close: async () => undefined,
  };
}

export interface FileSinkOptions {
  path: string;
  /** rotate before the file would grow past this (default 100 MiB) */
  maxBytes?: number;
  /** rotated files kept: path.1 (newest) … path.keep (default 5) */
  keep?: number;
}

/** JSON lines appended to a file, fsynced per batch, rotated by size (path → path.1 → … → path.keep). */
export function fileSink(name: string, format: ExportFormatName, opts: FileSinkOptions): AuditSink {
  const maxBytes = opts.maxBytes ?? 100 * 1024 * 1024;
  const keep = opts.keep ?? 5;
  let handle: FileHandle | null = null;
  let size = 0;
  let chain: Promise<void> = Promise.resolve();
  let closed = false;

  const ensureOpen = async (): Promise<FileHandle> => {
    if (handle) return handle;
    await mkdir(dirname(opts.path), { recursive: true });
    handle = await open(opts.path, 'a', 0o640);
    size = (await handle.stat()).size;
    return handle;
  };
  const rotate = async () => {
    if (handle) await handle.close();
    handle = null;
    for (let i = keep - 1; i >= 1; i--) {
      await rename(`${opts.path}.${i}`, `${opts.path}.${i + 1}`).catch(() => undefined);
    }
    await rename(opts.path, `${opts.path}.1`).catch(() => undefined);
  };
  const write = async (lines: readonly string[]) => {
    if (lines.length === 0) return;
    let fh = await ensureOpen();
    let pending = '';
    let pendingBytes = 0;
    const flush = async () => {
      if (!pending) return;
      size += (await fh.write(pending)).bytesWritten;
      pending = '';
      pendingBytes = 0;
    };
    for (const line of lines) {
      const add = `${line}\n`;
      const n = Buffer.byteLength(add);
      // a line that would take the file past the limit starts the next file (files hold whole lines)
      if (size + pendingBytes > 0 && size + pendingBytes + n > maxBytes) {
        await flush();
        await fh.datasync();
        await rotate();
        fh = await ensureOpen();
      }
      pending += add;
      pendingBytes += n;
      if (pendingBytes >= 1 << 20) await flush();
    }
    await flush();
    await fh.datasync();
  };
  return {
    name,
    format,
    deliver: (lines) => {
      if (closed) return Promise.reject(new SinkClosedError(`sink ${name} is closed`));
      const next = chain.then(() => write(lines));
      chain = next.catch(() => undefined);
      return next;
    },
    close: async () => {
      closed = true;
      await chain;
      if (handle) await handle.close();
      handle = null;
    },
  };
}

/** Whether `path` exists (for tests and start-up messages). */
export async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

export interface WebhookSinkOptions {
  url: string;
  /** the HMAC-SHA256 key */
  secret: string;
  /** records per POST at most (default 500) */
  batchSize?: number;
  /** PEM CA to trust for the receiver (https) */
  ca?: string;
  /** first retry delay (default 500 ms), doubled per attempt up to maxDelayMs (default 30 s) */
  retryBaseMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  /** told about each failed attempt (status or error), for the log */
  onFailure?: (info: { attempt: number; status?: number; error?: string; retryInMs: number }) => void;
  now?: () => number;
}

/**
 * The signature a receiver checks: hex HMAC-SHA256 over `${timestamp}.${body}` with the shared secret,
 * sent as `X-Hoop-Signature: v1=<hex>` beside `X-Hoop-Timestamp: <unix seconds>`. Binding the time lets
 * a receiver refuse replays of old deliveries (e.g. more than 5 minutes off).
 */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Records POSTed as application/x-ndjson, in batches, signed, retried with exponential backoff (with
 * jitter) until the receiver answers 2xx. Every attempt of a batch carries the same X-Hoop-Batch-Id (a
 * hash of its body) so a receiver can drop a batch it already has: delivery is at least once.
 */
export function webhookSink(name: string, format: ExportFormatName, opts: WebhookSinkOptions): AuditSink {
  const url = new URL(opts.url);
  const batchSize = opts.batchSize ?? 500;
  const base = opts.retryBaseMs ?? 500;
  const maxDelay = opts.maxDelayMs ?? 30_000;
  const now = opts.now ?? Date.now;
  let closed = false;
  const waits = new Set<() => void>();
  const inflight = new Set<{ destroy(): void }>();

  const sleep = (ms: number) =>
    new Promise<void>((resolve, reject) => {
      if (closed) return reject(new SinkClosedError(`sink ${name} is closed`));
      const t = setTimeout(() => {
        waits.delete(wake);
        resolve();
      }, ms);
      const wake = () => {
        clearTimeout(t);
        reject(new SinkClosedError(`sink ${name} is closed`));
      };
      waits.add(wake);
    });

  const post = (body: string, batchId: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const ts = Math.floor(now() / 1000);
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(
        url,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/x-ndjson',
            'content-length': Buffer.byteLength(body),
            'user-agent': 'hoop-broker audit export',
            'x-hoop-timestamp': String(ts),
            'x-hoop-signature': webhookSignature(opts.secret, ts, body),
            'x-hoop-batch-id': batchId,
            'x-hoop-sink': name,
          },
          ...(opts.ca && url.protocol === 'https:' ? { ca: opts.ca } : {}),
          timeout: opts.timeoutMs ?? 15_000,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            inflight.delete(req);
            resolve(res.statusCode ?? 0);
          });
        },
      );
      inflight.add(req);
      req.on('timeout', () => req.destroy(new Error('no answer in time')));
      req.on('error', (err) => {
        inflight.delete(req);
        reject(err);
      });
      req.end(body);
    });

  const deliverBatch = async (lines: readonly string[]) => {
    const body = `${lines.join('\n')}\n`;
    const batchId = createHash('sha256').update(body).digest('hex').slice(0, 32);
    for (let attempt = 1; ; attempt++) {
      if (closed) throw new SinkClosedError(`sink ${name} is closed`);
      let status: number | undefined;
      let error: string | undefined;
      try {
        status = await post(body, batchId);
        if (status >= 200 && status < 300) return;
      } catch (err) {
        error = (err as Error).message;
      }
      const delay = Math.min(maxDelay, base * 2 ** Math.min(attempt - 1, 20));
      const retryInMs = Math.round(delay * (0.8 + Math.random() * 0.4));
      opts.onFailure?.({
        attempt,
        ...(status !== undefined ? { status } : {}),
        ...(error ? { error } : {}),
        retryInMs,
      });
      await sleep(retryInMs);
    }
  };

  return {
    name,
    format,
    deliver: async (lines) => {
      for (let i = 0; i < lines.length; i += batchSize) await deliverBatch(lines.slice(i, i + batchSize));
    },
    close: async () => {
      closed = true;
      for (const w of waits) w();
      waits.clear();
      for (const r of inflight) r.destroy();
    },
  };
}
