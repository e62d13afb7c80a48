// Backend (server → client) messages: builders for the ones the broker originates, and readers for
// the few upstream messages it must look into. Everything else is relayed as raw bytes.
import type { BackendError } from './backend-error.js';

export const BackendType = {
  authentication: 0x52, // R
  parameterStatus: 0x53, // S
  backendKeyData: 0x4b, // K
  readyForQuery: 0x5a, // Z
  errorResponse: 0x45, // E
  noticeResponse: 0x4e, // N
  rowDescription: 0x54, // T
  dataRow: 0x44, // D
  commandComplete: 0x43, // C
  emptyQueryResponse: 0x49, // I
  parseComplete: 0x31, // 1
  bindComplete: 0x32, // 2
  closeComplete: 0x33, // 3
  noData: 0x6e, // n
  parameterDescription: 0x74, // t
  portalSuspended: 0x73, // s
  copyInResponse: 0x47, // G
  copyOutResponse: 0x48, // H
  copyBothResponse: 0x57, // W
  copyData: 0x64, // d
  copyDone: 0x63, // c
  functionCallResponse: 0x56, // V
  notificationResponse: 0x41, // A
  negotiateProtocolVersion: 0x76, // v
} as const;

/** One backend message: type byte, Int32 length (itself included), body. */
export function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstrings(values: string[]): Buffer {
  return Buffer.concat(values.map((v) => Buffer.from(`${v}\0`, 'utf8')));
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

export const authenticationOk = (): Buffer => frame(BackendType.authentication, int32(0));
export const authenticationCleartextPassword = (): Buffer => frame(BackendType.authentication, int32(3));
export const authenticationSasl = (mechanisms: string[]): Buffer =>
  frame(BackendType.authentication, Buffer.concat([int32(10), cstrings(mechanisms), Buffer.from([0])]));
export const authenticationSaslContinue = (data: string): Buffer =>
  frame(BackendType.authentication, Buffer.concat([int32(11), Buffer.from(data, 'utf8')]));
export const authenticationSaslFinal = (data: string): Buffer =>
  frame(BackendType.authentication, Buffer.concat([int32(12), Buffer.from(data, 'utf8')]));

export const parameterStatus = (name: string, value: string): Buffer =>
  frame(BackendType.parameterStatus, cstrings([name, value]));

export function backendKeyData(processId: number, secretKey: Buffer): Buffer {
  return frame(BackendType.backendKeyData, Buffer.concat([int32(processId), secretKey]));
}

export type TransactionStatus = 'I' | 'T' | 'E';
export const readyForQuery = (status: TransactionStatus): Buffer =>
  frame(BackendType.readyForQuery, Buffer.from(status, 'latin1'));

/** NegotiateProtocolVersion: the newest minor version we speak and the `_pq_.` options we ignore. */
export const negotiateProtocolVersion = (minor: number, unsupported: string[]): Buffer =>
  frame(
    BackendType.negotiateProtocolVersion,
    Buffer.concat([int32(minor), int32(unsupported.length), cstrings(unsupported)]),
  );

/** One notice/error field: single-byte code ('S', 'V', 'C', 'M', 'D', 'H', 'P', …) and its text. */
export type NoticeField = [code: string, value: string];

export function noticeFields(err: BackendError): NoticeField[] {
  const fields: NoticeField[] = [
    ['S', err.severity],
    ['V', err.severity],
    ['C', err.code],
    ['M', err.message],
  ];
  if (err.detail !== undefined) fields.push(['D', err.detail]);
  if (err.hint !== undefined) fields.push(['H', err.hint]);
  if (err.position !== undefined) fields.push(['P', String(err.position)]);
  return fields;
}

export function fieldsMessage(type: number, fields: NoticeField[]): Buffer {
  const parts: Buffer[] = [];
  for (const [code, value] of fields) parts.push(Buffer.from(`${code}${value.replace(/\0/g, '')}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  return frame(type, Buffer.concat(parts));
}

export const errorResponse = (err: BackendError): Buffer =>
  fieldsMessage(BackendType.errorResponse, noticeFields(err));
export const noticeResponse = (err: BackendError): Buffer =>
  fieldsMessage(BackendType.noticeResponse, noticeFields(err));

/** Read an ErrorResponse/NoticeResponse body (between the header and the end of the frame). */
export function readNoticeFields(buf: Buffer, start: number, end: number): NoticeField[] {
  const fields: NoticeField[] = [];
  let pos = start;
  while (pos < end && buf[pos] !== 0) {
    const code = String.fromCharCode(buf[pos]!);
    const nul = buf.indexOf(0, pos + 1);
    if (nul < 0 || nul >= end) break;
    fields.push([code, buf.toString('utf8', pos + 1, nul)]);
    pos = nul + 1;
  }
  return fields;
}

/** Does an ErrorResponse body (fields from `start`) end the session: severity FATAL or PANIC? */
export function isFatalError(buf: Buffer, start: number, end: number): boolean {
  for (const [code, value] of readNoticeFields(buf, start, end)) {
    // 'V' is the non-localized severity (9.6+); 'S' may be translated, but is the same when V is absent
    if (code === 'V' || code === 'S') return value === 'FATAL' || value === 'PANIC';
  }
  return false;
}

export function dataRow(cells: ReadonlyArray<Buffer | null>): Buffer {
  let size = 2;
  for (const c of cells) size += 4 + (c ? c.length : 0);
  const out = Buffer.allocUnsafe(5 + size);
  out[0] = BackendType.dataRow;
  out.writeInt32BE(4 + size, 1);
  out.writeInt16BE(cells.length, 5);
  let pos = 7;
  for (const c of cells) {
    if (c === null) {
      out.writeInt32BE(-1, pos);
      pos += 4;
    } else {
      out.writeInt32BE(c.length, pos);
      c.copy(out, pos + 4);
      pos += 4 + c.length;
    }
  }
  return out;
}

export const copyData = (chunk: Buffer): Buffer => frame(BackendType.copyData, chunk);

export interface RowField {
  name: string;
  tableOid: number;
  columnNumber: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: 0 | 1;
}

/** RowDescription body → fields; null when malformed (the caller fails closed). */
export function readRowDescription(buf: Buffer, start: number, end: number): RowField[] | null {
  if (end - start < 2) return null;
  const count = buf.readInt16BE(start);
  const fields: RowField[] = [];
  let pos = start + 2;
  for (let i = 0; i < count; i++) {
    const nul = buf.indexOf(0, pos);
    if (nul < 0 || nul + 19 > end) return null;
    const name = buf.toString('utf8', pos, nul);
    pos = nul + 1;
    fields.push({
      name,
      tableOid: buf.readUInt32BE(pos),
      columnNumber: buf.readInt16BE(pos + 4),
      typeOid: buf.readUInt32BE(pos + 6),
      typeSize: buf.readInt16BE(pos + 10),
      typeModifier: buf.readInt32BE(pos + 12),
      format: buf.readInt16BE(pos + 16) === 1 ? 1 : 0,
    });
    pos += 18;
  }
  return fields;
}

/** Rows affected/returned, from a CommandComplete tag: "SELECT 5", "INSERT 0 3", "UPDATE 2", "COPY 10". */
export function rowsFromCommandTag(tag: string): number | undefined {
  const space = tag.lastIndexOf(' ');
  if (space < 0) return undefined;
  const n = Number(tag.slice(space + 1));
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The NUL-terminated string of a CommandComplete frame. */
export function readCommandTag(buf: Buffer, start: number, end: number): string {
  const nul = buf.indexOf(0, start);
  return buf.toString('latin1', start, nul < 0 || nul > end ? end : nul);
}

/** Read a DataRow body into cells; null when malformed. */
export function readDataRow(buf: Buffer, start: number, end: number): Array<Buffer | null> | null {
  if (end - start < 2) return null;
  const count = buf.readInt16BE(start);
  const cells: Array<Buffer | null> = new Array(count);
  let pos = start + 2;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > end) return null;
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) {
      cells[i] = null;
    } else {
      if (pos + len > end) return null;
      cells[i] = buf.subarray(pos, pos + len);
      pos += len;
    }
  }
  return cells;
}
