// planMask: what to do with each result column, from the mask rules and the columns' origins.
//
// - A column whose origin (schema.table.column from RowDescription + catalog) matches a column rule:
//   a text-like type (text, varchar, bpchar, name, "char", unknown, or a user-defined type such as citext,
//   an enum or a domain) in text format, or a built-in one but "char" in binary format (the raw UTF-8)
//   → `mask` (same-kind text mask); anything else, including other binary-format values (a user type's
//   binary form is its own) and json/jsonb/xml (a text mask would not be valid there) → `null`.
// - With detectors configured, every other column whose value is text on the wire — text-like types in
//   either format (binary text is the raw UTF-8), json and jsonb (their text keeps JSON valid after masking,
//   see maskCell), xml; in text format also arrays of those, records, text search types and user-defined
//   types — is scanned (`detect`), whatever its origin, computed columns included. The last group in
//   binary format cannot be scanned in place: `null`.
// - Everything else passes. Column rules without a schema mean public; names compare case-insensitively.
import type { Detector, MaskRule } from '../../config/schema.js';
import { columnMaskRules } from '../sql/decide.js';
import type { CellAction, ColumnOrigin, MaskPlan } from '../sql/types.js';

export const TYPE_OID = {
  char: 18,
  name: 19,
  text: 25,
  json: 114,
  xml: 142,
  unknown: 705,
  bpchar: 1042,
  varchar: 1043,
  jsonb: 3802,
} as const;

/** OIDs below this are built in; above are user-defined (extensions, enums, domains, composites). */
const FIRST_USER_OID = 16384;

const TEXT_LIKE = new Set<number>([
  TYPE_OID.char,
  TYPE_OID.name,
  TYPE_OID.text,
  TYPE_OID.unknown,
  TYPE_OID.bpchar,
  TYPE_OID.varchar,
]);
const JSON_TYPES = new Set<number>([TYPE_OID.json, TYPE_OID.jsonb]);
/**
 * Built-in types whose text form carries text: arrays of the string, json and xml types, records (a
 * row's fields as text), arrays of records, text search vectors and queries (lexemes). Their text
 * format is scanned like text; their binary format is structured (lengths, headers), where a finding
 * cannot be replaced in place, so a scanned column of one asked for in binary is sent as NULL.
 */
const TEXT_CARRIERS = new Set<number>([
  1002, // "char"[]
  1003, // name[]
  1009, // text[]
  1014, // bpchar[]
  1015, // varchar[]
  199, // json[]
  3807, // jsonb[]
  143, // xml[]
  2249, // record
  2287, // record[]
  3614, // tsvector
  3615, // tsquery
  3643, // tsvector[]
  3645, // tsquery[]
]);

interface ColumnRule {
  label: string;
  schema: string;
  table: string;
  column: string;
}

function columnRules(rules: readonly MaskRule[]): ColumnRule[] {
  return columnMaskRules(rules);
}

export function detectorsOf(rules: readonly MaskRule[]): Detector[] {
  const out = new Set<Detector>();
  for (const rule of rules) if ('detector' in rule) out.add(rule.detector);
  return [...out];
}

function matchingRule(rules: ColumnRule[], origin: ColumnOrigin): ColumnRule | undefined {
  if (origin.table === null || origin.column === null) return undefined;
  const t = origin.table.toLowerCase();
  const dot = t.lastIndexOf('.');
  const schema = dot === -1 ? 'public' : t.slice(0, dot);
  const table = dot === -1 ? t : t.slice(dot + 1);
  const column = origin.column.toLowerCase();
  return rules.find((r) => r.schema === schema && r.table === table && r.column === column);
}

function isTextLike(typeOid: number): boolean {
  return TEXT_LIKE.has(typeOid) || typeOid >= FIRST_USER_OID;
}

export function planMask(rules: MaskRule[], columns: ColumnOrigin[]): MaskPlan {
  const byColumn = columnRules(rules);
  const detect = detectorsOf(rules).length > 0;
  const actions: CellAction[] = columns.map((col): CellAction => {
    const rule = matchingRule(byColumn, col);
    if (rule) {
      // binary text of the built-in string types is the raw UTF-8 (as in text format); "char" is one byte
      const maskable =
        col.format === 0
          ? isTextLike(col.typeOid)
          : TEXT_LIKE.has(col.typeOid) && col.typeOid !== TYPE_OID.char;
      return maskable ? { kind: 'mask', rule: rule.label } : { kind: 'null', rule: rule.label };
    }
    if (!detect) return { kind: 'pass' };
    if (JSON_TYPES.has(col.typeOid)) return { kind: 'detect', json: true };
    if (TEXT_LIKE.has(col.typeOid) || col.typeOid === TYPE_OID.xml) return { kind: 'detect' };
    // Text carriers and user-defined types (citext, enums, composites, domains): text in text format.
    // In binary format their layout is their own, so it cannot be scanned: NULL (fail closed).
    if (TEXT_CARRIERS.has(col.typeOid) || col.typeOid >= FIRST_USER_OID) {
      return col.format === 0 ? { kind: 'detect' } : { kind: 'null', rule: 'detectors: binary value' };
    }
    return { kind: 'pass' };
  });
  return { actions, active: actions.some((a) => a.kind !== 'pass') };
}
