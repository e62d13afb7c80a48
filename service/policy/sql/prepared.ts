// SQL-level prepared statements (PREPARE / EXECUTE / DEALLOCATE in query text) on one connection.
// The gateway keeps one Map per client connection and passes it to classifySql so EXECUTE is judged
// by what it runs. (Protocol-level Parse/Bind is the gateway's own: it classifies each Parse's text.)
import type { ClassifiedStatement } from './types.js';

/** Update the connection's registry after a statement was allowed (call in statement order). */
export function trackPrepared(registry: Map<string, ClassifiedStatement>, stmt: ClassifiedStatement): void {
  if (stmt.prepare) registry.set(stmt.prepare.name, stmt);
  if (stmt.deallocate) {
    if (stmt.deallocate.name === null) registry.clear();
    else registry.delete(stmt.deallocate.name);
  }
  // DISCARD ALL / DISCARD PLANS drop every prepared statement.
  if (stmt.kind === 'DISCARD' && /\b(ALL|PLANS)\b/i.test(stmt.source)) registry.clear();
}
