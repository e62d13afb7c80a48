// The explain report's shape: which policy a token matches, and why every other one does not.
import Type, { type Static } from 'typebox';
import { Access } from '../config/schema.js';
import { Identity } from '../identity/claims-schema.js';
import { Reason } from '../reasons.js';

export const PolicyExplanation = Type.Object({
  name: Type.String(),
  matched: Type.Boolean(),
  failures: Type.Array(Reason),
  grants: Type.Optional(Type.Array(Type.Object({ target: Type.String(), access: Access }))),
});
export type PolicyExplanation = Static<typeof PolicyExplanation>;

export const ExplainResult = Type.Object({
  issuer: Type.String(),
  identity: Identity,
  matched_policy: Type.Union([Type.String(), Type.Null()]),
  policies: Type.Array(PolicyExplanation),
});
export type ExplainResult = Static<typeof ExplainResult>;
