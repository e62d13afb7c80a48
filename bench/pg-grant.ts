// The grant bench:pg and bench:relay load: a realistic read grant (column masks, content detectors,
// deny rules by statement, function and table).
import type { Grant } from '../service/config/schema.js';

export function benchGrant(target: string): Grant {
  return {
    target,
    access: 'read',
    mask: [
      { column: 'public.people.email' },
      { column: 'pgbench_branches.filler' },
      { detector: 'email' },
      { detector: 'credit_card' },
      { detector: 'api_key' },
    ],
    deny: [{ statement: ['TRUNCATE', 'DROP'] }, { function: ['pg_sleep'] }, { table: ['secrets'] }],
  };
}
