// The slice of @actions/core the steps use, as a type: run-main/run-post take it as a parameter so
// unit tests can record every call (e.g. that each credential is masked before anything prints).
import type * as Core from '@actions/core';

export type ActionsCore = Pick<
  typeof Core,
  | 'getIDToken'
  | 'setSecret'
  | 'saveState'
  | 'getState'
  | 'exportVariable'
  | 'setOutput'
  | 'info'
  | 'debug'
  | 'warning'
  | 'error'
  | 'startGroup'
  | 'endGroup'
  | 'setFailed'
>;

export type Env = Readonly<Record<string, string | undefined>>;
