// The policy's one entry point: decide(grant, operation, facts) → Decision. Every gateway turns what
// its client sent into an Operation (policy/operation.ts), reads the facts the judgement needs (for
// PostgreSQL: catalog facts, user objects, view lineage; for ssh and Kubernetes: the request's own
// attributes) and asks here; the per-kind judgements (pg/, sql/, ssh/, kubernetes/) are internal to
// policy/. Pure: no I/O, no clock.
import type { Grant } from '../config/schema.js';
import { allow, type Decision, deny } from './decision.js';
import type { KubernetesRequestInfo } from './kubernetes/request-info.js';
import { decideKubernetesRequest, decidePorts, type KubernetesDecision } from './kubernetes/rules.js';
import type {
  K8sRequestOperation,
  Operation,
  PgOperation,
  SshOperation,
  SshSftpOperation,
} from './operation.js';
import type { TargetViews, UserObjects, ViewLineage } from './pg/facts.js';
import { type GateFacts, gateStatements } from './pg/statement-gate.js';
import { functionCallBypass } from './pg/user-code.js';
import { decideStatement } from './sql/decide.js';
import type { ClassifiedStatement } from './sql/types.js';
import {
  AGENT_FORWARDING_REFUSED,
  decideEnv,
  decideExec,
  decideForward,
  decidePty,
  decideShell,
  decideSftp,
  decideSubsystem,
  type SftpRequest,
  X11_REFUSED,
} from './ssh/decide.js';

/**
 * Where a gateway keeps decideStatement's answers for one cached statement, by grant (the policy
 * fills it; decideStatement is pure in grant and statement). Used when the message is that one statement.
 */
export interface StatementMemo {
  decisions: WeakMap<Grant, Decision>;
}

/** What the PostgreSQL gateway read for a statement, COPY or FunctionCall. */
export interface PgFacts {
  kind: 'pg';
  /**
   * Every statement of the message the operation came in (a simple Query may hold several; a
   * message passes or is refused whole). Absent: the operation's statement alone.
   */
  message?: readonly ClassifiedStatement[];
  /** the traced view lineage (null: none read yet) */
  views: TargetViews | null;
  /** views passing a masked column on that no rule can name (policy/pg/views.ts effectiveGrant) */
  unnameable: readonly ViewLineage[];
  /** no new reading of the lineage for this message (one that started after it is in, or the session's own DDL holds locks a reading would wait for) */
  relationsSettled: boolean;
  /** the user objects as read (undefined: not yet, or stale); called only when a statement names anything */
  userObjects(): UserObjects | undefined;
  /** the user objects come from a reading that started after this message */
  userObjectsFresh: boolean;
  /** an approver approved this message's hold: a hold passes */
  approved: boolean;
  /** the gateway's memo of decideStatement for a cached one-statement message */
  memo?: StatementMemo | null;
}

/** What the ssh gateway knows beside the operation. */
export interface SshFacts {
  kind: 'ssh';
  /** an env request's value (judged, never recorded) */
  envValue?: string;
  /** a local forward to a unix socket (openssh streamlocal): `host` is the socket path */
  unixSocket?: boolean;
}

/** The Kubernetes request attributes, resolved as the API server resolves them. */
export interface K8sFacts {
  kind: 'k8s';
  info: KubernetesRequestInfo;
  /** the request itself was decided (and any hold settled): judge only the operation's ports */
  portsOnly?: boolean;
  /** impersonation headers the client sent itself (Impersonate-User, -Group, -Uid, -Extra-*), by name */
  impersonationHeaders?: readonly string[];
}

export type Facts = PgFacts | SshFacts | K8sFacts;
export type FactsFor<O extends Operation> = O extends PgOperation
  ? PgFacts
  : O extends SshOperation
    ? SshFacts
    : K8sFacts;

export function decide<O extends Operation>(grant: Grant, operation: O, facts: FactsFor<O>): Decision;
export function decide(grant: Grant, operation: Operation, facts: Facts): Decision {
  switch (operation.kind) {
    case 'pg.statement':
    case 'pg.copy':
    case 'pg.function_call':
      return facts.kind === 'pg' ? decidePg(grant, operation, facts) : mismatch(operation.kind);
    case 'ssh.exec':
    case 'ssh.shell':
    case 'ssh.sftp':
    case 'ssh.forward':
    case 'ssh.request':
      return facts.kind === 'ssh' ? decideSsh(grant, operation, facts) : mismatch(operation.kind);
    case 'k8s.request':
      return facts.kind === 'k8s' ? decideK8s(grant, operation, facts) : mismatch(operation.kind);
  }
}

const mismatch = (kind: string): Decision => deny('policy', `no facts of the right kind for ${kind}`);

// ---- PostgreSQL ----------------------------------------------------------------------------------

interface GrantTraits {
  outOfSight: boolean;
  tracesViews: boolean;
  masking: boolean;
}
const traitsOf = new WeakMap<Grant, GrantTraits>();

function traits(grant: Grant): GrantTraits {
  let t = traitsOf.get(grant);
  if (!t) {
    const mask = grant.mask ?? [];
    const outOfSight = mask.some((r) => 'column' in r) || (grant.deny ?? []).some((r) => 'table' in r);
    t = { outOfSight, tracesViews: outOfSight || grant.access === 'read', masking: mask.length > 0 };
    traitsOf.set(grant, t);
  }
  return t;
}

function rulesFor(grant: Grant, memo: StatementMemo | null | undefined, stmt: ClassifiedStatement): Decision {
  if (!memo) return decideStatement(grant, stmt);
  let d = memo.decisions.get(grant);
  if (!d) {
    d = decideStatement(grant, stmt);
    memo.decisions.set(grant, d);
  }
  return d;
}

function decidePg(grant: Grant, op: PgOperation, f: PgFacts): Decision {
  const t = traits(grant);
  if (op.kind === 'pg.function_call') {
    if (op.function === null || op.statement === null)
      return deny('protocol: FunctionCall', 'the call could not be classified');
    const d = rulesFor(grant, f.memo, op.statement);
    if (d.effect === 'deny' || (d.effect === 'hold' && !f.approved)) return d;
    return functionCallBypass(op.function, t.outOfSight) ?? allow();
  }
  const statements = f.message ?? (op.statement ? [op.statement] : null);
  if (statements === null) return deny('parser', 'the statement could not be read');
  const memo = statements.length === 1 ? f.memo : null;
  const gate: GateFacts = {
    access: grant.access,
    outOfSight: t.outOfSight,
    tracesViews: t.tracesViews,
    masking: t.masking,
    views: f.views,
    unnameable: f.unnameable,
    relationsSettled: f.relationsSettled,
    userObjects: f.userObjects,
    userObjectsFresh: f.userObjectsFresh,
    approved: f.approved,
    decide: (stmt) => rulesFor(grant, memo, stmt),
  };
  const v = gateStatements(statements, op.protocol, gate);
  if (v === null) return allow();
  switch (v.kind) {
    case 'read-views':
      return {
        effect: 'deny',
        rule: 'policy',
        reasons: ['a relation the traced view lineage does not know: the catalog must be read again'],
        needs: { facts: 'views', refresh: true },
      };
    case 'read-user-objects':
      return {
        effect: 'deny',
        rule: grant.access === 'read' ? 'access: read' : 'mask: bypass',
        reasons: ['the functions, operators and casts users defined must be read from the catalog first'],
        needs: { facts: 'user-objects', refresh: v.refresh },
      };
    case 'refuse': {
      const d: Decision = { ...v.decision, statement: statements.indexOf(v.stmt) };
      if (v.unsupported && d.effect === 'deny') d.unsupported = true;
      return d;
    }
  }
}

/**
 * A refusal for want of a catalog reading that failed (fail closed): which rule it is refused under
 * depends on what the reading was for.
 */
export function catalogUnreadable(grant: Grant, what: 'views' | 'user-objects'): Decision {
  if (what === 'views')
    return traits(grant).outOfSight && (grant.mask ?? []).some((r) => 'column' in r)
      ? deny('mask', 'mask: the catalog could not be read to trace views over masked columns')
      : deny('policy', 'policy: the catalog could not be read to trace the views statements may read');
  return grant.access === 'read'
    ? deny(
        'access: read',
        'access read: the catalog could not be read to check that the functions, operators and casts used are the built-ins',
      )
    : deny(
        'mask: bypass',
        "mask: the catalog could not be read to check that no function, operator or cast used is a user's",
      );
}

// ---- ssh -----------------------------------------------------------------------------------------

function sftpRequest(op: SshSftpOperation): SftpRequest {
  switch (op.op) {
    case 'open':
      return { op: 'open', path: op.path, mode: op.mode ?? 'read-write' };
    case 'rename':
    case 'symlink':
    case 'hardlink':
      return { op: op.op, path: op.path, target_path: op.target_path ?? '' };
    case 'read':
    case 'write':
      // reads and writes of an open handle were judged at its open: judged as that open again
      return { op: 'open', path: op.path, mode: op.op };
    default:
      return { op: op.op, path: op.path };
  }
}

function decideSsh(grant: Grant, op: SshOperation, f: SshFacts): Decision {
  switch (op.kind) {
    case 'ssh.exec':
      return decideExec(grant, op.command);
    case 'ssh.shell':
      return decideShell(grant, op.term !== undefined);
    case 'ssh.sftp':
      return decideSftp(grant, sftpRequest(op));
    case 'ssh.forward':
      if (f.unixSocket)
        return deny('forwards', 'forwarding to a unix socket is not allowed through the broker');
      return decideForward(grant, { direction: op.direction, host: op.host, port: op.port });
    case 'ssh.request':
      switch (op.request) {
        case 'pty':
          return decidePty(grant);
        case 'env':
          return decideEnv(grant, op.name ?? '', f.envValue ?? '');
        case 'agent-forwarding':
          return AGENT_FORWARDING_REFUSED;
        case 'x11':
          return X11_REFUSED;
        case 'subsystem':
          return decideSubsystem(grant, op.name ?? '');
      }
  }
}

// ---- Kubernetes ----------------------------------------------------------------------------------

const asDecision = (d: KubernetesDecision): Decision =>
  d.effect === 'allow'
    ? { effect: 'allow', reasons: d.reasons, ...(d.rule !== undefined ? { rule: d.rule } : {}) }
    : { effect: d.effect, rule: d.rule, reasons: d.reasons };

function decideK8s(grant: Grant, op: K8sRequestOperation, f: K8sFacts): Decision {
  if (f.portsOnly) return asDecision(decidePorts(grant, op.ports ?? []));
  // The broker alone sets who the request acts as: no grant lets the client choose its own identity.
  if (f.impersonationHeaders?.length)
    return deny(
      'impersonation',
      `the client's own impersonation headers are refused (${f.impersonationHeaders.join(', ')}); the broker sets the identity`,
    );
  const d = decideKubernetesRequest(grant, f.info);
  if (d.effect === 'allow' && op.ports) return asDecision(decidePorts(grant, op.ports));
  return asDecision(d);
}
