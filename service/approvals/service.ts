// The approvals service: the flow's Approver (gateways/operation-flow.ts) and the channels' decider.
// A hold becomes a PendingApproval bound to its session, target, connection and the exact operation
// (its SHA-256), stored (so any replica can decide it), announced (the approval.requested event, the
// gateway's onHeld, every channel), then waited for until a decision, its timeout (a denial) or the
// end of the wait (the client left, the session was revoked or expired: abandoned). Decisions are
// compare-and-set writes in the store (rules.ts applyVote decides what a vote does), so they may come
// in on any replica: the waiting replica hears of them by NOTIFY (replicas.ts) or, as a backstop, by
// reading its waiting approvals again every second. Only the waiting replica records how a wait ended.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { BrokerEvent } from '../audit/event.js';
import { pgText } from '../audit/operation-events.js';
import type { ApprovalLinks, ApprovalOutcome, Approver, HoldRequest } from '../gateways/operation-flow.js';
import { holdApproval } from '../policy/approval.js';
import type { Operation } from '../policy/operation.js';
import { base32 } from '../sessions/secret.js';
import type { Store } from '../store/store.js';
import { applyVote, approvalEvent, describeApprovers, jobOf } from './rules.js';
import type {
  ApprovalChannel,
  ApprovalDecider,
  ApprovalDecision,
  DecideResult,
  PendingApproval,
} from './types.js';

export interface ApprovalServiceOptions {
  store: Store;
  /** append an event to a session's transcript, durably */
  record(sessionId: string, event: BrokerEvent): Promise<unknown>;
  logger: Logger;
  /** the broker's public URL (links in notices and notifications); known once the API listens */
  publicUrl: () => string;
  channels?: ApprovalChannel[];
  now?: () => Date;
  /** how often waiting approvals are read again, besides NOTIFY (default 1 s) */
  sweepMs?: number;
}

interface Waiter {
  approval: PendingApproval;
  /** re-read the approval from the store and settle the wait if it is over */
  check(): void;
}

export class ApprovalService implements Approver, ApprovalDecider {
  readonly #o: ApprovalServiceOptions;
  readonly #now: () => Date;
  readonly #waiters = new Map<string, Waiter>();
  readonly #channels: ApprovalChannel[];
  #sweep: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(o: ApprovalServiceOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
    this.#channels = [...(o.channels ?? [])];
  }

  /** Channels may be added after start (part B's GitHub App channel is built later in the wiring). */
  addChannel(channel: ApprovalChannel): void {
    this.#channels.push(channel);
  }

  links(id: string): ApprovalLinks {
    const base = this.#o.publicUrl().replace(/\/+$/, '');
    return {
      api: `${base}/v1/approvals/${id}`,
      cli: `hoop-broker approvals approve ${id} --url ${base}`,
    };
  }

  get(id: string): Promise<PendingApproval | null> {
    return this.#o.store.getApproval(id).then((r) => r?.approval ?? null);
  }

  list(filter: Parameters<Store['listApprovals']>[0]): Promise<PendingApproval[]> {
    return this.#o.store.listApprovals(filter);
  }

  /** A human's decision (any channel, any replica). */
  async decide(d: ApprovalDecision): Promise<DecideResult> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const got = await this.#o.store.getApproval(d.id);
      if (!got) return { ok: false, code: 'not_found', message: `no approval ${d.id}` };
      const r = applyVote(got.approval, d, this.#now());
      if (!r.ok) return r;
      if (await this.#o.store.updateApproval(r.approval, got.version)) {
        this.#o.logger.info(
          { approval_id: d.id, by: d.by, channel: d.channel, decision: d.decision, state: r.approval.state },
          'approval decided',
        );
        this.changed(d.id);
        return r;
      }
      // another writer was first: decide again over what it wrote
    }
    return {
      ok: false,
      code: 'not_pending',
      message: `approval ${d.id} is being decided elsewhere; try again`,
    };
  }

  /** The GitHub channel's check run for `id`, kept on the approval (compare-and-set, any state). */
  async recordCheckRun(id: string, checkRunId: number): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const got = await this.#o.store.getApproval(id);
      if (!got || got.approval.github_check_run_id === checkRunId) return;
      if (
        await this.#o.store.updateApproval({ ...got.approval, github_check_run_id: checkRunId }, got.version)
      )
        return;
    }
    throw new Error(`approval ${id}: the check run id could not be kept`);
  }

  /** An approval changed (here, or on another replica: NOTIFY): its waiter, if here, reads it again. */
  changed(id: string): void {
    this.#waiters.get(id)?.check();
  }

  /** The flow's Approver: hold the operation until it is decided. */
  async request(hold: HoldRequest): Promise<ApprovalOutcome> {
    const { store } = this.#o;
    if (this.#closed) return { decision: 'deny', reason: 'the broker is shutting down' };
    const session = await store.getSession(hold.session_id);
    if (!session) return { decision: 'deny', reason: 'the session is unknown' };
    const grant = session.grants.find((g) => g.target === hold.target);
    const terms = hold.decision.approval ?? holdApproval(grant ?? {});
    const now = this.#now();
    const summary = (hold.summary ?? summarize(hold.operation)).slice(0, 2000);
    const approval: PendingApproval = {
      id: `apr_${base32(randomBytes(10))}`,
      session_id: hold.session_id,
      target: hold.target,
      conn_id: hold.conn_id,
      operation_kind: hold.operation.kind,
      summary,
      operation_sha256: hold.operation_sha256 ?? operationSha256(hold.operation),
      rule: hold.decision.rule ?? 'hold',
      reasons: hold.decision.reasons,
      policy: session.policy,
      approvers: terms.approvers,
      job: jobOf(session.claims),
      state: 'pending',
      votes: [],
      requested_at: now.toISOString(),
      expires_at: new Date(
        Math.min(now.getTime() + terms.timeout_ms, session.expires_at.getTime()),
      ).toISOString(),
    };
    if (hold.signal.aborted) return { decision: 'deny', reason: 'the client left before the hold began' };
    await store.insertApproval(approval);
    try {
      await this.#o.record(hold.session_id, approvalEvent(approval, 'approval.requested', now));
    } catch (err) {
      // not recorded, not held: the operation is refused (the flow), and nobody may decide the approval
      await store
        .updateApproval({ ...approval, state: 'abandoned', decided_at: this.#now().toISOString() }, 1)
        .catch(() => undefined);
      throw err;
    }
    const links = this.links(approval.id);
    try {
      hold.onHeld?.(approval, links);
    } catch (err) {
      this.#o.logger.warn({ err, approval_id: approval.id }, 'approval: telling the client failed');
    }
    this.#o.logger.info(
      {
        approval_id: approval.id,
        session_id: approval.session_id,
        target: approval.target,
        rule: approval.rule,
      },
      'operation held for approval',
    );
    for (const c of this.#channels) this.#tell(c, 'requested', approval, links, hold);

    const final = await this.#wait(approval, hold.signal);
    const ended = this.#now();
    const kind =
      final.state === 'approved'
        ? 'approval.granted'
        : final.state === 'denied'
          ? 'approval.denied'
          : final.state === 'expired'
            ? 'approval.expired'
            : 'approval.abandoned';
    try {
      await this.#o.record(hold.session_id, approvalEvent(final, kind, ended));
    } catch (err) {
      // the session may have ended meanwhile (its transcript is final); an approval not recorded is not released
      this.#o.logger.warn({ err, approval_id: final.id }, 'approval: recording how the wait ended failed');
      if (final.state === 'approved')
        return {
          decision: 'deny',
          approval_id: final.id,
          reason: `approval ${final.id}: the approval could not be recorded`,
        };
    }
    for (const c of this.#channels) this.#tell(c, 'ended', final, links);
    return outcomeOf(final);
  }

  #tell(
    c: ApprovalChannel,
    what: 'requested' | 'ended',
    a: PendingApproval,
    links: ApprovalLinks,
    hold?: HoldRequest,
  ): void {
    const p =
      what === 'requested'
        ? c.requested(a, { api: links.api }).then((shown) => {
            // where the channel shows it (a check run): the gateway may tell its client, once
            if (shown?.url && !hold?.signal.aborted && this.#waiters.has(a.id))
              hold?.onShown?.(a, { channel: c.name, url: shown.url });
          })
        : c.ended(a);
    p.catch((err: unknown) =>
      this.#o.logger.warn({ err, channel: c.name, approval_id: a.id }, `approval channel ${c.name} failed`),
    );
  }

  /** Wait until the approval is decided, times out or the wait is aborted; the final approval. */
  #wait(approval: PendingApproval, signal: AbortSignal): Promise<PendingApproval> {
    const { store } = this.#o;
    return new Promise<PendingApproval>((resolve) => {
      let done = false;
      let reading = false;
      let again = false;
      const finish = (a: PendingApproval) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#waiters.delete(approval.id);
        this.#stopSweepIfIdle();
        resolve(a);
      };
      /** end the wait as `state` unless a decision got there first (then that decision stands) */
      const endAs = async (state: 'expired' | 'abandoned'): Promise<void> => {
        for (let i = 0; i < 8 && !done; i++) {
          const got = await store.getApproval(approval.id);
          if (!got) return finish({ ...approval, state });
          if (got.approval.state !== 'pending') return finish(got.approval);
          const next: PendingApproval = { ...got.approval, state, decided_at: this.#now().toISOString() };
          if (await store.updateApproval(next, got.version)) return finish(next);
        }
        if (!done) finish({ ...approval, state });
      };
      const failSafe = (state: 'expired' | 'abandoned') => (err: unknown) => {
        this.#o.logger.warn(
          { err, approval_id: approval.id },
          'approval: ending the wait in the store failed',
        );
        finish({ ...approval, state });
      };
      const check = () => {
        if (done) return;
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        store.getApproval(approval.id).then(
          (got) => {
            reading = false;
            if (got && got.approval.state !== 'pending') return finish(got.approval);
            if (again) {
              again = false;
              check();
            }
          },
          (err: unknown) => {
            reading = false;
            this.#o.logger.warn({ err, approval_id: approval.id }, 'approval: reading it again failed');
          },
        );
      };
      const onAbort = () => void endAs('abandoned').catch(failSafe('abandoned'));
      const timer = setTimeout(
        () => void endAs('expired').catch(failSafe('expired')),
        Math.max(0, Date.parse(approval.expires_at) - this.#now().getTime()),
      );
      this.#waiters.set(approval.id, { approval, check });
      this.#startSweep();
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      check(); // a decision may have come in before the waiter was registered
    });
  }

  #startSweep(): void {
    if (this.#sweep) return;
    this.#sweep = setInterval(() => {
      for (const w of this.#waiters.values()) w.check();
    }, this.#o.sweepMs ?? 1000);
    this.#sweep.unref();
  }

  #stopSweepIfIdle(): void {
    if (this.#waiters.size > 0 || !this.#sweep) return;
    clearInterval(this.#sweep);
    this.#sweep = null;
  }

  /** How many holds wait here (metrics, tests). */
  get waiting(): number {
    return this.#waiters.size;
  }

  close(): void {
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = null;
  }
}

/** What the flow hears of a finished approval. */
export function outcomeOf(a: PendingApproval): ApprovalOutcome {
  const deciding = a.votes.filter((v) =>
    a.state === 'denied' ? v.decision === 'deny' : v.decision === 'approve',
  );
  const by = deciding.map((v) => v.by).join(', ');
  switch (a.state) {
    case 'approved':
      return {
        decision: 'approve',
        by,
        approval_id: a.id,
        reason: `approval ${a.id} granted by ${by} (${deciding.at(-1)?.channel ?? '?'})`,
      };
    case 'denied': {
      const why = deciding.at(-1)?.reason;
      return {
        decision: 'deny',
        by,
        approval_id: a.id,
        reason: `approval ${a.id} denied by ${by}${why ? `: ${why}` : ''}`,
      };
    }
    case 'expired':
      return {
        decision: 'timeout',
        approval_id: a.id,
        reason: `approval ${a.id} timed out at ${a.expires_at} without a decision (a timeout denies)`,
      };
    default:
      return {
        decision: 'deny',
        approval_id: a.id,
        reason: `approval ${a.id} abandoned: the wait ended (the client left, or the session ended)`,
      };
  }
}

/** A held operation as people read it (redacted where the transcript redacts). */
export function summarize(op: Operation): string {
  switch (op.kind) {
    case 'pg.statement':
    case 'pg.copy':
    case 'pg.function_call':
      return pgText(op);
    case 'ssh.exec':
      return op.command;
    case 'ssh.shell':
      return 'interactive shell';
    case 'ssh.sftp':
      return `sftp ${op.op} ${op.path}${op.target_path ? ` → ${op.target_path}` : ''}`;
    case 'ssh.forward':
      return `forward ${op.direction} ${op.host}:${op.port}`;
    case 'ssh.request':
      return `${op.request}${op.name ? ` ${op.name}` : ''}`;
    case 'k8s.request': {
      const what = op.resource
        ? `${op.resource}${op.subresource ? `/${op.subresource}` : ''}${op.name ? ` ${op.name}` : ''}${op.namespace ? ` in ${op.namespace}` : ''}`
        : op.path;
      return `${op.verb} ${what}${op.command ? `: ${op.command.join(' ')}` : ''}`;
    }
  }
}

/** The operation's identity when the gateway gave none: ssh the command, k8s the request. */
export function operationSha256(op: Operation): string {
  const text =
    op.kind === 'ssh.exec'
      ? `ssh.exec\0${op.command}`
      : op.kind === 'k8s.request'
        ? `k8s.request\0${op.verb}\0${op.path}\0${(op.command ?? []).join('\0')}\0${(op.ports ?? []).join(',')}`
        : `${op.kind}\0${summarize(op)}`;
  return createHash('sha256').update(text).digest('hex');
}

export { describeApprovers };
