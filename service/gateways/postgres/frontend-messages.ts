// Decoders for the frontend messages the broker looks into. Each returns null when the body is
// malformed, exactly as PostgreSQL would refuse it ("invalid message format"): the broker must see
// precisely the text the server will run, so a string must end at the message's end (no hidden
// bytes after a NUL) and counts must match the body's length.

class BodyCursor {
  pos = 0;
  constructor(private readonly body: Buffer) {}
  cstring(): string | null {
    const nul = this.body.indexOf(0, this.pos);
    if (nul < 0) return null;
    const s = this.body.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }
  /** cstring as raw bytes (for statement text: decoded by the caller) */
  cstringBytes(): Buffer | null {
    const nul = this.body.indexOf(0, this.pos);
    if (nul < 0) return null;
    const s = this.body.subarray(this.pos, nul);
    this.pos = nul + 1;
    return s;
  }
  int16(): number | null {
    if (this.pos + 2 > this.body.length) return null;
    const v = this.body.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number | null {
    if (this.pos + 4 > this.body.length) return null;
    const v = this.body.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  byte(): number | null {
    if (this.pos >= this.body.length) return null;
    return this.body[this.pos++]!;
  }
  skip(n: number): boolean {
    if (n < 0 || this.pos + n > this.body.length) return false;
    this.pos += n;
    return true;
  }
  atEnd(): boolean {
    return this.pos === this.body.length;
  }
}

/** Query: one NUL-terminated string filling the whole body. */
export function decodeQuery(body: Buffer): string | null {
  if (body.length === 0 || body.indexOf(0) !== body.length - 1) return null;
  return body.toString('utf8', 0, body.length - 1);
}

export interface ParseMessage {
  name: string;
  text: string;
  paramTypes: number[];
}

export function decodeParse(body: Buffer): ParseMessage | null {
  const c = new BodyCursor(body);
  const name = c.cstring();
  const text = c.cstring();
  const n = c.int16();
  if (name === null || text === null || n === null || n < 0) return null;
  const paramTypes: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = c.int32();
    if (t === null) return null;
    paramTypes.push(t >>> 0);
  }
  return c.atEnd() ? { name, text, paramTypes } : null;
}

export interface BindMessage {
  portal: string;
  statement: string;
  /** result-column format codes: [] all text, [f] all f, else one per column */
  resultFormats: number[];
}

export function decodeBind(body: Buffer): BindMessage | null {
  const c = new BodyCursor(body);
  const portal = c.cstring();
  const statement = c.cstring();
  if (portal === null || statement === null) return null;
  const nParamFormats = c.int16();
  if (nParamFormats === null || nParamFormats < 0 || !c.skip(nParamFormats * 2)) return null;
  const nParams = c.int16();
  if (nParams === null || nParams < 0) return null;
  for (let i = 0; i < nParams; i++) {
    const len = c.int32();
    if (len === null || len < -1) return null;
    if (len > 0 && !c.skip(len)) return null;
  }
  const nResult = c.int16();
  if (nResult === null || nResult < 0) return null;
  const resultFormats: number[] = [];
  for (let i = 0; i < nResult; i++) {
    const f = c.int16();
    if (f === null || (f !== 0 && f !== 1)) return null;
    resultFormats.push(f);
  }
  return c.atEnd() ? { portal, statement, resultFormats } : null;
}

export interface TargetedMessage {
  /** 'S' prepared statement, 'P' portal */
  target: 'S' | 'P';
  name: string;
}

/** Describe and Close share a layout: a kind byte and a name. */
export function decodeDescribeOrClose(body: Buffer): TargetedMessage | null {
  const c = new BodyCursor(body);
  const kind = c.byte();
  const name = c.cstring();
  if ((kind !== 0x53 && kind !== 0x50) || name === null || !c.atEnd()) return null;
  return { target: kind === 0x53 ? 'S' : 'P', name };
}

export interface ExecuteMessage {
  portal: string;
  maxRows: number;
}

export function decodeExecute(body: Buffer): ExecuteMessage | null {
  const c = new BodyCursor(body);
  const portal = c.cstring();
  const maxRows = c.int32();
  if (portal === null || maxRows === null || !c.atEnd()) return null;
  return { portal, maxRows };
}

/** PasswordMessage: the password as a NUL-terminated string. */
export function decodePassword(body: Buffer): string | null {
  return decodeQuery(body);
}

export interface SaslInitialResponse {
  mechanism: string;
  /** null when the client sent -1 (no initial response) */
  data: Buffer | null;
}

export function decodeSaslInitialResponse(body: Buffer): SaslInitialResponse | null {
  const c = new BodyCursor(body);
  const mechanism = c.cstring();
  const len = c.int32();
  if (mechanism === null || len === null || len < -1) return null;
  if (len === -1) return c.atEnd() ? { mechanism, data: null } : null;
  const start = c.pos;
  if (!c.skip(len) || !c.atEnd()) return null;
  return { mechanism, data: body.subarray(start, start + len) };
}

export interface FunctionCallMessage {
  /** the function's OID */
  oid: number;
  /** how many arguments (their values are passed through untouched) */
  nArgs: number;
  /** 0 text, 1 binary */
  resultFormat: 0 | 1;
}

/** FunctionCall (the fast-path interface: libpq's PQfn and its large-object functions). */
export function decodeFunctionCall(body: Buffer): FunctionCallMessage | null {
  const c = new BodyCursor(body);
  const oid = c.int32();
  if (oid === null) return null;
  const nFormats = c.int16();
  if (nFormats === null || nFormats < 0) return null;
  for (let i = 0; i < nFormats; i++) {
    const f = c.int16();
    if (f !== 0 && f !== 1) return null;
  }
  const nArgs = c.int16();
  if (nArgs === null || nArgs < 0) return null;
  // formats: none (all text), one (for all), or one per argument
  if (nFormats > 1 && nFormats !== nArgs) return null;
  for (let i = 0; i < nArgs; i++) {
    const len = c.int32();
    if (len === null || len < -1) return null;
    if (len > 0 && !c.skip(len)) return null;
  }
  const resultFormat = c.int16();
  if (resultFormat !== 0 && resultFormat !== 1) return null;
  return c.atEnd() ? { oid: oid >>> 0, nArgs, resultFormat } : null;
}
