// The configured audit export sinks (config `audit.export`), opened with their resolved secrets.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';
import { type AuditSink, fileSink, stdoutSink, webhookSink } from './sinks.js';

export async function openAuditSinks(
  config: ResolvedConfig,
  secrets: ReadonlyMap<string, string>,
  logger: Logger,
): Promise<AuditSink[]> {
  const sinks: AuditSink[] = [];
  for (const [index, sink] of (config.audit?.export ?? []).entries()) {
    const format = sink.format ?? 'jsonl';
    if (sink.kind === 'stdout') sinks.push(stdoutSink(sink.name, format));
    else if (sink.kind === 'file')
      sinks.push(
        fileSink(sink.name, format, {
          path: sink.path,
          ...(sink.max_bytes ? { maxBytes: sink.max_bytes } : {}),
          ...(sink.keep ? { keep: sink.keep } : {}),
        }),
      );
    else {
      const secret = secrets.get(`audit.export[${index}].secret`);
      if (!secret) throw new Error(`audit.export[${index}].secret was not resolved`);
      const ca = sink.ca_file ? await readFile(sink.ca_file, 'utf8') : undefined;
      const log = logger.child({ component: 'audit-export', sink: sink.name });
      sinks.push(
        webhookSink(sink.name, format, {
          url: sink.url,
          secret,
          ...(sink.batch_size ? { batchSize: sink.batch_size } : {}),
          ...(ca ? { ca } : {}),
          // never the URL's query or the body: only where and what failed
          onFailure: (f) =>
            log.warn({ host: new URL(sink.url).host, ...f }, 'audit webhook delivery failed; retrying'),
        }),
      );
    }
  }
  return sinks;
}
