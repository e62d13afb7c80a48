import { describe, expect, it } from 'vitest';
import { parseQualifiedName } from '../../../service/policy/sql/names.js';

describe('parseQualifiedName: rule names read as PostgreSQL reads identifiers', () => {
  it.each([
    ['customers.email', ['customers', 'email']],
    ['Public.Customers.Email', ['public', 'customers', 'email']],
    ['customers."name"', ['customers', 'name']],
    ['"People"."Email"', ['People', 'Email']],
    ['"a.b".c', ['a.b', 'c']],
    ['"say ""hi""".x', ['say "hi"', 'x']],
    ['bücher.TITEL', ['bücher', 'titel']],
    ['ÄPFEL.x', ['Äpfel', 'x']],
    ['t$1._x', ['t$1', '_x']],
  ])('%s', (text, parts) => {
    expect(parseQualifiedName(text)).toEqual({ ok: true, parts });
  });

  it.each([
    ['customers.', /missing after '\.'/],
    ['"unterminated.x', /unterminated quoted identifier/],
    ['"".x', /empty quoted identifier/],
    ['1abc.x', /cannot start with "1"/],
    ['customers.e-mail', /unexpected "-"/],
    ['customers. email', /cannot start with " "/],
  ])('%s is refused', (text, message) => {
    const r = parseQualifiedName(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });
});
