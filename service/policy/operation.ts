// What a gateway asks the policy about: one Operation per thing a client does through the broker.
// A gateway turns bytes into an Operation (with the facts it read, e.g. catalog facts), the policy
// judges it (a Decision), and the flow records it (gateways/operation-flow.ts). Pure data.
import type { ClassifiedStatement } from './sql/types.js';

/** How a PostgreSQL statement reached the broker. */
export type PgProtocol = 'simple' | 'extended' | 'function-call';

/** One SQL statement (simple Query, or the Parse of an extended-protocol statement). */
export interface PgStatementOperation {
  kind: 'pg.statement';
  protocol: Exclude<PgProtocol, 'function-call'>;
  /** the classified statement; null when the message could not be read or parsed */
  statement: ClassifiedStatement | null;
  /** the statement text for the transcript (redacted), when `statement` is null */
  text?: string;
  /** what the transcript calls it when `statement` is null: the message refused (default UNKNOWN) */
  label?: 'QUERY' | 'PARSE';
}

/**
 * A fast-path FunctionCall: the function by OID, resolved from the catalog to its schema and name,
 * and judged as the equivalent `SELECT schema.name($1, …)`.
 */
export interface PgFunctionCallOperation {
  kind: 'pg.function_call';
  /** null when the message could not be read */
  oid: number | null;
  /** schema and name from the catalog; null when no function has that OID or it could not be read */
  function: { schema: string; name: string } | null;
  /** the equivalent SQL call, classified; null when it could not be */
  statement: ClassifiedStatement | null;
}

/** COPY … TO STDOUT / FROM STDIN: a statement whose data flows outside rows. */
export interface PgCopyOperation {
  kind: 'pg.copy';
  protocol: Exclude<PgProtocol, 'function-call'>;
  statement: ClassifiedStatement;
  direction: 'to' | 'from';
}

/** A command run without a terminal (`ssh host make deploy`, `git-upload-pack '<path>'`). */
export interface SshExecOperation {
  kind: 'ssh.exec';
  command: string;
}

/** An interactive shell (with or without a pseudo-terminal). */
export interface SshShellOperation {
  kind: 'ssh.shell';
  /** the terminal type asked for; absent without a pty */
  term?: string;
}

export type SftpOp =
  | 'open'
  | 'read'
  | 'write'
  | 'stat'
  | 'list'
  | 'mkdir'
  | 'rmdir'
  | 'remove'
  | 'rename'
  | 'symlink'
  | 'readlink'
  | 'setstat';

/** One SFTP request (OpenSSH >= 9 `scp` speaks SFTP too). */
export interface SshSftpOperation {
  kind: 'ssh.sftp';
  op: SftpOp;
  path: string;
  /** the second path of rename and symlink */
  target_path?: string;
  /** open: how the file is opened */
  mode?: 'read' | 'write' | 'append';
}

/** A port forward through the broker's ssh endpoint. */
export interface SshForwardOperation {
  kind: 'ssh.forward';
  /** local: `ssh -L` (direct-tcpip); remote: `ssh -R` (tcpip-forward) */
  direction: 'local' | 'remote';
  host: string;
  port: number;
}

/** One Kubernetes API request, by its request attributes (what RBAC authorizes on). */
export interface K8sRequestOperation {
  kind: 'k8s.request';
  /** get, list, watch, create, update, patch, delete, deletecollection; for non-resource paths the HTTP verb */
  verb: string;
  /** '' for the core group */
  apiGroup: string;
  apiVersion?: string;
  /** pods, deployments, …; absent for a non-resource path (/version, /apis) */
  resource?: string;
  /** log, exec, portforward, status, scale, … */
  subresource?: string;
  namespace?: string;
  name?: string;
  /** the request path as sent, without the query string */
  path: string;
}

export type PgOperation = PgStatementOperation | PgFunctionCallOperation | PgCopyOperation;
export type SshOperation = SshExecOperation | SshShellOperation | SshSftpOperation | SshForwardOperation;
export type Operation = PgOperation | SshOperation | K8sRequestOperation;
export type OperationKind = Operation['kind'];

/** The operation of a kind, e.g. OperationOf<'ssh.exec'>. */
export type OperationOf<K extends OperationKind> = Extract<Operation, { kind: K }>;
