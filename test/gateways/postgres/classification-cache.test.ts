import { beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../../service/config/schema.js';
import {
  ClassificationCache,
  numericShapeKey,
} from '../../../service/gateways/postgres/classification-cache.js';
import { classifySql, initSqlParser } from '../../../service/policy/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

describe('numericShapeKey', () => {
  it('folds numeric literals only, keeping the text length', () => {
    expect(numericShapeKey('SELECT abalance FROM pgbench_accounts WHERE aid = 53324;')).toBe(
      'SELECT abalance FROM pgbench_accounts WHERE aid = 00000;',
    );
    expect(numericShapeKey('SELECT 1.5, .25, 1e10 LIMIT 7')).toBe('SELECT 0.0, .00, 0e10 LIMIT 0');
  });

  it('keeps digits that belong to identifiers, so different tables never share a key', () => {
    expect(numericShapeKey('SELECT * FROM t1')).toBe('SELECT * FROM t1');
    expect(numericShapeKey('SELECT * FROM t1')).not.toBe(numericShapeKey('SELECT * FROM t2'));
    expect(numericShapeKey('SELECT c_2 FROM s3.t4 WHERE x9 = 9')).toBe('SELECT c_2 FROM s3.t4 WHERE x9 = 0');
  });

  it('refuses texts where a literal could be something else: quotes, dollars, comments, escapes, non-ASCII', () => {
    for (const sql of [
      "SELECT 'a' FROM t WHERE id = 1",
      'SELECT "id" FROM t',
      'SELECT $1',
      'SELECT $$x$$',
      'SELECT 1 -- comment',
      'SELECT /* c */ 1',
      'SELECT 1 */',
      'SELECT E\\x',
      'SELECT 1::int',
      'SELECT é FROM t',
      `SELECT ${'1'.repeat(13)}`,
      '',
    ]) {
      expect(numericShapeKey(sql), sql).toBeNull();
    }
  });
});

describe('ClassificationCache', () => {
  const grant: Grant = { target: 't', access: 'read' };

  it('reuses a plain read for texts that differ only in numbers, with the new text', () => {
    const cache = new ClassificationCache();
    const first = cache.classify('SELECT name FROM customers WHERE id = 41', new Map());
    const second = cache.classify('SELECT name FROM customers WHERE id = 42', new Map());
    expect(cache.hits).toBe(1);
    expect(second.entry).toBe(first.entry);
    expect(second.result).toEqual(classifySql('SELECT name FROM customers WHERE id = 42'));
    expect(
      cache.decide(second.entry, grant, second.result.ok ? second.result.statements[0]! : (null as never)),
    ).toEqual(
      cache.decide(first.entry, grant, first.result.ok ? first.result.statements[0]! : (null as never)),
    );
  });

  it('never caches statements whose meaning could depend on a number or on session state', () => {
    const cache = new ClassificationCache();
    for (const sql of [
      'SET standard_conforming_strings = 1',
      'SET standard_conforming_strings = 0',
      'SELECT pg_sleep(1)',
      'SELECT pg_sleep(2)',
      'SELECT 1; SELECT 2',
      'SELECT 1; SELECT 3',
      'EXECUTE p1',
      'EXECUTE p2',
      'SELECT * FROM t FOR UPDATE LIMIT 1',
      'SELECT * FROM t FOR UPDATE LIMIT 2',
    ]) {
      cache.classify(sql, new Map());
    }
    expect(cache.hits).toBe(0);
  });
});
