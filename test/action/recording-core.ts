// A stand-in for @actions/core that records every call in order, for asserting what the steps print,
// mask, export and save.
import type { ActionsCore } from '../../src/actions-core.js';

export interface CoreCall {
  fn: keyof ActionsCore;
  args: unknown[];
}

/** calls that write to the job log */
export const PRINTING: ReadonlyArray<keyof ActionsCore> = [
  'info',
  'debug',
  'warning',
  'error',
  'startGroup',
  'setFailed',
];

export interface RecordingCore {
  core: ActionsCore;
  calls: CoreCall[];
  /** the text of every printing call, in order */
  log(): string[];
  failed(): string | undefined;
  secrets(): string[];
  state: Record<string, string>;
  outputs: Record<string, string>;
  exported: Record<string, string>;
}

export function recordingCore(
  opts: { idToken?: (audience?: string) => string; state?: Record<string, string> } = {},
): RecordingCore {
  const calls: CoreCall[] = [];
  const state: Record<string, string> = { ...opts.state };
  const outputs: Record<string, string> = {};
  const exported: Record<string, string> = {};
  const rec =
    (fn: keyof ActionsCore) =>
    (...args: unknown[]) => {
      calls.push({ fn, args });
    };
  const text = (v: unknown) => (v instanceof Error ? v.message : String(v));
  const core: ActionsCore = {
    getIDToken: async (audience?: string) => {
      calls.push({ fn: 'getIDToken', args: [audience] });
      if (!opts.idToken)
        throw new Error('Error message: Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env variable');
      return opts.idToken(audience);
    },
    setSecret: rec('setSecret'),
    saveState: (name: string, value: unknown) => {
      calls.push({ fn: 'saveState', args: [name, value] });
      state[name] = typeof value === 'string' ? value : JSON.stringify(value);
    },
    getState: (name: string) => state[name] ?? '',
    exportVariable: (name: string, value: unknown) => {
      calls.push({ fn: 'exportVariable', args: [name, value] });
      exported[name] = String(value);
    },
    setOutput: (name: string, value: unknown) => {
      calls.push({ fn: 'setOutput', args: [name, value] });
      outputs[name] = String(value);
    },
    info: rec('info'),
    debug: rec('debug'),
    warning: rec('warning'),
    error: rec('error'),
    startGroup: rec('startGroup'),
    endGroup: rec('endGroup'),
    setFailed: rec('setFailed'),
  };
  return {
    core,
    calls,
    state,
    outputs,
    exported,
    log: () => calls.filter((c) => PRINTING.includes(c.fn)).map((c) => text(c.args[0])),
    failed: () => {
      const f = calls.find((c) => c.fn === 'setFailed');
      return f ? text(f.args[0]) : undefined;
    },
    secrets: () => calls.filter((c) => c.fn === 'setSecret').map((c) => String(c.args[0])),
  };
}

/** An unsigned JWT with these claims: enough for the action, which never verifies tokens. */
export function fakeJwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${b64(claims)}.${Buffer.from(`sig-${Math.random()}`).toString('base64url')}`;
}
