// Generic helpers over libpg-query's parse tree (JSON): typed nodes, names, constants. No policy here.
import type { ParseNode } from './parser.js';

export type Node = ParseNode;

export const isObject = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{TypeName: {...}}` — the parser's wrapper around a typed node. */
export function typed(v: unknown): [string, Node] | null {
  if (!isObject(v)) return null;
  const keys = Object.keys(v);
  if (keys.length !== 1) return null;
  const key = keys[0]!;
  const first = key.charCodeAt(0);
  if (first < 65 || first > 90) return null;
  const body = v[key];
  return isObject(body) ? [key, body] : null;
}

export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Strings of a list of String nodes (["pg_catalog","lower"]). */
export function names(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const item of list) {
    const t = typed(item);
    if (t && t[0] === 'String') out.push(str(t[1].sval) ?? '');
  }
  return out;
}

/** The value of an A_Const as text, or undefined when it is not a constant. */
export function constText(v: unknown): string | undefined {
  const t = typed(v);
  if (!t) return undefined;
  const [type, node] = t;
  if (type === 'TypeCast') return constText(node.arg);
  if (type !== 'A_Const') return undefined;
  if (isObject(node.sval)) return str(node.sval.sval) ?? '';
  if (isObject(node.ival)) return String(node.ival.ival ?? 0);
  if (isObject(node.fval)) return str(node.fval.fval);
  if (isObject(node.boolval)) return node.boolval.boolval ? 'true' : 'false';
  return undefined;
}

export function tableName(rv: Node): string {
  const rel = str(rv.relname) ?? '';
  const schema = str(rv.schemaname);
  return schema ? `${schema}.${rel}` : rel;
}
