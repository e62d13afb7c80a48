// What the relay expects the server to answer, entry by entry (the ReplyQueue's items), and the state
// each carries: the statement run for the transcript, the row or COPY masking plan, the portal.
import type { PgOperation } from '../../../policy/operation.js';
import type { CopyOutMasker } from '../../../policy/sql/index.js';
import type { CellAction, ClassifiedStatement, CopyInfo, MaskPlan } from '../../../policy/sql/types.js';
import type { BackendError } from '../backend-error.js';
import type { RowField } from '../backend-messages.js';

/** What a backend-message handler answers: relay the frame as is, swallow it, or a Buffer to send instead. */
export const FORWARD = 0;
export const DROP = 1;
export type FrameAction = typeof FORWARD | typeof DROP | Buffer;

/** a COPY's describe that the server answered with an error */
export const REFUSED_BY_SERVER: unique symbol = Symbol('refused by the server');

export interface PortalInfo {
  name: string;
  statement: ClassifiedStatement | null;
  /** a Describe of this portal has been sent upstream since its Bind */
  describeSent: boolean;
  /** the masking plan, once its RowDescription has arrived */
  masker: RowMasker | null;
}

export interface RowMasker {
  plan: MaskPlan;
  /** plan.active: rows must be rewritten */
  active: boolean;
}

/** One statement being executed, for the transcript. */
export interface StatementRun {
  /** what the transcript records it as */
  op: PgOperation;
  stmt: ClassifiedStatement | null;
  protocol: 'simple' | 'extended' | 'function-call';
  reasons: string[];
  /** its pg.statement event was recorded before it was forwarded (recording: before_forward) */
  recorded: boolean;
  startedAt: number;
  bytes: number;
  masked: number;
}

export interface CopyOutState {
  /** null: the plan is inactive, CopyData passes untouched */
  masker: CopyOutMasker | null;
}

export type Pending =
  | {
      kind: 'simple';
      statements: ClassifiedStatement[];
      index: number;
      run: StatementRun | null;
      masker: RowMasker | null;
      /** COPY TO plans by statement index (from the injected describe, before the Query is forwarded) */
      copyPlans: Map<number, MaskPlan>;
      copyOut: CopyOutState | null;
      /** why the statements run when an approval released them (who, or which reviewed file): their events say so */
      reasons?: string[];
    }
  | { kind: 'parse'; name: string; previous: ClassifiedStatement | undefined }
  | { kind: 'bind' }
  | { kind: 'describe-statement' }
  | { kind: 'describe-portal'; portal: PortalInfo; injected: boolean }
  | { kind: 'execute'; portal: PortalInfo; run: StatementRun; copyOut: CopyOutState | null }
  | { kind: 'close' }
  | { kind: 'sync' }
  /** a FunctionCall: its result (one value) is masked like a computed column of its type */
  | { kind: 'function-call'; run: StatementRun | null; result: CellAction }
  | { kind: 'denied-simple'; error: BackendError }
  | { kind: 'denied-extended'; error: BackendError }
  | {
      kind: 'copy-describe';
      info: CopyInfo;
      fields: RowField[] | null;
      failed: boolean;
      /** called once the plan is known (null: the columns could not be described) */
      done: (plan: MaskPlan | typeof REFUSED_BY_SERVER | null) => void;
    };
