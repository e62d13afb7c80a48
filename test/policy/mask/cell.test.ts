import { describe, expect, it } from 'vitest';
import { maskCell } from '../../../service/policy/mask/cell.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('maskCell', () => {
  it('keeps NULL as NULL and passes untouched values through as the same buffer', () => {
    expect(maskCell({ kind: 'mask', rule: 'r' }, null, [])).toEqual({ value: null, masked: false });
    const v = b('x');
    expect(maskCell({ kind: 'pass' }, v, ['email']).value).toBe(v);
    expect(maskCell({ kind: 'detect' }, v, ['email'])).toEqual({ value: v, masked: false });
  });

  it('masks a masked column by kind, else with the fixed mask', () => {
    expect(maskCell({ kind: 'mask', rule: 'r' }, b('alice@example.com'), [])).toEqual({
      value: b('***@***.***'),
      masked: true,
    });
    expect(maskCell({ kind: 'mask', rule: 'r' }, b('4111 1111 1111 1111'), [])).toEqual({
      value: b('****-****-****-1111'),
      masked: true,
    });
    expect(maskCell({ kind: 'mask', rule: 'r' }, b('Zoë'), [])).toEqual({
      value: b('********'),
      masked: true,
    });
    expect(maskCell({ kind: 'null', rule: 'r' }, b('42'), [])).toEqual({ value: null, masked: true });
  });

  it('masks findings inside text', () => {
    expect(maskCell({ kind: 'detect' }, b('écrire à zoë@example.fr'), ['email'])).toEqual({
      value: b('écrire à ***@***.***'),
      masked: true,
    });
  });

  it('keeps json valid, or sends NULL when a mask would break it', () => {
    expect(maskCell({ kind: 'detect', json: true }, b('{"e":"a@b.io"}'), ['email']).value?.toString()).toBe(
      '{"e":"***@***.***"}',
    );
    expect(maskCell({ kind: 'detect', json: true }, b('{"card":4111111111111111}'), ['credit_card'])).toEqual(
      { value: null, masked: true },
    );
    expect(
      maskCell({ kind: 'detect', json: true }, b('\u0001{"e":"a@b.io"}'), ['email']).value?.toString(),
    ).toBe('\u0001{"e":"***@***.***"}');
  });
});
