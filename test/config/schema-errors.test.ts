import Type from 'typebox';
import { describe, expect, it } from 'vitest';
import { closest, schemaIssues } from '../../service/config/schema-errors.js';

// Targets become a union by `kind` when kubernetes and ssh join; the union logic must already
// give one message per problem for such a schema.
const Pg = Type.Object(
  { name: Type.String(), kind: Type.Literal('postgres'), host: Type.String() },
  { additionalProperties: false },
);
const Ssh = Type.Object(
  { name: Type.String(), kind: Type.Literal('ssh'), host: Type.String(), user: Type.String() },
  { additionalProperties: false },
);
const Targets = Type.Object({ targets: Type.Array(Type.Union([Pg, Ssh])) }, { additionalProperties: false });

describe('schemaIssues on a union told apart by kind', () => {
  it('reports the chosen branch only', () => {
    expect(schemaIssues(Targets, { targets: [{ name: 'a', kind: 'ssh', host: 'h' }] })).toEqual([
      { path: ['targets', 0, 'user'], at: 'parent', message: "missing required property 'user'" },
    ]);
    expect(
      schemaIssues(Targets, { targets: [{ name: 'a', kind: 'postgres', host: 'h', user: 'u' }] }),
    ).toEqual([
      {
        path: ['targets', 0, 'user'],
        at: 'key',
        message: "unknown property 'user' (allowed: name, kind, host)",
      },
    ]);
  });

  it('names the discriminator when it is missing or unknown', () => {
    expect(schemaIssues(Targets, { targets: [{ name: 'a', host: 'h' }] })).toEqual([
      {
        path: ['targets', 0, 'kind'],
        at: 'parent',
        message: "missing required property 'kind' (one of: postgres, ssh)",
      },
    ]);
    expect(schemaIssues(Targets, { targets: [{ name: 'a', kind: 'shh', host: 'h' }] })).toEqual([
      {
        path: ['targets', 0, 'kind'],
        at: 'value',
        message: "expected one of: postgres, ssh (did you mean 'ssh'?)",
      },
    ]);
    expect(schemaIssues(Targets, { targets: ['db'] })).toEqual([
      { path: ['targets', 0], at: 'value', message: 'expected a mapping, got a string' },
    ]);
  });

  it('suggests only close matches', () => {
    expect(closest('pasword', ['password', 'port'])).toBe('password');
    expect(closest('hots', ['host', 'port'])).toBe('host');
    expect(closest('xyz', ['host', 'port'])).toBeUndefined();
  });
});
