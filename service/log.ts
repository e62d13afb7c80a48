// One pino logger for the whole broker, passed down; children carry session_id / target / conn_id.
// Redaction covers every field that can hold a secret, at any depth we log.
import { type Logger, type LoggerOptions, pino } from 'pino';

export const REDACT_PATHS = [
  'oidc_token',
  'secret',
  'password',
  'token',
  'authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.oidc_token',
  '*.secret',
  '*.password',
  '*.token',
  '*.authorization',
  'body.oidc_token',
  'body.secret',
];

export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'hoop-broker' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
