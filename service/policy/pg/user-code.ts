// User-defined code behind names the policy trusts. A user's CREATE FUNCTION, CREATE OPERATOR,
// CREATE CAST or CREATE DOMAIN can make a name run the user's code instead of the built-in:
// - under `read`, functions, operators and casts are allowed by name, so the code could write;
// - under column masks or table deny rules (write/admin), the code could read a masked column or a
//   denied table out of the policy's sight.
// Pure: the catalog facts (UserObjects) are read by the gateway.
import type { Access } from '../../config/schema.js';
import type { Decision } from '../decision.js';
import { isKnownBuiltin } from '../sql/functions.js';
import type { ClassifiedStatement } from '../sql/types.js';
import type { UserObjects } from './facts.js';

/** Why a statement under `read` may run a user's function through a name the allow-list trusts, if it may. */
export function userObjectReason(stmt: ClassifiedStatement, objects: UserObjects): string | undefined {
  const implicit = objects.implicitCasts[0];
  if (implicit !== undefined)
    return `access read: the database has an implicit cast through a user-defined function (${implicit}), which any expression may run, so no statement can be proven read-only`;
  for (const fn of stmt.functions) {
    if (!fn.includes('.') && objects.functions.has(fn))
      return `access read: a user-defined function is also named ${fn}, so the unqualified call cannot be proven to run the built-in; write pg_catalog.${fn}(…)`;
  }
  for (const op of stmt.operators) {
    const dot = op.lastIndexOf('.');
    const schema = dot < 0 ? null : op.slice(0, dot);
    const name = dot < 0 ? op : op.slice(dot + 1);
    if (schema !== 'pg_catalog' && objects.operators.has(name))
      return schema === null
        ? `access read: a user-defined operator is also named ${name}, so it cannot be proven to run the built-in; write OPERATOR(pg_catalog.${name})`
        : `access read: operator ${op} is user-defined`;
  }
  for (const type of stmt.casts) {
    const name = type.slice(type.lastIndexOf('.') + 1);
    if (objects.castTargets.has(name))
      return `access read: converting a value to ${name} may run a user-defined function (through a cast or a domain's CHECK constraint), so a cast to ${type} cannot be proven read-only`;
  }
  return undefined;
}

/**
 * Why a statement under column masks or table deny rules (at write or admin access; `read` has its own,
 * stricter check) may run a user's code, which can read a masked column or a denied table out of the
 * policy's sight, if it may: a call of a function users defined (in any schema but pg_catalog), a user
 * operator, a cast to a user cast's target or such a domain, or any statement while a user's implicit
 * cast exists.
 */
export function maskedUserCodeReason(stmt: ClassifiedStatement, objects: UserObjects): string | undefined {
  const implicit = objects.implicitCasts[0];
  const out = "which can read masked columns and denied tables out of the policy's sight";
  if (implicit !== undefined)
    return `mask: the database has an implicit cast through a user-defined function (${implicit}), any expression may run it, ${out}`;
  for (const fn of stmt.functions) {
    const dot = fn.lastIndexOf('.');
    if (fn.slice(0, Math.max(dot, 0)) !== 'pg_catalog' && objects.functions.has(fn.slice(dot + 1)))
      return `mask: ${fn} may run a user-defined function, ${out}`;
  }
  for (const op of stmt.operators) {
    const dot = op.lastIndexOf('.');
    if (op.slice(0, Math.max(dot, 0)) !== 'pg_catalog' && objects.operators.has(op.slice(dot + 1)))
      return `mask: operator ${op} may run a user-defined function, ${out}`;
  }
  for (const type of stmt.casts) {
    if (objects.castTargets.has(type.slice(type.lastIndexOf('.') + 1)))
      return `mask: a cast to ${type} may run a user-defined function, ${out}`;
  }
  return undefined;
}

/** What userCodeCheck needs to read first: the catalog's user objects, or a reading that starts after the statement. */
export type UserObjectsNeeded = 'load' | 'reload';

/**
 * The user-code rules over a message's statements: null (nothing to fear), a denial, or which reading
 * of the user objects must come first. `objects` is read lazily (only when a statement names
 * anything); `fresh`: the current reading started after this message (so it is not asked for again).
 */
export function userCodeCheck(
  statements: readonly ClassifiedStatement[],
  access: Access,
  outOfSight: boolean,
  objects: () => UserObjects | undefined,
  fresh: boolean,
): { stmt: ClassifiedStatement; decision: Decision } | UserObjectsNeeded | null {
  const read = access === 'read';
  if (!read && !outOfSight) return null;
  // Under masks at write access, a call the allow-lists do not know may be a function created
  // moments ago, outside the broker: it is judged by a reading that starts after the statement.
  if (!read && !fresh) {
    for (const stmt of statements)
      for (const fn of stmt.functions) {
        const dot = fn.lastIndexOf('.');
        if (!isKnownBuiltin(dot < 0 ? null : fn.slice(0, dot), fn.slice(dot + 1))) return 'reload';
      }
  }
  let known: UserObjects | undefined;
  for (const stmt of statements) {
    const refersToAnything =
      stmt.tables.length > 0 ||
      stmt.functions.length > 0 ||
      stmt.operators.length > 0 ||
      stmt.casts.length > 0;
    if (!refersToAnything) continue;
    known ??= objects();
    if (known === undefined) return 'load';
    if (read) {
      const reason = userObjectReason(stmt, known);
      if (reason) return { stmt, decision: { effect: 'deny', rule: 'access: read', reasons: [reason] } };
    } else {
      const reason = maskedUserCodeReason(stmt, known);
      if (reason) return { stmt, decision: { effect: 'deny', rule: 'mask: bypass', reasons: [reason] } };
    }
  }
  return null;
}

/**
 * A FunctionCall (fast path) names its function by OID; after the equivalent SQL call was allowed,
 * one outside pg_catalog is refused under column masks or table deny rules: it may be a user's,
 * reading masked columns out of sight (under `read`, only allow-listed built-ins get this far).
 */
export function functionCallBypass(
  fn: { schema: string; name: string },
  outOfSight: boolean,
): Decision | null {
  if (!outOfSight || fn.schema === 'pg_catalog') return null;
  const reason = `mask: ${fn.schema}.${fn.name} may be a user-defined function, which can read masked columns and denied tables out of the policy's sight`;
  return { effect: 'deny', rule: 'mask: bypass', reasons: [reason] };
}
