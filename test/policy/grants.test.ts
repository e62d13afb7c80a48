import { describe, expect, it } from 'vitest';
import type { Policy, Target } from '../../service/config/schema.js';
import {
  DEFAULT_MAX_SESSION_TTL_MS,
  DEFAULT_SESSION_TTL_MS,
  resolveGrants,
  sessionTtlMs,
} from '../../service/policy/grants.js';

const target = (name: string): Target => ({
  name,
  kind: 'postgres',
  host: `${name}.internal.example`,
  port: 5432,
  database: name,
  user: 'ci_user',
  password: { env: 'SECRET_DB_PASSWORD' },
});
const targets = [target('orders-db'), target('billing-db'), target('audit-db')];

const policy: Policy = {
  name: 'migrations',
  when: { repository_id: '123456' },
  grants: [
    { target: 'orders-db', access: 'write', deny: [{ statement: ['DROP'] }] },
    { target: 'billing-db', access: 'read', mask: [{ column: 'customers.email' }] },
    { target: 'orders-db', access: 'admin' },
  ],
};

describe('resolveGrants', () => {
  it('gives every grant of the policy when nothing is requested (first grant per target)', () => {
    const expected = { ok: true, grants: [policy.grants[0], policy.grants[1]] };
    expect(resolveGrants(policy, undefined, targets)).toEqual(expected);
    expect(resolveGrants(policy, [], targets)).toEqual(expected);
  });

  it('gives exactly the requested granted targets, in request order, ignoring duplicates', () => {
    expect(resolveGrants(policy, ['billing-db'], targets)).toEqual({ ok: true, grants: [policy.grants[1]] });
    expect(resolveGrants(policy, ['billing-db', 'orders-db', 'billing-db'], targets)).toEqual({
      ok: true,
      grants: [policy.grants[1], policy.grants[0]],
    });
  });

  it('refuses a configured target the policy does not grant, naming it', () => {
    expect(resolveGrants(policy, ['orders-db', 'audit-db'], targets)).toEqual({
      ok: false,
      reasons: [
        {
          policy: 'migrations',
          target: 'audit-db',
          message:
            'target "audit-db" is not granted by policy "migrations" (it grants: "orders-db", "billing-db")',
        },
      ],
    });
  });

  it('refuses a target that does not exist, saying so, and lists every refused target', () => {
    const result = resolveGrants(policy, ['nope', 'audit-db'], targets);
    expect(result).toEqual({
      ok: false,
      reasons: [
        {
          policy: 'migrations',
          target: 'nope',
          message:
            'target "nope" does not exist (no target of that name is configured); policy "migrations" grants: "orders-db", "billing-db"',
        },
        {
          policy: 'migrations',
          target: 'audit-db',
          message:
            'target "audit-db" is not granted by policy "migrations" (it grants: "orders-db", "billing-db")',
        },
      ],
    });
  });

  it('never puts target hosts, users or credential references in a refusal', () => {
    const text = JSON.stringify(resolveGrants(policy, ['audit-db', 'x'], targets));
    expect(text).not.toContain('internal.example');
    expect(text).not.toContain('ci_user');
    expect(text).not.toContain('SECRET_DB_PASSWORD');
  });

  it('skips grants of unconfigured targets, and refuses a policy left with none', () => {
    const dangling: Policy = { ...policy, grants: [{ target: 'gone-db', access: 'read' }, ...policy.grants] };
    expect(resolveGrants(dangling, undefined, targets)).toEqual({
      ok: true,
      grants: [policy.grants[0], policy.grants[1]],
    });
    expect(resolveGrants(dangling, ['gone-db'], targets)).toMatchObject({
      ok: false,
      reasons: [{ target: 'gone-db', message: expect.stringContaining('does not exist') }],
    });
    expect(
      resolveGrants({ ...policy, grants: [{ target: 'gone-db', access: 'read' }] }, undefined, targets),
    ).toEqual({
      ok: false,
      reasons: [{ policy: 'migrations', message: 'policy "migrations" grants no configured target' }],
    });
  });

  it('shows an absurd requested name bounded and without control characters', () => {
    const name = `a\n${'b'.repeat(300)}`;
    const result = resolveGrants(policy, [name], targets);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reasons[0]?.message).not.toContain('\n');
    expect(result.reasons[0]?.message.length).toBeLessThan(300);
    expect(result.reasons[0]?.target?.length).toBe(101);
  });
});

describe('sessionTtlMs', () => {
  const min = 60_000;
  it('is the smallest of requested (or default), policy ttl and max', () => {
    expect(sessionTtlMs({ requested: '10m', policyTtl: '15m', maxTtl: '1h' })).toBe(10 * min);
    expect(sessionTtlMs({ requested: '2h', policyTtl: '15m', maxTtl: '1h' })).toBe(15 * min);
    expect(sessionTtlMs({ requested: '2h', policyTtl: '3h', maxTtl: '1h' })).toBe(60 * min);
    expect(sessionTtlMs({ requested: '1h30m', maxTtl: '6h' })).toBe(90 * min);
    expect(sessionTtlMs({ requested: '90s' })).toBe(90_000);
  });

  it('uses the default when nothing is requested, still capped', () => {
    expect(sessionTtlMs({})).toBe(DEFAULT_SESSION_TTL_MS);
    expect(sessionTtlMs({ defaultTtl: '30m' })).toBe(30 * min);
    expect(sessionTtlMs({ defaultTtl: '30m', policyTtl: '5m' })).toBe(5 * min);
    expect(sessionTtlMs({ defaultTtl: '3h', maxTtl: '2h' })).toBe(120 * min);
    expect(sessionTtlMs({ requested: '24h' })).toBe(DEFAULT_MAX_SESSION_TTL_MS);
  });

  it('accepts configured values already resolved to ms', () => {
    expect(
      sessionTtlMs({ requested: '1h', policyTtl: 20 * min, maxTtl: 30 * min, defaultTtl: 10 * min }),
    ).toBe(20 * min);
    expect(sessionTtlMs({ maxTtl: 30 * min, defaultTtl: 10 * min })).toBe(10 * min);
  });

  it('is null for a requested ttl that is not a positive duration', () => {
    for (const requested of ['0s', '0m', '', '30', 'm', '1d', '-5m', '10m30h', ' 5m']) {
      expect(sessionTtlMs({ requested }), requested).toBeNull();
    }
  });

  it('throws on an invalid configured duration (validated at start-up: a programmer error)', () => {
    expect(() => sessionTtlMs({ policyTtl: 'soon' })).toThrow('policy ttl is not a positive duration: soon');
    expect(() => sessionTtlMs({ maxTtl: 0 })).toThrow('sessions.max_ttl is not a positive duration: 0');
  });
});
