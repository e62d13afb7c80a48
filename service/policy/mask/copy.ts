// Masking COPY … TO STDOUT data (CopyData payloads) in text and CSV formats.
//
// Text format (what pg_dump uses): one row per line, fields separated by the delimiter (default tab),
// NULL written as the null marker (default \N), and backslash escapes in data (\t \n \\ \ooo \xhh …).
// A masked field is decoded, masked, and re-encoded the way PostgreSQL would write it.
// CSV format (psql `\copy … csv`): quoted fields may hold delimiters and newlines; masked fields are
// written quoted. Binary format cannot be masked here: the gateway refuses a binary COPY whose plan is
// active (see copyMaskSupport).
//
// Longer than most files here (~740 lines) on purpose: the text format's decoding, escaping, row
// splitting and the stream masker's fast paths share private helpers and invariants (one row per
// newline, escapes decoded before the detectors look) that are easier to check read together.
import type { Detector } from '../../config/schema.js';
import type { CellAction, CopyInfo, MaskPlan } from '../sql/types.js';
import { type CellReplacement, maskCell, maskCellAt } from './cell.js';
import { OutBuffer } from './out-buffer.js';

export type CopyMaskSupport = { ok: true } | { ok: false; reason: string };

/** Can the gateway mask a COPY TO in this format with this plan? */
export function copyMaskSupport(format: CopyInfo['format'], plan: MaskPlan): CopyMaskSupport {
  if (!plan.active) return { ok: true };
  if (format === 'binary') {
    return {
      ok: false,
      reason: 'binary COPY of masked or scanned columns cannot be masked; use text or csv format',
    };
  }
  return { ok: true };
}

/** A row that does not fit the plan (wrong number of fields, broken quoting): the gateway aborts the COPY. */
export class CopyFormatError extends Error {}

export interface CopyRowOptions {
  delimiter?: string;
  null?: string;
}

export interface CsvRowOptions extends CopyRowOptions {
  quote?: string;
  escape?: string;
}

export interface MaskedRow {
  line: Buffer;
  /** cells masked in this row */
  masked: number;
}

const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const CR = 0x0d;

function oneByte(s: string | undefined, fallback: number, what: string): number {
  if (s === undefined) return fallback;
  const b = Buffer.from(s, 'utf8');
  if (b.length !== 1) throw new CopyFormatError(`COPY ${what} must be a single one-byte character`);
  return b[0]!;
}

/** Split off the line terminator ("\n" or "\r\n"), kept to write back unchanged. */
function splitTerminator(line: Buffer): [Buffer, Buffer] {
  let end = line.length;
  if (end > 0 && line[end - 1] === NEWLINE) end--;
  if (end > 0 && line[end - 1] === CR) end--;
  return [line.subarray(0, end), line.subarray(end)];
}

// ---- text format ---------------------------------------------------------------------------------

function decodeText(raw: Buffer): Buffer {
  if (!raw.includes(BACKSLASH)) return raw;
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== BACKSLASH || i + 1 >= raw.length) {
      out.push(c);
      continue;
    }
    const n = raw[++i]!;
    switch (n) {
      case 0x62:
        out.push(0x08);
        break; // \b
      case 0x66:
        out.push(0x0c);
        break; // \f
      case 0x6e:
        out.push(0x0a);
        break; // \n
      case 0x72:
        out.push(0x0d);
        break; // \r
      case 0x74:
        out.push(0x09);
        break; // \t
      case 0x76:
        out.push(0x0b);
        break; // \v
      case 0x78: {
        // \xh or \xhh
        let v = 0;
        let digits = 0;
        while (digits < 2 && i + 1 < raw.length && /[0-9a-fA-F]/.test(String.fromCharCode(raw[i + 1]!))) {
          v = v * 16 + Number.parseInt(String.fromCharCode(raw[++i]!), 16);
          digits++;
        }
        out.push(digits === 0 ? 0x78 : v);
        break;
      }
      default:
        if (n >= 0x30 && n <= 0x37) {
          // \o, \oo, \ooo
          let v = n - 0x30;
          let digits = 1;
          while (digits < 3 && i + 1 < raw.length && raw[i + 1]! >= 0x30 && raw[i + 1]! <= 0x37) {
            v = v * 8 + (raw[++i]! - 0x30);
            digits++;
          }
          out.push(v & 0xff);
        } else {
          out.push(n);
        }
    }
  }
  return Buffer.from(out);
}

function encodeText(value: Buffer, delimiter: number): Buffer {
  const out: number[] = [];
  for (const c of value) {
    switch (c) {
      case BACKSLASH:
        out.push(BACKSLASH, BACKSLASH);
        break;
      case 0x08:
        out.push(BACKSLASH, 0x62);
        break;
      case 0x0c:
        out.push(BACKSLASH, 0x66);
        break;
      case 0x0a:
        out.push(BACKSLASH, 0x6e);
        break;
      case 0x0d:
        out.push(BACKSLASH, 0x72);
        break;
      case 0x09:
        out.push(BACKSLASH, 0x74);
        break;
      case 0x0b:
        out.push(BACKSLASH, 0x76);
        break;
      default:
        if (c === delimiter) out.push(BACKSLASH, c);
        else out.push(c);
    }
  }
  return Buffer.from(out);
}

/** Split a text-format row into raw (still escaped) fields; an escaped delimiter is data. */
function splitTextFields(body: Buffer, delimiter: number): Buffer[] {
  const fields: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === BACKSLASH) {
      i++;
      continue;
    }
    if (c === delimiter) {
      fields.push(body.subarray(start, i));
      start = i + 1;
    }
  }
  fields.push(body.subarray(start));
  return fields;
}

/** Decode a text-format row into values (null for the null marker). Exported for tests and the gateway. */
export function decodeCopyTextRow(line: Buffer, options: CopyRowOptions = {}): Array<Buffer | null> {
  const delimiter = oneByte(options.delimiter, 0x09, 'delimiter');
  const nullMarker = Buffer.from(options.null ?? '\\N', 'utf8');
  const [body] = splitTerminator(line);
  return splitTextFields(body, delimiter).map((raw) => (raw.equals(nullMarker) ? null : decodeText(raw)));
}

/** Encode values as one text-format row (with "\n"). */
export function encodeCopyTextRow(values: Array<Buffer | null>, options: CopyRowOptions = {}): Buffer {
  const delimiter = oneByte(options.delimiter, 0x09, 'delimiter');
  const nullMarker = Buffer.from(options.null ?? '\\N', 'utf8');
  const parts: Buffer[] = [];
  values.forEach((v, i) => {
    if (i > 0) parts.push(Buffer.from([delimiter]));
    parts.push(v === null ? nullMarker : encodeText(v, delimiter));
  });
  parts.push(Buffer.from([NEWLINE]));
  return Buffer.concat(parts);
}

/** Does a text-format field need escaping before it is written (see encodeText)? */
function needsTextEscape(value: Buffer, delimiter: number): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === BACKSLASH || c === delimiter || (c >= 0x08 && c <= 0x0d)) return true;
  }
  return false;
}

/**
 * Masks text-format rows in place: the row is split into fields by offset (no subarrays); only the
 * fields whose action is not pass are looked at, each on its raw bytes when it has no escape (the
 * detectors' byte check, cell.ts); a changed row is written into an output buffer, field by field,
 * with the unchanged fields copied as they came.
 */
class TextRowMasker {
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;
  private readonly escaped: Uint8Array;
  private readonly replaced: Array<CellReplacement | null>;
  private readonly nullMarker: Buffer;

  constructor(
    private readonly actions: readonly CellAction[],
    private readonly detectors: readonly Detector[],
    private readonly delimiter: number,
    nullMarker: Buffer,
  ) {
    const n = actions.length;
    this.starts = new Int32Array(n);
    this.ends = new Int32Array(n);
    this.escaped = new Uint8Array(n);
    this.replaced = new Array<CellReplacement | null>(n).fill(null);
    this.nullMarker = nullMarker;
  }

  private isNull(buf: Buffer, start: number, end: number): boolean {
    const m = this.nullMarker;
    if (end - start !== m.length) return false;
    for (let i = 0; i < m.length; i++) if (buf[start + i] !== m[i]) return false;
    return true;
  }

  /**
   * Mask the row body `buf[start, end)` (its terminator left out). Returns the number of cells
   * masked; when that is not 0, `write` puts the masked body into an output buffer.
   * Throws CopyFormatError when the row does not have one field per action.
   */
  mask(buf: Buffer, start: number, end: number): number {
    const bs = this.nextBackslash(buf, start);
    if (bs === -1 || bs >= end) this.splitPlain(buf, start, end);
    else this.splitEscaped(buf, start, end);
    return this.maskFields(buf);
  }

  /** where the next backslash at or after `from` is in buf (-1: none); one search serves many rows */
  private bsBuf: Buffer | null = null;
  private bsFrom = 0;
  private bsAt = -1;
  private nextBackslash(buf: Buffer, from: number): number {
    if (buf !== this.bsBuf || from < this.bsFrom || (this.bsAt !== -1 && this.bsAt < from)) {
      this.bsBuf = buf;
      this.bsFrom = from;
      this.bsAt = buf.indexOf(BACKSLASH, from);
    }
    return this.bsAt;
  }

  /** a row without escapes: its fields found with the native search for the delimiter */
  private splitPlain(buf: Buffer, start: number, end: number): void {
    const n = this.actions.length;
    let fieldStart = start;
    for (let field = 0; ; field++) {
      let d = buf.indexOf(this.delimiter, fieldStart);
      if (d === -1 || d > end) d = end;
      if (d === end) {
        if (field !== n - 1) throw new CopyFormatError(`COPY row has ${field + 1} fields, expected ${n}`);
      } else if (field >= n - 1) {
        throw new CopyFormatError(`COPY row has more than ${n} fields`);
      }
      this.starts[field] = fieldStart;
      this.ends[field] = d;
      this.escaped[field] = 0;
      if (d === end) return;
      fieldStart = d + 1;
    }
  }

  private splitEscaped(buf: Buffer, start: number, end: number): void {
    const n = this.actions.length;
    const delimiter = this.delimiter;
    let field = 0;
    let fieldStart = start;
    let escaped = 0;
    for (let i = start; i < end; i++) {
      const c = buf[i]!;
      if (c === BACKSLASH) {
        escaped = 1;
        i++;
        continue;
      }
      if (c === delimiter) {
        if (field >= n - 1) throw new CopyFormatError(`COPY row has more than ${n} fields`);
        this.starts[field] = fieldStart;
        this.ends[field] = i;
        this.escaped[field] = escaped;
        field++;
        fieldStart = i + 1;
        escaped = 0;
      }
    }
    if (field !== n - 1) throw new CopyFormatError(`COPY row has ${field + 1} fields, expected ${n}`);
    this.starts[field] = fieldStart;
    this.ends[field] = end;
    this.escaped[field] = escaped;
  }

  private maskFields(buf: Buffer): number {
    const n = this.actions.length;
    let masked = 0;
    for (let k = 0; k < n; k++) {
      const action = this.actions[k]!;
      if (action.kind === 'pass') continue;
      const fs = this.starts[k]!;
      const fe = this.ends[k]!;
      if (this.isNull(buf, fs, fe)) continue; // NULL stays NULL
      let r: CellReplacement | null;
      if (this.escaped[k]) {
        const value = decodeText(buf.subarray(fs, fe));
        r = maskCellAt(action, value, 0, value.length, this.detectors);
      } else {
        r = maskCellAt(action, buf, fs, fe, this.detectors);
      }
      if (r !== null) {
        this.replaced[k] = r;
        masked++;
      }
    }
    return masked;
  }

  /**
   * After mask() returned non-zero: the masked row body into `out` (then forgets the replacements),
   * and what follows the body up to `tailEnd` (its terminator) as it came.
   */
  write(buf: Buffer, out: OutBuffer, tailEnd = this.ends[this.actions.length - 1]!): void {
    const n = this.actions.length;
    let copyFrom = this.starts[0]!;
    for (let k = 0; k < n; k++) {
      const r = this.replaced[k];
      if (r === null || r === undefined) continue;
      this.replaced[k] = null;
      out.range(buf, copyFrom, this.starts[k]!);
      if (r.value === null) out.bytes(this.nullMarker);
      else if (needsTextEscape(r.value, this.delimiter)) out.bytes(encodeText(r.value, this.delimiter));
      else out.bytes(r.value);
      copyFrom = this.ends[k]!;
    }
    out.range(buf, copyFrom, tailEnd);
  }
}

/** Mask one text-format row. Fields whose action is pass (or that did not change) keep their raw bytes. */
export function maskCopyTextRow(
  line: Buffer,
  actions: CellAction[],
  detectors: Detector[],
  options: CopyRowOptions = {},
): MaskedRow {
  const delimiter = oneByte(options.delimiter, 0x09, 'delimiter');
  const nullMarker = Buffer.from(options.null ?? '\\N', 'utf8');
  const [body, terminator] = splitTerminator(line);
  const rows = new TextRowMasker(actions, detectors, delimiter, nullMarker);
  const masked = rows.mask(body, 0, body.length);
  if (masked === 0) return { line, masked };
  const out = new OutBuffer();
  rows.write(line, out, body.length + terminator.length);
  return { line: out.take(), masked };
}

// ---- CSV format ----------------------------------------------------------------------------------

interface CsvField {
  value: Buffer;
  quoted: boolean;
  raw: Buffer;
}

function splitCsvFields(body: Buffer, delimiter: number, quote: number, escapeChar: number): CsvField[] {
  const fields: CsvField[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    if (i < body.length && body[i] === quote) {
      const value: number[] = [];
      i++;
      let closed = false;
      while (i < body.length) {
        const c = body[i]!;
        if (
          c === escapeChar &&
          escapeChar !== quote &&
          i + 1 < body.length &&
          (body[i + 1] === quote || body[i + 1] === escapeChar)
        ) {
          value.push(body[i + 1]!);
          i += 2;
          continue;
        }
        if (c === quote) {
          if (escapeChar === quote && body[i + 1] === quote) {
            value.push(quote);
            i += 2;
            continue;
          }
          i++;
          closed = true;
          break;
        }
        value.push(c);
        i++;
      }
      if (!closed) throw new CopyFormatError('COPY CSV row has an unterminated quoted field');
      // PostgreSQL allows unquoted text after the closing quote up to the delimiter.
      while (i < body.length && body[i] !== delimiter) value.push(body[i++]!);
      fields.push({ value: Buffer.from(value), quoted: true, raw: body.subarray(start, i) });
    } else {
      while (i < body.length && body[i] !== delimiter) i++;
      const raw = body.subarray(start, i);
      fields.push({ value: raw, quoted: false, raw });
    }
    if (i >= body.length) break;
    i++; // delimiter
    if (i === body.length) {
      fields.push({ value: Buffer.alloc(0), quoted: false, raw: Buffer.alloc(0) });
      break;
    }
  }
  return fields;
}

function encodeCsv(value: Buffer, quote: number, escapeChar: number): Buffer {
  const out: number[] = [quote];
  for (const c of value) {
    if (c === quote || c === escapeChar) out.push(escapeChar);
    out.push(c);
  }
  out.push(quote);
  return Buffer.from(out);
}

function csvOptions(options: CsvRowOptions): {
  delimiter: number;
  quote: number;
  escape: number;
  nullMarker: Buffer;
} {
  const delimiter = oneByte(options.delimiter, 0x2c, 'delimiter');
  const quote = oneByte(options.quote, 0x22, 'quote');
  const escapeChar = oneByte(options.escape, quote, 'escape');
  return { delimiter, quote, escape: escapeChar, nullMarker: Buffer.from(options.null ?? '', 'utf8') };
}

/** Decode a CSV record into values (null for an unquoted null marker). */
export function decodeCopyCsvRow(record: Buffer, options: CsvRowOptions = {}): Array<Buffer | null> {
  const o = csvOptions(options);
  const [body] = splitTerminator(record);
  return splitCsvFields(body, o.delimiter, o.quote, o.escape).map((f) =>
    !f.quoted && f.raw.equals(o.nullMarker) ? null : f.value,
  );
}

/** Mask one CSV record. Masked values are written quoted; NULL as the (unquoted) null marker. */
export function maskCopyCsvRow(
  record: Buffer,
  actions: CellAction[],
  detectors: Detector[],
  options: CsvRowOptions = {},
): MaskedRow {
  const o = csvOptions(options);
  const [body, terminator] = splitTerminator(record);
  const fields = splitCsvFields(body, o.delimiter, o.quote, o.escape);
  if (fields.length !== actions.length) {
    throw new CopyFormatError(`COPY row has ${fields.length} fields, expected ${actions.length}`);
  }
  let masked = 0;
  const out: Buffer[] = [];
  fields.forEach((f, i) => {
    const action = actions[i]!;
    if (i > 0) out.push(Buffer.from([o.delimiter]));
    if (action.kind === 'pass') {
      out.push(f.raw);
      return;
    }
    const value = !f.quoted && f.raw.equals(o.nullMarker) ? null : f.value;
    const cell = maskCell(action, value, detectors);
    if (!cell.masked) {
      out.push(f.raw);
      return;
    }
    masked++;
    out.push(cell.value === null ? o.nullMarker : encodeCsv(cell.value, o.quote, o.escape));
  });
  out.push(terminator);
  return { line: Buffer.concat(out), masked };
}

// ---- a stream of CopyData payloads ---------------------------------------------------------------

export interface MaskedCopyData extends MaskedRow {
  /** `line` is the payload pushed, unchanged and whole: the CopyData can go out as it came */
  same: boolean;
  /** when not same and line is not empty: `line` framed as one CopyData message */
  frame?: Buffer;
}

/** bytes reserved before a payload for the CopyData header (type, Int32 length) */
const FRAME_HEADER = 5;
const COPY_DATA = 0x64;

/**
 * Masks the CopyData payloads of one COPY TO, row by row. PostgreSQL sends one row per CopyData, but this
 * does not rely on it: partial rows are held until complete (CSV rows may contain quoted newlines).
 * The header row of `HEADER` output is passed through. Throws CopyFormatError on a malformed row.
 *
 * Text format (pg_dump, psql's \copy) is the fast path: rows are found with a native search for the
 * newline (an escaped newline in text format is written as `\n`, so every 0x0a ends a row), a row
 * without a changed cell costs no copy at all, and a payload none of whose rows changed is passed on
 * as it came (`same`).
 */
export class CopyOutMasker {
  private pending: Buffer = Buffer.alloc(0);
  private headerPending: boolean;
  private inQuote = false;
  private scanned = 0;
  private readonly quote: number;
  private readonly escape: number;
  private readonly text: TextRowMasker | null;
  private readonly out = new OutBuffer();

  constructor(
    private readonly copy: Pick<CopyInfo, 'format' | 'delimiter' | 'null' | 'quote' | 'escape' | 'header'>,
    private readonly actions: CellAction[],
    private readonly detectors: Detector[],
  ) {
    if (copy.format === 'binary') throw new CopyFormatError('binary COPY cannot be masked');
    this.headerPending = copy.header;
    this.quote = oneByte(copy.quote, 0x22, 'quote');
    this.escape = oneByte(copy.escape, this.quote, 'escape');
    this.text =
      copy.format === 'text'
        ? new TextRowMasker(
            actions,
            detectors,
            oneByte(copy.delimiter, 0x09, 'delimiter'),
            Buffer.from(copy.null ?? '\\N', 'utf8'),
          )
        : null;
  }

  /** Feed one CopyData payload; returns the masked bytes of every row completed so far. */
  push(data: Buffer): MaskedCopyData {
    return this.text ? this.pushText(data, this.text) : this.pushCsv(data);
  }

  private pushText(payload: Buffer, rows: TextRowMasker): MaskedCopyData {
    const whole = this.pending.length === 0;
    const data = whole ? payload : Buffer.concat([this.pending, payload]);
    const out = this.out;
    out.len = FRAME_HEADER;
    let masked = 0;
    let changed = false;
    let clean = 0; // rows from here on are unchanged and not yet copied to out
    let pos = 0;
    for (let nl = data.indexOf(NEWLINE, pos); nl !== -1; nl = data.indexOf(NEWLINE, pos)) {
      let bodyEnd = nl;
      if (bodyEnd > pos && data[bodyEnd - 1] === CR) bodyEnd--;
      const n = this.textRow(rows, data, pos, bodyEnd);
      if (n > 0) {
        out.range(data, clean, pos);
        rows.write(data, out, nl + 1);
        clean = nl + 1;
        masked += n;
        changed = true;
      }
      pos = nl + 1;
    }
    this.pending = pos < data.length ? data.subarray(pos) : Buffer.alloc(0);
    if (!changed) {
      const line = pos === data.length ? data : data.subarray(0, pos);
      return { line, masked: 0, same: whole && pos === data.length };
    }
    out.range(data, clean, pos);
    return this.framed(masked);
  }

  /**
   * The fast path for a chunk from the server: consecutive whole CopyData messages of text format,
   * starting at `pos` in `buf` (up to `limit`), each ending with a newline (complete rows). Masks
   * them as push() would, into one buffer of CopyData messages, one per message in. Returns where it
   * stopped (pos: nothing taken, call push for that message) and that buffer, or null when every
   * message taken is unchanged (then they go out as they came).
   */
  pushRun(buf: Buffer, pos: number, limit: number): { end: number; out: Buffer | null; masked: number } {
    const rows = this.text;
    if (!rows || this.pending.length !== 0) return { end: pos, out: null, masked: 0 };
    const out = this.out;
    out.len = 0;
    try {
      return this.run(rows, out, buf, pos, limit);
    } finally {
      out.unmirror();
    }
  }

  private run(
    rows: TextRowMasker,
    out: OutBuffer,
    buf: Buffer,
    pos: number,
    limit: number,
  ): { end: number; out: Buffer | null; masked: number } {
    let clean = pos; // bytes from here are unchanged messages (or rows) not yet copied to out
    let masked = 0;
    let changed = false;
    let mirrored = false;
    let p = pos;
    while (limit - p >= 5 && buf[p] === COPY_DATA) {
      const fe = p + 1 + buf.readInt32BE(p + 1);
      if (fe > limit || fe - p < 6 || buf[fe - 1] !== NEWLINE) break;
      let frameStart = -1; // where this message's header is in out, once it changed
      let rowStart = p + 5;
      while (rowStart < fe) {
        const nl = buf.indexOf(NEWLINE, rowStart);
        let bodyEnd = nl;
        if (bodyEnd > rowStart && buf[bodyEnd - 1] === CR) bodyEnd--;
        const n = this.textRow(rows, buf, rowStart, bodyEnd);
        if (n > 0) {
          if (frameStart === -1) {
            // the chunk's unchanged bytes are copied within the output buffer from here on
            if (!mirrored) out.mirror(buf, clean, limit);
            mirrored = true;
            out.range(buf, clean, p);
            frameStart = out.len;
            out.range(buf, p, p + 5); // the header; its length is set below
            clean = p + 5;
          }
          out.range(buf, clean, rowStart);
          rows.write(buf, out, nl + 1);
          clean = nl + 1;
          masked += n;
        }
        rowStart = nl + 1;
      }
      if (frameStart !== -1) {
        out.range(buf, clean, fe);
        clean = fe;
        out.buf.writeInt32BE(out.len - frameStart - 1, frameStart + 1);
        changed = true;
      }
      p = fe;
    }
    if (!changed) return { end: p, out: null, masked: 0 };
    out.range(buf, clean, p);
    return { end: p, out: out.take(), masked };
  }

  /** the rows in the output buffer, framed as one CopyData */
  private framed(masked: number): MaskedCopyData {
    const out = this.out;
    out.buf[0] = COPY_DATA;
    out.buf.writeInt32BE(out.len - 1, 1);
    const frame = out.take();
    return { line: frame.subarray(FRAME_HEADER), masked, same: false, frame };
  }

  /** one text row's body: 0 when it goes out as it came, else the cells masked (rows.write then) */
  private textRow(rows: TextRowMasker, data: Buffer, start: number, end: number): number {
    if (this.headerPending) {
      this.headerPending = false;
      return 0;
    }
    // PostgreSQL's end-of-data marker in text format.
    if (end - start === 2 && data[start] === BACKSLASH && data[start + 1] === 0x2e) return 0;
    return rows.mask(data, start, end);
  }

  private pushCsv(data: Buffer): MaskedCopyData {
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    const rows: Buffer[] = [];
    let masked = 0;
    let rowStart = 0;
    let i = this.scanned;
    while (i < this.pending.length) {
      const c = this.pending[i]!;
      if (this.inQuote && c === this.escape && this.escape !== this.quote && i + 1 < this.pending.length) {
        i += 2;
        continue;
      }
      if (c === this.quote) this.inQuote = !this.inQuote;
      if (c === NEWLINE && !this.inQuote) {
        const row = this.pending.subarray(rowStart, i + 1);
        const done = this.csvRow(row);
        rows.push(done.line);
        masked += done.masked;
        rowStart = i + 1;
      }
      i++;
    }
    this.pending = this.pending.subarray(rowStart);
    this.scanned = this.pending.length;
    return { line: rows.length === 1 ? rows[0]! : Buffer.concat(rows), masked, same: false };
  }

  /** End of the COPY: a last row without a newline is masked too. */
  finish(): MaskedRow {
    if (this.pending.length === 0) return { line: Buffer.alloc(0), masked: 0 };
    if (this.inQuote) throw new CopyFormatError('COPY CSV data ends inside a quoted field');
    const last = this.pending;
    this.pending = Buffer.alloc(0);
    this.scanned = 0;
    if (!this.text) return this.csvRow(last);
    const [body] = splitTerminator(last);
    const n = this.textRow(this.text, body, 0, body.length);
    if (n === 0) return { line: last, masked: 0 };
    this.out.len = 0;
    this.text.write(last, this.out, last.length);
    return { line: this.out.take(), masked: n };
  }

  private csvRow(row: Buffer): MaskedRow {
    if (this.headerPending) {
      this.headerPending = false;
      return { line: row, masked: 0 };
    }
    return maskCopyCsvRow(row, this.actions, this.detectors, this.copy);
  }
}
