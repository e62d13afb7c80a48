// Masking of Kubernetes API responses. Pure: JSON in, JSON out, with a count of masked values.
//
// Secrets: every value of `data` (base64 of "********", so clients that decode it still can) and
// `stringData` ("********"), and the copy kubectl keeps in the last-applied-configuration
// annotation, in single objects, lists (whose items carry no kind), Table rows (cells other than
// the Name/Type/Data/Age columns, and the row's object, full or metadata only) and watch events.
// ConfigMaps: with content detectors on, every `data` value (and the annotation) is scanned.
import type { Detector } from '../../config/schema.js';
import { GENERIC_MASK, maskText } from '../mask/detectors.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** base64("********"): Secret data stays valid base64 (kubectl describe decodes it). */
export const MASKED_SECRET_DATA = Buffer.from(GENERIC_MASK).toString('base64');
export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/** Table columns of Secrets that show no value (the API server's own: Name, Type, Data = a count, Age). */
const SAFE_SECRET_COLUMNS = new Set(['Name', 'Namespace', 'Type', 'Data', 'Age']);

export interface MaskContext {
  /** the request's resource (secrets, configmaps, …): list items and table rows carry no kind */
  resource: string;
  /** content detectors for ConfigMap values (and pod logs); empty: none */
  detectors: readonly Detector[];
  /** a watch's Table column names, kept from its first event (later events may omit them) */
  columns?: string[];
}

const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Which kind of masking an object needs, from its kind or (no kind) the resource asked for. */
function kindOf(o: Obj, ctx: MaskContext): 'secret' | 'configmap' | null {
  const kind = o.kind;
  if (kind === 'Secret') return 'secret';
  if (kind === 'ConfigMap') return 'configmap';
  if (kind === undefined || kind === 'PartialObjectMetadata') {
    if (ctx.resource === 'secrets') return 'secret';
    if (ctx.resource === 'configmaps') return 'configmap';
  }
  return null;
}

function maskSecretValues(map: Json | undefined, replacement: string): number {
  if (!isObj(map)) return 0;
  let n = 0;
  for (const k of Object.keys(map)) {
    map[k] = replacement;
    n++;
  }
  return n;
}

function scanValues(map: Json | undefined, detectors: readonly Detector[]): number {
  if (!isObj(map)) return 0;
  let n = 0;
  for (const [k, v] of Object.entries(map)) {
    if (typeof v !== 'string') continue;
    const r = maskText(v, detectors);
    if (r.count > 0) {
      map[k] = r.text;
      n += r.count;
    }
  }
  return n;
}

function maskAnnotations(o: Obj, which: 'secret' | 'configmap', detectors: readonly Detector[]): number {
  const ann = isObj(o.metadata) ? o.metadata.annotations : undefined;
  if (!isObj(ann) || typeof ann[LAST_APPLIED] !== 'string') return 0;
  const text = ann[LAST_APPLIED] as string;
  if (which === 'configmap') {
    const r = maskText(text, detectors);
    if (r.count) ann[LAST_APPLIED] = r.text;
    return r.count;
  }
  let applied: Json;
  try {
    applied = JSON.parse(text) as Json;
  } catch {
    ann[LAST_APPLIED] = GENERIC_MASK;
    return 1;
  }
  if (!isObj(applied)) {
    ann[LAST_APPLIED] = GENERIC_MASK;
    return 1;
  }
  const n =
    maskSecretValues(applied.data, MASKED_SECRET_DATA) + maskSecretValues(applied.stringData, GENERIC_MASK);
  ann[LAST_APPLIED] = `${JSON.stringify(applied)}\n`;
  return n;
}

/** Mask one object in place (a Secret, a ConfigMap with detectors, a list, a Table, a watch event). */
export function maskObject(value: Json, ctx: MaskContext): number {
  if (!isObj(value)) return 0;
  // watch event {type, object}
  if (typeof value.type === 'string' && isObj(value.object) && value.kind === undefined)
    return maskObject(value.object, ctx);
  const kind = value.kind;
  if (kind === 'Table' && Array.isArray(value.rows)) return maskTable(value, ctx);
  if (typeof kind === 'string' && kind.endsWith('List') && Array.isArray(value.items)) {
    // a typed list's items have no kind: judge them by the list's kind (SecretList) or the resource
    const itemCtx =
      kind === 'SecretList'
        ? { ...ctx, resource: 'secrets' }
        : kind === 'ConfigMapList'
          ? { ...ctx, resource: 'configmaps' }
          : kind === 'List'
            ? { ...ctx, resource: '' }
            : ctx;
    let n = 0;
    for (const item of value.items) n += maskObject(item, itemCtx);
    return n;
  }
  const which = kindOf(value, ctx);
  if (which === 'secret')
    return (
      maskSecretValues(value.data, MASKED_SECRET_DATA) +
      maskSecretValues(value.stringData, GENERIC_MASK) +
      maskAnnotations(value, 'secret', ctx.detectors)
    );
  if (which === 'configmap' && ctx.detectors.length > 0)
    return scanValues(value.data, ctx.detectors) + maskAnnotations(value, 'configmap', ctx.detectors);
  return 0;
}

function maskTable(t: Obj, ctx: MaskContext): number {
  if (Array.isArray(t.columnDefinitions))
    ctx.columns = t.columnDefinitions.map((d) => (isObj(d) && typeof d.name === 'string' ? d.name : ''));
  const columns = ctx.columns ?? [];
  let n = 0;
  for (const row of t.rows as Json[]) {
    if (!isObj(row)) continue;
    const obj = isObj(row.object) ? row.object : undefined;
    const which = obj
      ? kindOf(obj, ctx)
      : ctx.resource === 'secrets'
        ? 'secret'
        : ctx.resource === 'configmaps'
          ? 'configmap'
          : null;
    if (obj) n += maskObject(obj, ctx);
    const cells = row.cells;
    if (!Array.isArray(cells)) continue;
    if (which === 'secret') {
      cells.forEach((cell, i) => {
        // without column definitions only the Name column is known to hold no value
        const safe = columns.length > 0 ? SAFE_SECRET_COLUMNS.has(columns[i] ?? '') : i === 0;
        if (!safe && typeof cell === 'string' && cell !== '') {
          cells[i] = GENERIC_MASK;
          n++;
        }
      });
    } else if (which === 'configmap' && ctx.detectors.length > 0) {
      cells.forEach((cell, i) => {
        if (typeof cell !== 'string') return;
        const r = maskText(cell, ctx.detectors);
        if (r.count) {
          cells[i] = r.text;
          n += r.count;
        }
      });
    }
  }
  return n;
}

/** Does a response to this resource need reading (and so JSON, not protobuf)? */
export function needsMasking(resource: string, subresource: string, detectors: readonly Detector[]): boolean {
  if (resource === 'secrets') return true;
  if (resource === 'configmaps' && detectors.length > 0) return true;
  if (resource === 'pods' && subresource === 'log' && detectors.length > 0) return true;
  return false;
}

/**
 * An Accept header without protobuf (whose bytes the broker could not mask): JSON variants kept,
 * `application/json` added when nothing is left.
 */
export function acceptWithoutProtobuf(accept: string | undefined): string {
  const kept = (accept ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && !s.toLowerCase().startsWith('application/vnd.kubernetes.protobuf'));
  return kept.length > 0 && kept.some((s) => /json|\*\/\*/.test(s)) ? kept.join(',') : 'application/json';
}
