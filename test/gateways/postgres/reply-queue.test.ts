// The expected-reply state machine, transition by transition (the rules in reply-queue.ts's header);
// the differential fuzz test (protocol-fuzz.test.ts) checks the same rules against a real server.
import { describe, expect, it } from 'vitest';
import { BackendType as B } from '../../../service/gateways/postgres/backend-messages.js';
import {
  ASYNC,
  type Expected,
  isDisagreement,
  ReplyQueue,
  type ReplyKind,
} from '../../../service/gateways/postgres/reply-queue.js';

interface Entry extends Expected {
  id: string;
}

function setup() {
  const discarded: string[] = [];
  const q = new ReplyQueue<Entry>((e) => discarded.push(e.id));
  const push = (...items: [ReplyKind, string][]) => {
    for (const [kind, id] of items) q.push({ kind, id });
  };
  /** the id each reply is attributed to ('async', or '!' for a disagreement) */
  const replies = (...types: number[]) =>
    types.map((t) => {
      const r = q.reply(t);
      return r === ASYNC ? 'async' : isDisagreement(r) ? '!' : r.id;
    });
  return { q, push, replies, discarded };
}

describe('extended protocol', () => {
  it('one reply per message, in order; Sync ends with ReadyForQuery', () => {
    const t = setup();
    t.push(['parse', 'P'], ['bind', 'B'], ['describe-portal', 'D'], ['execute', 'E'], ['sync', 'S']);
    expect(t.replies(B.parseComplete, B.bindComplete, B.rowDescription, B.dataRow, B.dataRow)).toEqual([
      'P',
      'B',
      'D',
      'E',
      'E',
    ]);
    expect(t.q.rowsExpected).toBe(true);
    expect(t.replies(B.commandComplete, B.readyForQuery)).toEqual(['E', 'S']);
    expect(t.q.pending).toBe(false);
  });

  it('Describe of a statement: ParameterDescription, then RowDescription or NoData', () => {
    const t = setup();
    t.push(['describe-statement', 'D1'], ['describe-statement', 'D2'], ['sync', 'S']);
    expect(t.replies(B.parameterDescription, B.rowDescription, B.parameterDescription, B.noData)).toEqual([
      'D1',
      'D1',
      'D2',
      'D2',
    ]);
    expect(t.replies(B.readyForQuery)).toEqual(['S']);
  });

  it('an error discards every message up to Sync, the broker stand-in and a Query among them', () => {
    const t = setup();
    t.push(
      ['parse', 'P'],
      ['bind', 'B'],
      ['execute', 'E'],
      ['denied-extended', 'X'],
      ['simple', 'Q'],
      ['describe-portal', 'D'],
      ['sync', 'S'],
      ['simple', 'Q2'],
    );
    expect(t.replies(B.parseComplete, B.errorResponse, B.readyForQuery)).toEqual(['P', 'B', 'S']);
    expect(t.discarded).toEqual(['E', 'X', 'Q', 'D']);
    // after Sync the server reads normally again
    expect(t.replies(B.rowDescription, B.dataRow, B.commandComplete, B.readyForQuery)).toEqual([
      'Q2',
      'Q2',
      'Q2',
      'Q2',
    ]);
  });

  it('messages queued after the error, before their Sync, are discarded too', () => {
    const t = setup();
    t.push(['parse', 'P']);
    expect(t.replies(B.errorResponse)).toEqual(['P']);
    t.push(['bind', 'B'], ['execute', 'E'], ['sync', 'S']);
    expect(t.replies(B.readyForQuery)).toEqual(['S']);
    expect(t.discarded).toEqual(['B', 'E']);
  });

  it('a denied message answered by its stand-in error starts the discarding like any error', () => {
    const t = setup();
    t.push(['denied-extended', 'X'], ['bind', 'B'], ['sync', 'S']);
    expect(t.replies(B.errorResponse, B.readyForQuery)).toEqual(['X', 'S']);
    expect(t.discarded).toEqual(['B']);
  });

  it('Sync whose implicit commit fails: ErrorResponse, then ReadyForQuery, no discarding after', () => {
    const t = setup();
    t.push(['sync', 'S'], ['parse', 'P'], ['sync', 'S2']);
    expect(t.replies(B.errorResponse, B.readyForQuery, B.parseComplete, B.readyForQuery)).toEqual([
      'S',
      'S',
      'P',
      'S2',
    ]);
  });

  it('Execute ends with CommandComplete, EmptyQueryResponse or PortalSuspended', () => {
    for (const end of [B.commandComplete, B.emptyQueryResponse, B.portalSuspended]) {
      const t = setup();
      t.push(['execute', 'E1'], ['execute', 'E2']);
      expect(t.replies(end, B.dataRow, B.commandComplete)).toEqual(['E1', 'E2', 'E2']);
    }
  });

  it('a reply nothing queued can produce is a disagreement', () => {
    const cases: [ReplyKind, number][] = [
      ['parse', B.bindComplete],
      ['bind', B.dataRow],
      ['execute', B.rowDescription],
      ['describe-portal', B.parameterDescription],
      ['close', B.parseComplete],
      ['sync', B.commandComplete],
      ['function-call', B.dataRow],
      ['simple', B.dataRow], // rows before their RowDescription
      ['simple', B.backendKeyData],
      ['execute', B.copyBothResponse],
    ];
    for (const [kind, reply] of cases) {
      const t = setup();
      t.push([kind, 'X']);
      expect(t.replies(reply), `${kind} ← ${reply}`).toEqual(['!']);
    }
    expect(setup().replies(B.readyForQuery)).toEqual(['!']);
    expect(setup().replies(B.dataRow)).toEqual(['!']);
  });

  it('notices, parameter status, notifications and FATAL errors answer no message', () => {
    const t = setup();
    expect(t.replies(B.noticeResponse, B.parameterStatus, B.notificationResponse)).toEqual([
      'async',
      'async',
      'async',
    ]);
    expect(t.q.reply(B.errorResponse, true)).toBe(ASYNC);
  });
});

describe('simple query and FunctionCall', () => {
  it('statements in one Query: each [RowDescription] rows CommandComplete; an error ends them; then ReadyForQuery', () => {
    const t = setup();
    t.push(['simple', 'Q']);
    expect(
      t.replies(B.rowDescription, B.dataRow, B.commandComplete, B.commandComplete, B.errorResponse),
    ).toEqual(['Q', 'Q', 'Q', 'Q', 'Q']);
    expect(t.q.rowsExpected).toBe(false);
    expect(t.replies(B.readyForQuery)).toEqual(['Q']);
    expect(t.q.pending).toBe(false);
  });

  it('an error in a Query does not discard what follows', () => {
    const t = setup();
    t.push(['simple', 'Q'], ['parse', 'P'], ['sync', 'S']);
    expect(t.replies(B.errorResponse, B.readyForQuery, B.parseComplete, B.readyForQuery)).toEqual([
      'Q',
      'Q',
      'P',
      'S',
    ]);
    expect(t.discarded).toEqual([]);
  });

  it('FunctionCall: FunctionCallResponse or ErrorResponse, then ReadyForQuery; a denied Query likewise', () => {
    const t = setup();
    t.push(['function-call', 'F'], ['function-call', 'F2'], ['denied-simple', 'X']);
    expect(t.replies(B.functionCallResponse, B.readyForQuery, B.errorResponse, B.readyForQuery)).toEqual([
      'F',
      'F',
      'F2',
      'F2',
    ]);
    expect(t.replies(B.errorResponse, B.readyForQuery)).toEqual(['X', 'X']);
  });
});

describe('COPY', () => {
  it('COPY TO: CopyOutResponse, CopyData, CopyDone, CommandComplete; CopyData only in between', () => {
    const t = setup();
    t.push(['simple', 'Q']);
    expect(t.replies(B.copyOutResponse, B.copyData, B.copyData)).toEqual(['Q', 'Q', 'Q']);
    expect(t.q.copyOutActive).toBe(true);
    expect(t.replies(B.copyDone, B.commandComplete, B.readyForQuery)).toEqual(['Q', 'Q', 'Q']);
    expect(t.q.copyOutActive).toBe(false);
    t.push(['simple', 'Q2']);
    expect(t.replies(B.copyData)).toEqual(['!']);
  });

  it('a Sync sent during COPY FROM STDIN is read and ignored by the COPY', () => {
    const t = setup();
    t.push(['parse', 'P'], ['bind', 'B'], ['execute', 'E'], ['sync', 'S1']);
    expect(t.replies(B.parseComplete, B.bindComplete, B.copyInResponse)).toEqual(['P', 'B', 'E']);
    t.q.copyMessage(false);
    t.q.copyMessage(true);
    t.push(['sync', 'S2']);
    expect(t.replies(B.commandComplete, B.readyForQuery)).toEqual(['E', 'S2']);
    expect(t.q.pending).toBe(false);
  });

  it('CopyData queued before the server started copying is read by the COPY; CommandComplete only after CopyDone', () => {
    const t = setup();
    t.push(['simple', 'Q']);
    t.q.copyMessage(false);
    t.q.copyMessage(false);
    expect(t.replies(B.copyInResponse)).toEqual(['Q']);
    expect(t.replies(B.commandComplete)).toEqual(['!']);
    const u = setup();
    u.push(['simple', 'Q']);
    u.q.copyMessage(false);
    u.q.copyMessage(true);
    expect(u.replies(B.copyInResponse, B.commandComplete, B.readyForQuery)).toEqual(['Q', 'Q', 'Q']);
  });

  it('a message other than COPY data, Flush or Sync fails the COPY (ERROR, then FATAL: the connection ends)', () => {
    const t = setup();
    t.push(['simple', 'Q'], ['simple', 'Q2']);
    expect(t.replies(B.copyInResponse, B.errorResponse)).toEqual(['Q', 'Q']);
    expect(t.q.reply(B.errorResponse, true)).toBe(ASYNC);
    // a COPY that met such a message cannot complete
    const u = setup();
    u.push(['simple', 'Q'], ['simple', 'Q2']);
    u.q.copyMessage(true);
    expect(u.replies(B.copyInResponse, B.commandComplete)).toEqual(['Q', '!']);
  });

  it('COPY data that fails before a queued Query is read: the Query is answered as outside a COPY', () => {
    // what a real server did: COPY fz FROM STDIN, CopyData "bad\n", Query(SELECT 1) → G E Z T D C Z
    const t = setup();
    t.push(['simple', 'Q']);
    t.q.copyMessage(false);
    t.push(['parse', 'P'], ['execute', 'E'], ['sync', 'S']);
    expect(t.replies(B.copyInResponse, B.errorResponse, B.readyForQuery)).toEqual(['Q', 'Q', 'Q']);
    expect(t.replies(B.parseComplete, B.commandComplete, B.readyForQuery)).toEqual(['P', 'E', 'S']);
    expect(t.discarded).toEqual([]);
    expect(t.q.pending).toBe(false);
  });

  it('a Sync after all the COPY data is answered when the COPY fails, and ignored when it completes', () => {
    // simple-query COPY: the real server sent G E Z Z for CopyData(bad), Sync
    const t = setup();
    t.push(['simple', 'Q']);
    t.q.copyMessage(false);
    t.push(['sync', 'S']);
    expect(t.replies(B.copyInResponse, B.errorResponse, B.readyForQuery, B.readyForQuery)).toEqual([
      'Q',
      'Q',
      'Q',
      'S',
    ]);
    const ok = setup();
    ok.push(['simple', 'Q']);
    ok.q.copyMessage(false);
    ok.push(['sync', 'S']);
    ok.q.copyMessage(true);
    expect(ok.replies(B.copyInResponse, B.commandComplete, B.readyForQuery)).toEqual(['Q', 'Q', 'Q']);
    expect(ok.q.pending).toBe(false);
    // extended-protocol COPY: the failure discards until that Sync
    const x = setup();
    x.push(['execute', 'E']);
    expect(x.replies(B.copyInResponse)).toEqual(['E']);
    x.q.copyMessage(false);
    x.push(['sync', 'S'], ['simple', 'Q']);
    expect(x.replies(B.errorResponse, B.readyForQuery, B.emptyQueryResponse, B.readyForQuery)).toEqual([
      'E',
      'S',
      'Q',
      'Q',
    ]);
  });

  it('a Sync with COPY data on both sides, then a failing COPY: a disagreement (which row failed is unknowable)', () => {
    const t = setup();
    t.push(['simple', 'Q']);
    t.q.copyMessage(false);
    t.push(['sync', 'S']);
    t.q.copyMessage(false);
    expect(t.replies(B.copyInResponse, B.errorResponse)).toEqual(['Q', '!']);
    // a Sync before any data is read and ignored by the COPY (a pipelining client): no doubt there
    const u = setup();
    u.push(['execute', 'E'], ['sync', 'S1']);
    expect(u.replies(B.copyInResponse)).toEqual(['E']);
    u.q.copyMessage(false);
    u.q.copyMessage(true);
    u.push(['sync', 'S2']);
    expect(u.replies(B.errorResponse, B.readyForQuery)).toEqual(['E', 'S2']);
    expect(u.q.pending).toBe(false);
  });

  it('COPY data after a failed COPY is ignored by the server: no reply is expected for it', () => {
    const t = setup();
    t.push(['execute', 'E']);
    expect(t.replies(B.copyInResponse, B.errorResponse)).toEqual(['E', 'E']);
    t.q.copyMessage(false);
    t.q.copyMessage(true);
    t.push(['sync', 'S'], ['simple', 'Q']);
    expect(t.replies(B.readyForQuery, B.emptyQueryResponse, B.readyForQuery)).toEqual(['S', 'Q', 'Q']);
  });

  it('stray COPY messages outside a COPY get no reply', () => {
    const t = setup();
    t.q.copyMessage(false);
    t.q.copyMessage(true);
    t.push(['simple', 'Q']);
    expect(t.replies(B.emptyQueryResponse, B.readyForQuery)).toEqual(['Q', 'Q']);
  });

  it('knows when extended-protocol messages are outstanding without a Sync', () => {
    const t = setup();
    expect(t.q.inExtendedBatch).toBe(false);
    t.push(['parse', 'P']);
    expect(t.q.inExtendedBatch).toBe(true);
    t.push(['sync', 'S']);
    expect(t.q.inExtendedBatch).toBe(false);
  });
});
