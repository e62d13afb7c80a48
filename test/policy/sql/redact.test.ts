import { beforeAll, describe, expect, it } from 'vitest';
import { initSqlParser, redactSql } from '../../../service/policy/sql/index.js';
import { redactAllLiterals } from '../../../service/policy/sql/redact.js';

beforeAll(async () => {
  await initSqlParser();
});

describe('redactSql', () => {
  it('redacts password literals in every form', () => {
    expect(redactSql("CREATE ROLE app LOGIN PASSWORD 'hunter2'")).toBe(
      "CREATE ROLE app LOGIN PASSWORD '***'",
    );
    expect(
      redactSql(
        "ALTER USER app WITH ENCRYPTED PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi' VALID UNTIL '2030-01-01'",
      ),
    ).toBe("ALTER USER app WITH ENCRYPTED PASSWORD '***' VALID UNTIL '2030-01-01'");
    expect(redactSql("alter role app password $pw$it's secret$pw$")).toBe("alter role app password '***'");
    expect(redactSql("ALTER ROLE app PASSWORD E'a\\'b'; SELECT 'keep'")).toBe(
      "ALTER ROLE app PASSWORD '***'; SELECT 'keep'",
    );
    expect(redactSql("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x', password 'p@ss')")).toBe(
      "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x', password '***')",
    );
  });

  it('keeps connection strings readable but drops their passwords', () => {
    expect(redactSql("SELECT dblink_connect('c', 'host=db port=5432 password=s3cret user=me')")).toBe(
      "SELECT dblink_connect('c', 'host=db port=5432 password=*** user=me')",
    );
    expect(redactSql("SELECT dblink('postgresql://me:s3cret@db/app', 'select 1')")).toBe(
      "SELECT dblink('postgresql://me:***@db/app', 'select 1')",
    );
    expect(
      redactSql("CREATE SUBSCRIPTION s CONNECTION 'dbname=x password=''a b''' PUBLICATION p"),
    ).not.toContain('a b');
  });

  it('redacts secret-looking literals but keeps ordinary ones', () => {
    const token = `ghp_${'a1B2'.repeat(9)}`;
    expect(redactSql(`SELECT * FROM t WHERE token = '${token}' AND name = 'alice'`)).toBe(
      "SELECT * FROM t WHERE token = '***' AND name = 'alice'",
    );
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnopqrstuv';
    expect(redactSql(`SELECT '${jwt}'`)).toBe("SELECT '***'");
    expect(redactSql(`SELECT 'hoop_${'x9'.repeat(22)}'`)).toBe("SELECT '***'");
    expect(redactSql("SELECT '550e8400-e29b-41d4-a716-446655440000'::uuid")).toBe(
      "SELECT '550e8400-e29b-41d4-a716-446655440000'::uuid",
    );
    expect(redactSql('SELECT 1')).toBe('SELECT 1');
  });

  it('redacts every literal when the text does not parse', () => {
    expect(redactSql("SELEC 'a', $$b$$, E'c' FROM x")).toBe("SELEC '***', '***', '***' FROM x");
    expect(redactSql("PASSWORD 'unterminated")).toBe("PASSWORD '***'");
    expect(redactAllLiterals("x E'a\\'b' $t$ c $t$ -- 'comment' \n 'd")).toBe(
      "x E'***' '***' -- 'comment' \n '***'",
    );
  });
});
