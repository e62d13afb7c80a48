// Kubernetes `Status` objects: how the gateway answers what it refuses, so kubectl prints
// "Error from server (Forbidden): …" the way it prints an RBAC denial.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  406: 'NotAcceptable',
  413: 'RequestEntityTooLarge',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
};

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
}

export function statusBody(code: number, message: string, details?: StatusDetails): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: REASONS[code] ?? 'Unknown',
    ...(details && Object.keys(details).length ? { details } : {}),
    code,
  });
}

export function sendStatus(
  res: ServerResponse,
  code: number,
  message: string,
  details?: StatusDetails,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = statusBody(code, message, details);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** The same on a socket that asked for an upgrade (exec, attach, port-forward), then closed. */
export function sendStatusOnSocket(
  socket: Duplex,
  code: number,
  message: string,
  details?: StatusDetails,
): void {
  const body = statusBody(code, message, details);
  socket.end(
    `HTTP/1.1 ${code} ${REASONS[code] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
