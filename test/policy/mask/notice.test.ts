import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskRule } from '../../../service/config/schema.js';
import { guardEchoedValues, maskNoticeText } from '../../../service/policy/mask/notice.js';
import { type PgServer, startPostgres } from '../../fixtures/postgres.js';

const rules: MaskRule[] = [{ column: 'customers.email' }];

describe('maskNoticeText', () => {
  it('masks key details of masked columns, whatever the values hold', () => {
    expect(maskNoticeText('Key (email)=(a@b.co) already exists.', rules, [])).toBe(
      'Key (email)=(********) already exists.',
    );
    expect(maskNoticeText('Key (id, email)=(1, x (y), z) already exists.', rules, [])).toBe(
      'Key (id, email)=(********) already exists.',
    );
    expect(maskNoticeText('Key (lower(email))=(a@b.co) is duplicated.', rules, [])).toBe(
      'Key (lower(email))=(********) is duplicated.',
    );
    expect(maskNoticeText('Key (customer_id)=(5) is not present in table "customers".', rules, [])).toBe(
      'Key (customer_id)=(5) is not present in table "customers".',
    );
  });

  it('masks whole failing rows and echoed input values when column rules exist', () => {
    expect(maskNoticeText('Failing row contains (1, Alice, a@b.co, null).', rules, [])).toBe(
      'Failing row contains (********).',
    );
    expect(maskNoticeText('invalid input syntax for type integer: "alice@example.com"', rules, [])).toBe(
      'invalid input syntax for type integer: "********"',
    );
    expect(maskNoticeText('Failing row contains (1, Alice).', [], [])).toBe(
      'Failing row contains (1, Alice).',
    );
  });

  it('applies detectors to any text', () => {
    expect(
      maskNoticeText('value 4111 1111 1111 1111 for bob@example.org', [], ['credit_card', 'email']),
    ).toBe('value ****-****-****-1111 for ***@***.***');
  });
});

describe('guardEchoedValues', () => {
  const stmt = "SELECT id FROM customers WHERE emial = 1 AND lowr(name) = 'x'";
  it('keeps what the statement wrote and masks other quoted parts', () => {
    expect(guardEchoedValues('M', 'column "emial" does not exist', '42703', stmt)).toBe(
      'column "emial" does not exist',
    );
    expect(guardEchoedValues('M', 'schema "alice@example" does not exist', '3F000', stmt)).toBe(
      'schema "********" does not exist',
    );
    expect(guardEchoedValues('W', 'invalid type name "alice@example.com"', '42601', stmt)).toBe(
      'invalid type name "********"',
    );
    expect(
      guardEchoedValues('H', 'Perhaps you meant to reference the column "customers.id".', '42703', stmt),
    ).toBe('Perhaps you meant to reference the column "customers.id".');
    // a value holding a quote leaves an odd count: everything from the first quote goes
    expect(guardEchoedValues('M', 'relation "a"b" does not exist', '42P01', stmt)).toBe('relation "********');
  });

  it('masks function names the statement did not write', () => {
    expect(guardEchoedValues('M', 'function lowr(text) does not exist', '42883', stmt)).toBe(
      'function lowr(text) does not exist',
    );
    expect(guardEchoedValues('M', 'function alice(integer) does not exist', '42883', stmt)).toBe(
      'function ********(integer) does not exist',
    );
  });

  it('cuts a data exception message at its value and masks its other fields whole', () => {
    expect(guardEchoedValues('M', 'invalid input syntax for type json', '22P02', stmt)).toBe(
      'invalid input syntax for type json',
    );
    expect(guardEchoedValues('M', 'syntax error in tsquery: "4111 1111"', '42601', stmt)).toBe(
      'syntax error in tsquery: "********"',
    );
    expect(guardEchoedValues('M', 'invalid regular expression: alice@', '2201B', stmt)).toBe(
      'invalid regular expression: ********',
    );
    expect(guardEchoedValues('D', 'Token "alice" is invalid.', '22P02', stmt)).toBe('********');
    expect(guardEchoedValues('W', 'JSON data, line 1: alice...', '22P02', stmt)).toBe('********');
    expect(guardEchoedValues('M', 'division by zero', '22012', stmt)).toBe('division by zero');
  });
});

describe('maskNoticeText on real server errors', () => {
  let server: PgServer;
  let client: pg.Client;
  beforeAll(async () => {
    server = await startPostgres();
    client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    await client.query(
      "CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE CHECK (email <> 'banned@example.com')); INSERT INTO customers VALUES (1, 'alice@example.com')",
    );
  });
  afterAll(async () => {
    await client?.end();
    await server?.stop();
  });

  const errorOf = async (sql: string): Promise<pg.DatabaseError> => {
    try {
      await client.query(sql);
    } catch (err) {
      return err as pg.DatabaseError;
    }
    throw new Error(`no error from ${sql}`);
  };

  it('leaves no masked value in message or detail', async () => {
    for (const sql of [
      "INSERT INTO customers VALUES (2, 'alice@example.com')",
      "INSERT INTO customers VALUES (3, 'banned@example.com')",
      'SELECT email::int FROM customers',
    ]) {
      const err = await errorOf(sql);
      const text = [err.message, err.detail ?? '', err.hint ?? '']
        .map((t) => maskNoticeText(t, rules, []))
        .join('\n');
      expect({ sql, leaked: /alice@|banned@/.test(text) }).toEqual({ sql, leaked: false });
      expect(/alice@|banned@/.test([err.message, err.detail].join())).toBe(true);
    }
  });
});
