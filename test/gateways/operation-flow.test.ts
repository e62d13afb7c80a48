import { describe, expect, it } from 'vitest';
import type { BrokerEvent } from '../../service/audit/event.js';
import type { Settle } from '../../service/audit/recorder.js';
import { holdsUnsupported, OperationFlow, type Approver } from '../../service/gateways/operation-flow.js';
import type { Operation } from '../../service/policy/operation.js';

const EXEC: Operation = { kind: 'ssh.exec', command: 'make deploy' };

function harness(opts: { approver?: Approver; failDurable?: boolean; high?: number; low?: number } = {}) {
  const order: string[] = [];
  const durable: BrokerEvent[] = [];
  const background: { ev: BrokerEvent; done: Settle }[] = [];
  const failures: unknown[] = [];
  let drained = 0;
  const counts: string[] = [];
  const flow = new OperationFlow({
    sessionId: 'ses_x',
    target: 'host',
    connId: 'c1',
    gateway: 'ssh',
    sink: {
      record: async (ev, o) => {
        order.push(`durable ${ev.kind}${o?.immediate ? ' (immediate)' : ''}`);
        if (opts.failDurable) throw new Error('store down');
        durable.push(ev);
      },
      recordBackground: (ev, done) => {
        order.push(`background ${ev.kind}`);
        background.push({ ev, done });
      },
    },
    ...(opts.approver ? { approver: opts.approver } : {}),
    count: (d) => counts.push(d),
    onRecordFailed: (err) => failures.push(err),
    onBacklogDrained: () => drained++,
    backlog: { high: opts.high ?? 3, low: opts.low ?? 1 },
  });
  return { flow, order, durable, background, failures, counts, drained: () => drained };
}

describe('OperationFlow', () => {
  it('records a refusal durably, after the allowed events queued before it', async () => {
    const h = harness();
    h.flow.completed(EXEC, [], { exit_code: 0 });
    expect(await h.flow.refuse(EXEC, { rule: 'deny.command', reasons: ['no'] })).toBe(true);
    expect(h.order).toEqual(['background ssh.exec', 'durable ssh.denied']);
    expect(h.durable[0]).toEqual({
      target: 'host',
      kind: 'ssh.denied',
      operation: { command: 'make deploy', conn_id: 'c1', rule: 'deny.command', type: 'ssh.exec' },
      decision: 'deny',
      reasons: ['no'],
    });
    expect(h.counts).toEqual(['allow', 'deny']);
  });

  it('forwarding: records allowed statements durably (immediate) after what was queued; result events follow', async () => {
    const h = harness();
    const pgOp: Operation = { kind: 'pg.statement', protocol: 'simple', statement: null, text: 'select 1' };
    h.flow.completed(EXEC, [], { exit_code: 0 });
    expect(await h.flow.forwarding([{ op: pgOp, reasons: [] }])).toBe(true);
    h.flow.resulted(pgOp as Extract<Operation, { kind: 'pg.statement' }>, { rows: 1, duration_ms: 2 });
    h.flow.flush();
    expect(h.order).toEqual([
      'background ssh.exec',
      'durable pg.statement (immediate)',
      'background pg.statement.result',
    ]);
    expect(h.durable[0]!.operation).toEqual({
      conn_id: 'c1',
      protocol: 'simple',
      statement: 'select 1',
      statement_kind: 'UNKNOWN',
    });
    expect(h.background[1]!.ev).toMatchObject({
      kind: 'pg.statement.result',
      decision: 'info',
      rows: 1,
      duration_ms: 2,
      operation: { conn_id: 'c1', protocol: 'simple', statement_kind: 'UNKNOWN' },
    });
    expect(h.counts).toEqual(['allow', 'allow']);
  });

  it('forwarding: a recording failure says so and nothing may be forwarded', async () => {
    const h = harness({ failDurable: true });
    const pgOp: Operation = { kind: 'pg.statement', protocol: 'simple', statement: null, text: 'delete' };
    expect(await h.flow.forwarding([{ op: pgOp, reasons: [] }])).toBe(false);
    expect(h.failures).toHaveLength(1);
  });

  it('says when a refusal could not be recorded', async () => {
    const h = harness({ failDurable: true });
    expect(await h.flow.refuse(EXEC, { reasons: ['no'] })).toBe(false);
    expect(h.failures).toHaveLength(1);
  });

  it('records allowed operations in the background, after the batch, with a bounded backlog', async () => {
    const h = harness();
    h.flow.beginBatch();
    for (let i = 0; i < 4; i++) h.flow.completed(EXEC, [], { exit_code: i });
    expect(h.background).toHaveLength(0);
    expect(h.flow.backlogFull()).toBe(true);
    h.flow.endBatch();
    expect(h.background.map((b) => b.ev.operation)).toEqual(
      [0, 1, 2, 3].map((i) => ({ command: 'make deploy', conn_id: 'c1', exit_code: i, type: 'ssh.exec' })),
    );
    expect(h.flow.backlogFull()).toBe(true);
    h.background[0]!.done(null, 1);
    expect(h.flow.backlogFull()).toBe(false);
    h.background[1]!.done(null, 2);
    expect(h.drained()).toBe(0);
    h.background[2]!.done(null, 3);
    expect(h.drained()).toBe(1);
    h.background[3]!.done(new Error('lost'), 0);
    expect(h.failures).toHaveLength(1);
  });

  it('hands queued events to the recorder right after the I/O round outside a batch', async () => {
    const h = harness();
    h.flow.completed(EXEC, [], {});
    expect(h.background).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(h.background).toHaveLength(1);
  });

  it('refuses holds by default, with the reason the gateway gave before approvals existed', async () => {
    const flow = harness({ approver: holdsUnsupported('the PostgreSQL gateway') }).flow;
    expect(flow.settle(EXEC, { effect: 'allow', reasons: [] })).toEqual({ effect: 'allow', reasons: [] });
    await expect(
      flow.settle(EXEC, { effect: 'hold', rule: 'hold: deploy', reasons: ['needs a human'] }),
    ).resolves.toEqual({
      effect: 'deny',
      rule: 'hold: deploy',
      reasons: ['needs a human', 'approval holds are not supported by the PostgreSQL gateway'],
    });
  });

  it('asks the approver, with an abort signal, and turns its answer into a decision', async () => {
    const asked: string[] = [];
    const answers = [
      { decision: 'approve' as const, by: 'octocat' },
      { decision: 'timeout' as const },
      { decision: 'deny' as const, by: 'hubot' },
    ];
    const approver: Approver = {
      request: async (hold) => {
        asked.push(`${hold.session_id} ${hold.operation.kind} ${hold.signal.aborted}`);
        return answers.shift()!;
      },
    };
    const { flow } = harness({ approver });
    const hold = { effect: 'hold' as const, rule: 'hold', reasons: ['r'] };
    await expect(flow.settle(EXEC, hold)).resolves.toEqual({
      effect: 'allow',
      rule: 'hold',
      reasons: ['r', 'approved by octocat'],
    });
    await expect(flow.settle(EXEC, hold)).resolves.toMatchObject({
      effect: 'deny',
      reasons: ['r', 'no approval came in time'],
    });
    await expect(flow.settle(EXEC, hold)).resolves.toMatchObject({
      effect: 'deny',
      reasons: ['r', 'refused by hubot'],
    });
    expect(asked).toEqual(['ses_x ssh.exec false', 'ses_x ssh.exec false', 'ses_x ssh.exec false']);
  });

  it('performs an operation end to end: refused operations are not acted on', async () => {
    const h = harness();
    let acted = 0;
    const act = async () => {
      acted++;
      return { exit_code: 0 };
    };
    expect(await h.flow.perform(EXEC, { effect: 'deny', rule: 'r', reasons: ['no'] }, act)).toMatchObject({
      allowed: false,
    });
    expect(acted).toBe(0);
    expect(await h.flow.perform(EXEC, { effect: 'allow', reasons: [] }, act)).toMatchObject({
      allowed: true,
      outcome: { exit_code: 0 },
    });
    expect(acted).toBe(1);
  });
});
