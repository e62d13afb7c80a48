// The verified identity a reader sees (the subset of claims identity/claims.ts picks), as a schema.
import Type from 'typebox';

export const Identity = Type.Record(Type.String(), Type.Unknown(), {
  description:
    'repository, repository_id, ref, sha, run_id, run_attempt, actor, workflow, environment, event_name, …',
});
