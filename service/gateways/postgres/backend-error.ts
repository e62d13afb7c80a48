// Errors the broker itself sends to clients, as typed values. They carry a SQLSTATE so clients and
// tools react as they would to PostgreSQL; they never carry stack traces, upstream credentials or
// upstream error text that could reveal them.

export const SQLSTATE = {
  protocolViolation: '08P01',
  connectionFailure: '08006',
  cannotConnectNow: '57P03',
  unableToConnect: '08001',
  invalidAuthorization: '28000',
  invalidPassword: '28P01',
  insufficientPrivilege: '42501',
  invalidCatalogName: '3D000',
  adminShutdown: '57P01',
  featureNotSupported: '0A000',
  tooManyConnections: '53300',
  outOfMemory: '53200',
  programLimitExceeded: '54000',
  invalidParameterValue: '22023',
  internalError: 'XX000',
  syntaxError: '42601',
  queryCanceled: '57014',
} as const;

export type Severity = 'ERROR' | 'FATAL' | 'NOTICE' | 'WARNING';

export interface BackendError {
  severity: Severity;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  /** 1-based character position in the statement text, as PostgreSQL's 'P' field */
  position?: number;
}

export const fatal = (
  code: string,
  message: string,
  extra: Pick<BackendError, 'detail' | 'hint'> = {},
): BackendError => ({
  severity: 'FATAL',
  code,
  message,
  ...extra,
});

export const error = (
  code: string,
  message: string,
  extra: Omit<BackendError, 'severity' | 'code' | 'message'> = {},
): BackendError => ({
  severity: 'ERROR',
  code,
  message,
  ...extra,
});

/** Same message for an unknown session and a wrong secret: no oracle for valid session ids. */
export const authFailed = (user: string): BackendError =>
  fatal(SQLSTATE.invalidPassword, `password authentication failed for user "${printable(user)}"`);

/** Keep client-chosen strings (user names, target names) readable and bounded when echoed back. */
export function printable(text: string, max = 80): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
