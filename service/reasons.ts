// Why something was refused, in the shape every layer uses (policy, identity, sessions, the HTTP API
// contract): a message naming the policy, claim or target, with what was expected and found. Below
// the domain so that the pure core does not import the API.
import Type, { type Static } from 'typebox';

export const Reason = Type.Object({
  message: Type.String(),
  policy: Type.Optional(Type.String()),
  claim: Type.Optional(Type.String()),
  expected: Type.Optional(Type.String()),
  actual: Type.Optional(Type.String()),
  target: Type.Optional(Type.String()),
});
export type Reason = Static<typeof Reason>;

/** A refusal: a short error and its reasons (the HTTP API's error body). */
export const ErrorBody = Type.Object({
  error: Type.String(),
  reasons: Type.Array(Reason),
});
export type ErrorBody = Static<typeof ErrorBody>;
