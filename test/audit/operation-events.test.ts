// The transcript events of gateway operations (audit/operation-events.ts): the shapes the transcript
// had before they were built in one place.
import { beforeAll, describe, expect, it } from 'vitest';
import { allowedEvent, deniedEvent } from '../../service/audit/operation-events.js';
import { classifySql, initSqlParser } from '../../service/policy/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

const ctx = { target: 'appdb', conn_id: 'pgc_1' };
const select = () => {
  const r = classifySql('SELECT 1');
  if (!r.ok) throw new Error(r.error);
  return r.statements[0]!;
};

describe('pg operation events', () => {
  it('records an allowed statement with its counts, keys in canonical order', () => {
    const ev = allowedEvent(ctx, { kind: 'pg.statement', protocol: 'simple', statement: select() }, [], {
      rows: 1,
      bytes: 10,
      duration_ms: 0.5,
      masked: 0,
    });
    expect(ev).toEqual({
      target: 'appdb',
      kind: 'pg.statement',
      operation: { conn_id: 'pgc_1', protocol: 'simple', statement: 'SELECT 1', statement_kind: 'SELECT' },
      decision: 'allow',
      reasons: [],
      rows: 1,
      bytes: 10,
      duration_ms: 0.5,
      masked: 0,
    });
    expect(Object.keys(ev.operation)).toEqual(['conn_id', 'protocol', 'statement', 'statement_kind']);
    const failed = allowedEvent(ctx, { kind: 'pg.statement', protocol: 'extended', statement: null }, [], {
      error: '42P01',
    });
    expect(failed.operation).toEqual({
      conn_id: 'pgc_1',
      error: '42P01',
      protocol: 'extended',
      statement: '',
      statement_kind: 'UNKNOWN',
    });
    expect('rows' in failed).toBe(false);
  });

  it('records refusals: FunctionCalls as FUNCTION CALL, unreadable messages by label', () => {
    expect(
      deniedEvent(
        ctx,
        { kind: 'pg.function_call', oid: 1, function: null, statement: select() },
        {
          rule: 'mask: bypass',
          reasons: ['r'],
        },
      ),
    ).toEqual({
      target: 'appdb',
      kind: 'pg.denied',
      operation: {
        conn_id: 'pgc_1',
        protocol: 'function-call',
        rule: 'mask: bypass',
        statement: 'SELECT 1',
        statement_kind: 'FUNCTION CALL',
      },
      decision: 'deny',
      reasons: ['r'],
    });
    expect(
      deniedEvent(
        ctx,
        { kind: 'pg.statement', protocol: 'extended', statement: null, label: 'PARSE' },
        { reasons: [] },
      ).operation,
    ).toEqual({
      conn_id: 'pgc_1',
      protocol: 'extended',
      rule: 'policy',
      statement: '',
      statement_kind: 'PARSE',
    });
    // an allowed FunctionCall is recorded as the SQL call it was judged as
    expect(
      allowedEvent(ctx, { kind: 'pg.function_call', oid: 1, function: null, statement: select() }, [], {})
        .operation,
    ).toMatchObject({ protocol: 'function-call', statement_kind: 'SELECT' });
  });
});

describe('ssh and kubernetes operation events', () => {
  it('names the operation and, when refused, the rule', () => {
    expect(allowedEvent(ctx, { kind: 'ssh.exec', command: 'make' }, [], { exit_code: 2 })).toMatchObject({
      kind: 'ssh.exec',
      operation: { command: 'make', conn_id: 'pgc_1', exit_code: 2, type: 'ssh.exec' },
    });
    expect(
      deniedEvent(
        ctx,
        {
          kind: 'k8s.request',
          verb: 'delete',
          apiGroup: 'apps',
          resource: 'deployments',
          namespace: 'web',
          name: 'x',
          path: '/apis/apps/v1/namespaces/web/deployments/x',
        },
        { rule: 'deny.verb', reasons: ['no'] },
      ),
    ).toMatchObject({
      kind: 'k8s.denied',
      decision: 'deny',
      operation: {
        api_group: 'apps',
        verb: 'delete',
        resource: 'deployments',
        namespace: 'web',
        name: 'x',
        rule: 'deny.verb',
      },
    });
  });
});
