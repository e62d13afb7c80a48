// The expected-reply queue: which forwarded message each upstream reply answers. The relay needs the
// answer to attribute result rows to a statement (its mask plan) and to record the statement; if this
// model fell one reply behind the server, rows would be masked by another statement's plan. So this
// is a state machine of what the server does with each message it reads, in the order it reads them
// (the broker forwards in order), following the protocol documentation ("Message Flow") and
// PostgreSQL's postgres.c/copyfrom*.c:
//
//   Parse/Bind/Describe/Execute/Close  one reply each (Describe S: ParameterDescription first; Execute:
//                                      rows, then CommandComplete | EmptyQueryResponse | PortalSuspended,
//                                      or a COPY), or ErrorResponse, after which the server discards every
//                                      message until Sync (Query, FunctionCall and COPY messages too)
//   Sync                               ReadyForQuery (an ErrorResponse first when the implicit commit
//                                      fails); ends the discarding
//   Flush                              no reply of its own (not queued)
//   Query                              per statement: [RowDescription] rows CommandComplete, or
//                                      EmptyQueryResponse, or a COPY; an ErrorResponse ends the statements
//                                      (no discarding); then ReadyForQuery
//   FunctionCall                       FunctionCallResponse or ErrorResponse, then ReadyForQuery
//   CopyData/CopyDone/CopyFail         outside COPY FROM STDIN: read and ignored, no reply
//   during COPY FROM STDIN             the server reads on: CopyData, CopyDone (the COPY ends: CommandComplete
//                                      or ErrorResponse), CopyFail (ErrorResponse); Flush and Sync are ignored;
//                                      any other message fails the COPY and ends the connection (ERROR, then
//                                      FATAL "protocol synchronization was lost": it stopped mid-message).
//                                      It reads lazily: a CopyData whose rows fail (bad input) ends the COPY
//                                      with an ErrorResponse before the messages behind it are read, and those
//                                      are then handled as outside a COPY (a Sync answers ReadyForQuery, a
//                                      Query runs). So a message other than COPY data, Flush or Sync stays
//                                      queued (a non-FATAL error means the data failed first; had the server
//                                      read it, FATAL follows), and a Sync that came after COPY data is
//                                      answered if the COPY fails. A Sync with COPY data on both sides is
//                                      read before or after the failing row, which the broker cannot know:
//                                      such a COPY failing is a disagreement (the connection is closed)
//   COPY TO STDOUT                     CopyOutResponse, CopyData…, CopyDone, then CommandComplete
//   any time                           NoticeResponse, ParameterStatus, NotificationResponse; a FATAL
//                                      ErrorResponse ends the connection
//
// A denied message is replaced upstream by a stand-in that fails to parse, so it is a Parse (extended)
// or a Query (simple) to this model, answered by ErrorResponse, or discarded like any other message.
// A reply that the head of the queue cannot produce is a disagreement: `reply` says so and the relay
// closes the connection (fail closed) instead of guessing.

import { BackendType } from './backend-messages.js';

/** What the relay queues for each message that reaches the server (its payload rides along). */
export type ReplyKind =
  | 'parse'
  | 'bind'
  | 'describe-statement'
  | 'describe-portal'
  | 'execute'
  | 'close'
  | 'sync'
  | 'simple'
  | 'function-call'
  | 'denied-simple'
  | 'denied-extended'
  /** the broker's own Parse/Describe/Close/Sync (describing a COPY's columns): one entry, through its ReadyForQuery */
  | 'copy-describe';

export interface Expected {
  kind: ReplyKind;
}

/** CopyData…/CopyDone/CopyFail the client sent that the server has not read yet (coalesced). */
interface CopyRun {
  kind: 'copy';
  /** ends with CopyDone or CopyFail */
  ended: boolean;
}

/** Marks a reply the model cannot attribute. */
export interface Disagreement {
  disagreement: string;
}

export function isDisagreement(x: unknown): x is Disagreement {
  return typeof x === 'object' && x !== null && 'disagreement' in x;
}

/** The reply answers no message (NoticeResponse, ParameterStatus, NotificationResponse, a FATAL error). */
export const ASYNC = Symbol('async');

const NAMES: Record<number, string> = {
  [BackendType.parseComplete]: 'ParseComplete',
  [BackendType.bindComplete]: 'BindComplete',
  [BackendType.closeComplete]: 'CloseComplete',
  [BackendType.parameterDescription]: 'ParameterDescription',
  [BackendType.rowDescription]: 'RowDescription',
  [BackendType.noData]: 'NoData',
  [BackendType.dataRow]: 'DataRow',
  [BackendType.commandComplete]: 'CommandComplete',
  [BackendType.emptyQueryResponse]: 'EmptyQueryResponse',
  [BackendType.portalSuspended]: 'PortalSuspended',
  [BackendType.errorResponse]: 'ErrorResponse',
  [BackendType.readyForQuery]: 'ReadyForQuery',
  [BackendType.functionCallResponse]: 'FunctionCallResponse',
  [BackendType.copyInResponse]: 'CopyInResponse',
  [BackendType.copyOutResponse]: 'CopyOutResponse',
  [BackendType.copyData]: 'CopyData',
  [BackendType.copyDone]: 'CopyDone',
};

export function replyName(type: number): string {
  return NAMES[type] ?? `message type "${String.fromCharCode(type)}"`;
}

export class ReplyQueue<E extends Expected> {
  private slots: (E | CopyRun)[] = [];
  private headIndex = 0;
  /** an ErrorResponse in the extended protocol: the server discards messages until Sync */
  private discarding = false;
  /** the head's COPY FROM STDIN is reading the messages that follow it */
  private copyInReading = false;
  /** the head's COPY FROM STDIN ended on the client's side (CopyDone/CopyFail read, or a message that fails it) */
  private copyInFinished = false;
  /** the head's COPY FROM STDIN met a message other than COPY data, Flush or Sync (it stays queued) */
  private copyInBlocked = false;
  /** the head's COPY FROM STDIN has read COPY data */
  private copyDataSeen = false;
  /** Syncs read during the COPY after its data, with no data after them: answered if the COPY fails */
  private trailingSyncs: E[] = [];
  /** a Sync read during the COPY had data on both sides: if the COPY fails, the model cannot follow */
  private ambiguousSyncs = false;
  /** the head is in COPY TO STDOUT (CopyOutResponse seen, CopyDone not yet) */
  private copyOut = false;
  /** the head (a Query) has sent the current statement's RowDescription: DataRows may follow */
  private described = false;
  /** forwarded Parse/Bind/Describe/Execute/Close not yet followed by a Sync */
  private unsyncedExtended = false;

  /** `discarded`: a queued message the server read and dropped (no reply will come for it) */
  constructor(private readonly discarded: (e: E) => void) {}

  // ─────────── the client side: what was forwarded ───────────

  push(e: E): void {
    this.slots.push(e);
    if (e.kind === 'sync') this.unsyncedExtended = false;
    else if (isExtended(e.kind)) this.unsyncedExtended = true;
    if (this.copyInReading) this.absorbCopy();
  }

  /** The client's CopyData (ends false), CopyDone or CopyFail (ends true) was forwarded. */
  copyMessage(ends: boolean): void {
    if (this.copyInReading && this.slots.length === this.headIndex + 1) {
      // the common case, a COPY FROM STDIN streaming: nothing to queue
      this.copyRead();
      if (ends) this.endCopyIn();
      return;
    }
    const tail = this.slots[this.slots.length - 1];
    if (tail && tail.kind === 'copy' && !tail.ended && this.slots.length - 1 > this.headIndex) {
      tail.ended = ends;
    } else {
      this.slots.push({ kind: 'copy', ended: ends });
    }
    if (this.copyInReading) this.absorbCopy();
  }

  /** Extended-protocol messages are outstanding without a Sync (an injected batch would end their transaction). */
  get inExtendedBatch(): boolean {
    return this.unsyncedExtended;
  }

  /** Replies are still expected. */
  get pending(): boolean {
    return this.headIndex < this.slots.length;
  }

  /** The message whose replies arrive now (null: none, or one that will get no reply). */
  get head(): E | undefined {
    const h = this.slots[this.headIndex];
    return h === undefined || h.kind === 'copy' ? undefined : h;
  }

  /** DataRows may arrive now (the hot path's check; anything else goes through `reply`). */
  get rowsExpected(): boolean {
    const h = this.slots[this.headIndex];
    if (!h || this.discarding || this.copyOut) return false;
    return h.kind === 'execute' || (h.kind === 'simple' && this.described);
  }

  /** CopyData of a COPY TO may arrive now. */
  get copyOutActive(): boolean {
    return this.copyOut;
  }

  // ─────────── the server side: what came back ───────────

  /**
   * Attribute one backend message (call before acting on it). Returns the queued message it answers
   * (already taken off the queue when it was the last reply to it), ASYNC, or a Disagreement.
   * `fatal`: an ErrorResponse of severity FATAL or PANIC.
   */
  reply(type: number, fatal = false): E | typeof ASYNC | Disagreement {
    if (
      type === BackendType.noticeResponse ||
      type === BackendType.parameterStatus ||
      type === BackendType.notificationResponse ||
      (type === BackendType.errorResponse && fatal)
    )
      return ASYNC;
    this.dropUnanswered();
    const h = this.slots[this.headIndex];
    if (h === undefined || h.kind === 'copy') return this.disagree(type, 'no message awaits a reply');
    switch (h.kind) {
      case 'parse':
        return this.single(h, type, BackendType.parseComplete);
      case 'bind':
        return this.single(h, type, BackendType.bindComplete);
      case 'close':
        return this.single(h, type, BackendType.closeComplete);
      case 'describe-statement':
        if (type === BackendType.parameterDescription) return h;
        if (type === BackendType.rowDescription || type === BackendType.noData) return this.pop(h);
        return this.extendedError(h, type);
      case 'describe-portal':
        if (type === BackendType.rowDescription || type === BackendType.noData) return this.pop(h);
        return this.extendedError(h, type);
      case 'execute':
        return this.execute(h, type);
      case 'sync':
        if (type === BackendType.readyForQuery) {
          this.discarding = false;
          return this.pop(h);
        }
        if (type === BackendType.errorResponse) return h; // the implicit transaction's commit failed
        return this.disagree(type, 'Sync');
      case 'simple':
        return this.simple(h, type);
      case 'function-call':
        if (type === BackendType.functionCallResponse || type === BackendType.errorResponse) return h;
        if (type === BackendType.readyForQuery) return this.pop(h);
        return this.disagree(type, 'FunctionCall');
      case 'denied-simple':
        if (type === BackendType.errorResponse) return h;
        if (type === BackendType.readyForQuery) return this.pop(h);
        return this.disagree(type, 'a denied Query');
      case 'denied-extended':
        if (type === BackendType.errorResponse) return this.failExtended(h);
        return this.disagree(type, 'a denied message');
      case 'copy-describe':
        if (type === BackendType.readyForQuery) {
          this.discarding = false;
          return this.pop(h);
        }
        if (
          type === BackendType.parseComplete ||
          type === BackendType.parameterDescription ||
          type === BackendType.rowDescription ||
          type === BackendType.noData ||
          type === BackendType.closeComplete ||
          type === BackendType.errorResponse
        )
          return h;
        return this.disagree(type, "the broker's COPY describe");
    }
  }

  private single(h: E, type: number, complete: number): E | Disagreement {
    if (type === complete) return this.pop(h);
    return this.extendedError(h, type);
  }

  private extendedError(h: E, type: number): E | Disagreement {
    if (type === BackendType.errorResponse) return this.failExtended(h);
    return this.disagree(type, describeKind(h.kind));
  }

  private failExtended(h: E): E {
    this.discarding = true;
    this.endCopy();
    return this.pop(h);
  }

  private execute(h: E, type: number): E | Disagreement {
    if (this.copyOut) {
      if (type === BackendType.copyData) return h;
      if (type === BackendType.copyDone) {
        this.copyOut = false;
        return h;
      }
      if (type === BackendType.errorResponse) return this.failExtended(h);
      return this.disagree(type, 'Execute in COPY TO');
    }
    if (this.copyInReading || this.copyInFinished) {
      if (type === BackendType.errorResponse) {
        const d = this.copyInFailed();
        return d ?? this.failExtended(h);
      }
      if (type === BackendType.commandComplete && this.copyInFinished && !this.copyInBlocked) {
        this.endCopy();
        return this.pop(h);
      }
      return this.disagree(type, 'Execute in COPY FROM STDIN');
    }
    switch (type) {
      case BackendType.dataRow:
        return h;
      case BackendType.commandComplete:
      case BackendType.emptyQueryResponse:
      case BackendType.portalSuspended:
        return this.pop(h);
      case BackendType.copyOutResponse:
        this.copyOut = true;
        return h;
      case BackendType.copyInResponse:
        this.startCopyIn();
        return h;
      case BackendType.errorResponse:
        return this.failExtended(h);
      default:
        return this.disagree(type, 'Execute');
    }
  }

  private simple(h: E, type: number): E | Disagreement {
    if (this.copyOut) {
      if (type === BackendType.copyData) return h;
      if (type === BackendType.copyDone) {
        this.copyOut = false;
        return h;
      }
      if (type === BackendType.errorResponse) {
        this.endCopy();
        return h;
      }
      return this.disagree(type, 'a Query in COPY TO');
    }
    if (this.copyInReading || this.copyInFinished) {
      if (type === BackendType.errorResponse) {
        const d = this.copyInFailed();
        if (d) return d;
        this.endCopy();
        return h;
      }
      if (type === BackendType.commandComplete && this.copyInFinished && !this.copyInBlocked) {
        this.endCopy();
        return h;
      }
      return this.disagree(type, 'a Query in COPY FROM STDIN');
    }
    switch (type) {
      case BackendType.rowDescription:
        this.described = true;
        return h;
      case BackendType.dataRow:
        return this.described ? h : this.disagree(type, 'a Query before its RowDescription');
      case BackendType.commandComplete:
      case BackendType.emptyQueryResponse:
      case BackendType.errorResponse:
        this.described = false;
        return h;
      case BackendType.copyOutResponse:
        this.copyOut = true;
        return h;
      case BackendType.copyInResponse:
        this.startCopyIn();
        return h;
      case BackendType.readyForQuery:
        this.described = false;
        return this.pop(h);
      default:
        return this.disagree(type, 'a Query');
    }
  }

  private startCopyIn(): void {
    this.copyInReading = true;
    this.copyInFinished = false;
    this.copyInBlocked = false;
    this.copyDataSeen = false;
    this.trailingSyncs = [];
    this.ambiguousSyncs = false;
    this.absorbCopy();
  }

  /** The COPY read data (CopyData, CopyDone or CopyFail): a Sync read before it had data before it too. */
  private copyRead(): void {
    if (this.trailingSyncs.length > 0) {
      this.ambiguousSyncs = true;
      this.trailingSyncs = [];
    }
    this.copyDataSeen = true;
  }

  /**
   * The head's COPY FROM STDIN failed (a non-FATAL ErrorResponse): the Syncs it read after its data
   * were not read yet when the failing row was, so they are answered; null, or a Disagreement when a
   * Sync had data on both sides (read before or after the failing row: unknowable).
   */
  private copyInFailed(): Disagreement | null {
    if (this.ambiguousSyncs)
      return {
        disagreement:
          'a COPY FROM STDIN failed after the client sent Sync between its rows: whether the database read that Sync cannot be known',
      };
    if (this.trailingSyncs.length > 0) {
      this.slots.splice(this.headIndex + 1, 0, ...this.trailingSyncs);
      this.trailingSyncs = [];
    }
    return null;
  }

  private endCopyIn(): void {
    this.copyInReading = false;
    this.copyInFinished = true;
  }

  private endCopy(): void {
    this.copyInReading = false;
    this.copyInFinished = false;
    this.copyInBlocked = false;
    this.copyDataSeen = false;
    this.trailingSyncs = [];
    this.ambiguousSyncs = false;
    this.copyOut = false;
  }

  /** The head's COPY FROM STDIN reads the messages queued behind it, as the server does. */
  private absorbCopy(): void {
    const at = this.headIndex + 1;
    while (this.copyInReading && at < this.slots.length) {
      const next = this.slots[at]!;
      if (next.kind !== 'copy' && next.kind !== 'sync') {
        // anything but COPY messages, Flush and Sync fails the COPY if the server reads it (it then
        // ends the connection); it stays queued, for the COPY may fail on its data first
        this.copyInBlocked = true;
        this.endCopyIn();
        return;
      }
      this.slots.splice(at, 1);
      if (next.kind === 'copy') {
        this.copyRead();
        if (next.ended) this.endCopyIn();
      } else if (this.copyDataSeen) {
        this.trailingSyncs.push(next);
      }
    }
  }

  /** Messages at the head that the server reads without answering: while discarding, and stray COPY data. */
  private dropUnanswered(): void {
    for (;;) {
      const h = this.slots[this.headIndex];
      if (h === undefined) return;
      if (h.kind === 'copy') {
        if (this.copyInReading) return;
        this.advance();
        continue;
      }
      if (this.discarding && h.kind !== 'sync' && h.kind !== 'copy-describe') {
        this.advance();
        this.discarded(h);
        continue;
      }
      return;
    }
  }

  private pop(h: E): E {
    this.advance();
    return h;
  }

  private advance(): void {
    this.slots[this.headIndex] = undefined as unknown as E;
    this.headIndex++;
    if (this.headIndex > 64 && this.headIndex * 2 > this.slots.length) {
      this.slots.splice(0, this.headIndex);
      this.headIndex = 0;
    }
  }

  private disagree(type: number, awaiting: string): Disagreement {
    return {
      disagreement: `the database sent ${replyName(type)} while the broker awaited a reply to ${awaiting}`,
    };
  }
}

function isExtended(kind: ReplyKind): boolean {
  return (
    kind === 'parse' ||
    kind === 'bind' ||
    kind === 'describe-statement' ||
    kind === 'describe-portal' ||
    kind === 'execute' ||
    kind === 'close' ||
    kind === 'denied-extended'
  );
}

function describeKind(kind: ReplyKind): string {
  switch (kind) {
    case 'parse':
      return 'Parse';
    case 'bind':
      return 'Bind';
    case 'close':
      return 'Close';
    case 'describe-statement':
      return 'Describe (statement)';
    case 'describe-portal':
      return 'Describe (portal)';
    default:
      return kind;
  }
}
