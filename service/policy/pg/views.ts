// Views, as the statement gate judges them: the grant a session decides under once the target's views
// are traced (rules derived for views over masked or denied tables), the views `read` must refuse
// because reading them runs something that is not read-only, and statements naming either. Pure.
import type { Access, Grant } from '../../config/schema.js';
import type { Decision } from '../decision.js';
import { deniedThroughViews, viewMaskRules } from '../mask/views.js';
import type { ClassifiedStatement } from '../sql/types.js';
import { namesView, type TargetViews, type UnsafeView, type ViewLineage } from './facts.js';

/** A session's grant under a target's traced views. */
export interface EffectiveGrant {
  /** the grant with the mask rules its column rules imply for view columns, and deny rules for views over denied tables */
  grant: Grant;
  /** views passing a masked column on that no rule can name: statements naming them are refused */
  unnameable: ViewLineage[];
}

/** One object per (grant, lineage), so every connection of a session shares its cached decisions. */
const effectiveGrants = new WeakMap<TargetViews, WeakMap<Grant, EffectiveGrant>>();

/** The grant decisions are made under, given the target's traced views (memoized: the same inputs, the same object). */
export function effectiveGrant(grant: Grant, views: TargetViews): EffectiveGrant {
  let byGrant = effectiveGrants.get(views);
  if (!byGrant) {
    byGrant = new WeakMap();
    effectiveGrants.set(views, byGrant);
  }
  let g = byGrant.get(grant);
  if (!g) {
    const derived = viewMaskRules(grant.mask ?? [], views.views);
    const deniedTables = (grant.deny ?? []).flatMap((r) => ('table' in r ? r.table : []));
    const deniedViews = deniedThroughViews(deniedTables, views.views);
    let effective = grant;
    if (derived.rules.length > 0)
      effective = { ...effective, mask: [...(grant.mask ?? []), ...derived.rules] };
    if (deniedViews.length > 0)
      effective = { ...effective, deny: [...(grant.deny ?? []), { table: deniedViews }] };
    g = { grant: effective, unnameable: derived.unnameable };
    byGrant.set(grant, g);
  }
  return g;
}

/** A view's definition as read from the catalog: classified, or null when it could not be read or parsed. */
export interface ViewDefinition {
  /** "schema.view" */
  view: string;
  relname: string;
  definition: ClassifiedStatement | null;
}

/** The views whose definitions, or the views they read (transitively), are not read-only. */
export function viewsNotReadOnly(defs: readonly ViewDefinition[]): UnsafeView[] {
  const out: UnsafeView[] = [];
  const pending = defs.filter((d) => {
    const why = !d.definition
      ? 'its definition could not be read'
      : d.definition.effect !== 'read'
        ? (d.definition.effectReasons[0] ?? `${d.definition.kind} is not read-only`)
        : d.definition.forbidden[0];
    if (why === undefined) return true;
    out.push({ view: d.view, relname: d.relname, why });
    return false;
  });
  // reading a view runs the views it reads
  for (let added = true; added;) {
    added = false;
    for (let i = pending.length - 1; i >= 0; i--) {
      const d = pending[i]!;
      const inner = out.find((o) => d.definition!.tables.some((t) => namesView(t, o)));
      if (!inner) continue;
      out.push({ view: d.view, relname: d.relname, why: `it reads ${inner.view}, and ${inner.why}` });
      pending.splice(i, 1);
      added = true;
    }
  }
  return out;
}

/**
 * A statement naming a view whose definition is not read-only (under `read`), or a view over a masked
 * column whose name no mask rule can spell: refused, with the statement that named it.
 */
export function refusedView(
  statements: readonly ClassifiedStatement[],
  access: Access,
  notReadOnly: readonly UnsafeView[],
  unnameable: readonly ViewLineage[],
): { stmt: ClassifiedStatement; decision: Decision } | null {
  const unproven = access === 'read' ? notReadOnly : [];
  for (const stmt of unproven.length > 0 ? statements : []) {
    for (const t of stmt.tables) {
      const v = unproven.find((u) => namesView(t, u));
      if (v) {
        const reason = `access read: reading view ${v.view} runs its definition, which is not read-only: ${v.why}`;
        return { stmt, decision: { effect: 'deny', rule: 'access: read', reasons: [reason] } };
      }
    }
  }
  if (unnameable.length === 0) return null;
  for (const stmt of statements) {
    for (const t of stmt.tables) {
      const v = unnameable.find((u) => namesView(t, u));
      if (v) {
        const reason = `mask: view ${v.view} passes a masked column on, and a '.' in its names leaves no mask rule able to name its columns`;
        return { stmt, decision: { effect: 'deny', rule: 'mask', reasons: [reason] } };
      }
    }
  }
  return null;
}
