// Sessions: issue (OIDC token → policy → grants → session), authenticate, revoke, expire.
// The decision core (identity verification results, policy matching, grants) is pure; this module
// does the I/O around it: store writes, transcript events, the 'ended' notification gateways listen to.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type {
  ErrorBody,
  ExplainResult,
  Reason,
  SessionCreated,
  SessionTarget,
  SessionView,
  Transcript,
} from '../api/schemas.js';
import { type TranscriptEvent, verifyChain } from '../audit/event.js';
import type { TranscriptRecorder } from '../audit/recorder.js';
import type { ResolvedConfig } from '../config/load.js';
import type { Grant, Target } from '../config/schema.js';
import { pickIdentity } from '../identity/claims.js';
import type { VerifyFailure, VerifyResult } from '../identity/verify.js';
import type { BrokerMetrics } from '../metrics.js';
import { resolveGrants, sessionTtlMs } from '../policy/grants.js';
import { evaluatePolicies } from '../policy/match.js';
import type { Store } from '../store/store.js';
import {
  hashSecret,
  makeScramVerifierAsync,
  newSessionId,
  newSessionSecret,
  secretMatches,
} from './secret.js';
import { type SessionRecord, sessionState } from './types.js';

export interface TokenVerifier {
  verifyToken(raw: string, now: Date): Promise<VerifyResult>;
}

export interface SessionEnded {
  id: string;
  reason: 'revoked' | 'expired';
  message: string;
}

/**
 * Per-kind connection settings, filled in by the gateway of the target's kind; undefined when the broker
 * runs none (the answer then lists the target without connection settings).
 */
export type ConnectionInfo = (target: Target, session: SessionRecord) => SessionTarget['connection'];

export interface SessionServiceOptions {
  config: ResolvedConfig;
  store: Store;
  recorder: TranscriptRecorder;
  verifier: TokenVerifier;
  logger: Logger;
  metrics: BrokerMetrics;
  /** admin tokens, by name → token value (resolved from their references at start-up) */
  adminTokens: ReadonlyMap<string, string>;
  connectionInfo: ConnectionInfo;
  caPem?: string | undefined;
  now?: () => Date;
  /** grants' `require:` gates (approvals/github/gates.ts); absent: a grant with `require:` is refused */
  grantRequirements?: GrantRequirementCheck | undefined;
}

/** Evidence that humans approved (environment reviews, PR reviews), or why there is none. */
export type GrantRequirementCheck = (
  grants: readonly Grant[],
  claims: Record<string, unknown>,
) => Promise<{ ok: true; evidence: string[]; approvers: string[] } | { ok: false; reasons: Reason[] }>;

/**
 * Why a request was refused, in the service's terms (api/routes.ts maps each to its HTTP status):
 * invalid (a malformed request value), unauthenticated (the token is not proven), forbidden (no policy
 * grants it), not-found, limited (a broker-wide limit is reached: retry later), unavailable (the issuer's
 * keys could not be fetched: unproven, not bad).
 */
export type Refusal = 'invalid' | 'unauthenticated' | 'forbidden' | 'not-found' | 'limited' | 'unavailable';

export type Outcome<T> = { ok: true; value: T } | { ok: false; refusal: Refusal; body: ErrorBody };

export interface OpenRequest {
  oidc_token: string;
  targets?: string[] | undefined;
  ttl?: string | undefined;
  ssh_public_key?: string | undefined;
  client?: string | undefined;
}

/** Who is asking: a session's own secret grants access to that session only; an admin token to all. */
export type Caller = { kind: 'session'; sessionId: string } | { kind: 'admin'; name: string };

const fail = <T>(refusal: Refusal, error: string, reasons: Reason[] = []): Outcome<T> => ({
  ok: false,
  refusal,
  body: { error, reasons },
});

/** A token that did not verify: unproven while its issuer is unreachable, else bad. */
const unverified = (failure: VerifyFailure): Refusal =>
  failure === 'unavailable' ? 'unavailable' : 'unauthenticated';

export class SessionService {
  readonly events = new EventEmitter<{ ended: [SessionEnded] }>();
  readonly #o: SessionServiceOptions;
  readonly #now: () => Date;
  readonly #targets: Map<string, Target>;
  readonly #adminHashes: [name: string, hash: string][];
  #sweeper: NodeJS.Timeout | null = null;

  constructor(options: SessionServiceOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    this.#targets = new Map(options.config.targets.map((t) => [t.name, t]));
    this.#adminHashes = [...options.adminTokens].map(([name, token]) => [name, hashSecret(token)]);
    this.events.setMaxListeners(0);
  }

  get now(): Date {
    return this.#now();
  }

  /** POST /v1/sessions */
  async open(req: OpenRequest): Promise<Outcome<SessionCreated>> {
    const { config, metrics, logger } = this.#o;
    const now = this.#now();
    const verified = await this.#o.verifier.verifyToken(req.oidc_token, now);
    if (!verified.ok) {
      // 503: the issuer's keys could not be fetched, so the token is unproven rather than bad
      const kind = verified.failure === 'unavailable' ? 'issuer.unavailable' : 'token.invalid';
      return this.#refuse(unverified(verified.failure), verified.error, verified.reasons, kind, {
        client: req.client ?? null,
      });
    }
    const identity = pickIdentity(verified.claims);
    const who = {
      issuer: verified.issuer,
      repository: identity.repository ?? null,
      run_id: identity.run_id ?? null,
    };
    const evaluation = evaluatePolicies(config.policies, verified.claims, verified.issuer);
    const policy = evaluation.matched;
    if (!policy) {
      return this.#refuse(
        'forbidden',
        config.policies.length === 0 ? 'no policies are configured' : 'no policy matches this token',
        evaluation.explanations.flatMap((e) => e.failures),
        'policy.no_match',
        { ...who, client: req.client ?? null },
      );
    }
    const granted = resolveGrants(policy, req.targets, config.targets);
    if (!granted.ok) {
      return this.#refuse(
        'forbidden',
        'requested targets are not granted',
        granted.reasons,
        'policy.target_not_granted',
        {
          ...who,
          policy: policy.name,
          client: req.client ?? null,
        },
      );
    }
    const ttl = sessionTtlMs({
      requested: req.ttl,
      policyTtl: policy.ttl,
      maxTtl: config.sessions.max_ttl,
      defaultTtl: config.sessions.default_ttl,
    });
    if (ttl === null)
      return fail('invalid', 'invalid ttl', [{ message: `ttl "${req.ttl}" is not a duration like 30m` }]);

    const repository = typeof identity.repository === 'string' ? identity.repository : null;

    let evidence: { evidence: string[]; approvers: string[] } | null = null;
    // `require:` gates, and (with the GitHub App) reviewed migration files, read at session open: a
    // fetch that fails refuses the session rather than showing up at the first hold
    const migrations = this.#o.grantRequirements !== undefined && granted.grants.some((g) => g.migrations);
    if (granted.grants.some((g) => g.require !== undefined) || migrations) {
      const gate = this.#o.grantRequirements
        ? await this.#o.grantRequirements(granted.grants, verified.claims)
        : {
            ok: false as const,
            reasons: [
              {
                message: 'a grant requires approvals on GitHub, and github_app has no app_id and private_key',
              },
            ],
          };
      if (!gate.ok)
        return this.#refuse(
          'forbidden',
          'required approvals are missing',
          gate.reasons,
          'policy.requirement',
          {
            ...who,
            policy: policy.name,
            client: req.client ?? null,
          },
        );
      evidence = { evidence: gate.evidence, approvers: gate.approvers };
    }

    const secret = newSessionSecret();
    const session: SessionRecord = {
      id: newSessionId(),
      secret_hash: hashSecret(secret),
      scram_verifier: await makeScramVerifierAsync(secret),
      issuer: verified.issuer,
      identity,
      claims: verified.claims,
      policy: policy.name,
      grants: granted.grants,
      ssh_public_key: req.ssh_public_key ?? null,
      created_at: now,
      expires_at: new Date(now.getTime() + ttl),
      ended_at: null,
      end_reason: null,
    };
    const result = await this.#o.store.openSession(
      session,
      {
        target: null,
        kind: 'session.opened',
        operation: {
          identity,
          issuer: verified.issuer,
          policy: policy.name,
          grants: granted.grants,
          expires_at: session.expires_at.toISOString(),
          client: req.client ?? null,
          ...(evidence ? { approved_by: evidence.approvers } : {}),
        },
        decision: 'allow',
        reasons: [`policy ${policy.name} matched`, ...(evidence?.evidence ?? [])],
        at: now.toISOString(),
      },
      { key: verified.tokenKey, expires_at: verified.expiresAt },
      {
        repository,
        per_repository: config.limits.sessions_per_repository,
        policy: policy.name,
        per_policy: config.limits.sessions_per_policy,
      },
    );
    if (!result.ok && result.reason === 'limit') {
      metrics.limitRefusals.inc({ limit: result.limit });
      return this.#refuse(
        'limited',
        'session limit reached',
        [{ message: limitMessage(result.limit, result.live, repository, policy.name, config.limits) }],
        'limit.sessions',
        {
          ...who,
          policy: policy.name,
          client: req.client ?? null,
        },
      );
    }
    if (!result.ok) {
      logger.warn({ ...who, client: req.client }, 'replayed OIDC token refused');
      return this.#refuse(
        'unauthenticated',
        'token already used',
        [
          {
            message:
              'this OIDC token already opened a session; each token opens at most one (request a fresh one)',
          },
        ],
        'token.replayed',
        { ...who, client: req.client ?? null },
      );
    }
    metrics.sessionsOpened.inc({ policy: policy.name });
    metrics.sessionsActive.inc();
    logger.info(
      { session_id: session.id, policy: policy.name, ...who, targets: session.grants.map((g) => g.target) },
      'session opened',
    );
    this.#scheduleExpiry(session);
    return {
      ok: true,
      value: {
        id: session.id,
        secret,
        expires_at: session.expires_at.toISOString(),
        identity,
        policy: policy.name,
        targets: this.#targetViews(session),
        ...(this.#o.caPem ? { ca_pem: this.#o.caPem } : {}),
      },
    };
  }

  /** A refused session request: counted, recorded (non-secret detail only), answered with its reasons. */
  async #refuse<T>(
    refusal: Refusal,
    error: string,
    reasons: Reason[],
    kind:
      | 'token.invalid'
      | 'issuer.unavailable'
      | 'token.replayed'
      | 'policy.no_match'
      | 'policy.target_not_granted'
      | 'limit.sessions'
      | 'policy.requirement',
    detail: Record<string, unknown>,
  ): Promise<Outcome<T>> {
    this.#o.metrics.sessionsDenied.inc({ reason: kind });
    await this.#o.store.recordDenial({
      at: this.#now(),
      kind,
      reasons: reasons.map((r) => r.message),
      detail,
    });
    return fail(refusal, error, reasons);
  }

  /** POST /v1/explain: the same evaluation, nothing opened. */
  async explain(rawToken: string): Promise<Outcome<ExplainResult>> {
    const now = this.#now();
    const verified = await this.#o.verifier.verifyToken(rawToken, now);
    if (!verified.ok) return fail(unverified(verified.failure), verified.error, verified.reasons);
    const evaluation = evaluatePolicies(this.#o.config.policies, verified.claims, verified.issuer);
    return {
      ok: true,
      value: {
        issuer: verified.issuer,
        identity: pickIdentity(verified.claims),
        matched_policy: evaluation.matched?.name ?? null,
        policies: evaluation.explanations,
      },
    };
  }

  /**
   * Resolve a bearer credential: an admin token (constant-time against each) or a session secret
   * for the session named in the path. Unknown session and wrong secret look the same.
   */
  async authorize(bearer: string | undefined, sessionId: string | null): Promise<Caller | null> {
    if (!bearer) return null;
    for (const [name, hash] of this.#adminHashes) {
      if (secretMatches(bearer, hash)) return { kind: 'admin', name };
    }
    if (sessionId === null) return null;
    const s = await this.#o.store.getSession(sessionId);
    if (!s) {
      secretMatches(bearer, '0'.repeat(64)); // same work whether or not the session exists
      return null;
    }
    return secretMatches(bearer, s.secret_hash) ? { kind: 'session', sessionId: s.id } : null;
  }

  /** A session for the gateways: active or null (unknown, expired, revoked). */
  async getActive(id: string): Promise<SessionRecord | null> {
    const s = await this.#o.store.getSession(id);
    return s && sessionState(s, this.#now()) === 'active' ? s : null;
  }

  async view(id: string): Promise<SessionView | null> {
    const s = await this.#o.store.getSession(id);
    return s ? this.#view(s) : null;
  }

  async list(filter: { active?: boolean; limit?: number }): Promise<SessionView[]> {
    const rows = await this.#o.store.listSessions({
      ...(filter.active ? { active_at: this.#now() } : {}),
      limit: filter.limit ?? 100,
    });
    return rows.map((s) => this.#view(s));
  }

  async transcript(id: string): Promise<Transcript | null> {
    const s = await this.#o.store.getSession(id);
    if (!s) return null;
    const events: TranscriptEvent[] = await this.#o.store.listEvents(id);
    const check = verifyChain(events);
    if (!check.ok)
      this.#o.logger.error({ session_id: id, ...check }, 'transcript hash chain does not verify');
    return {
      session_id: id,
      state: sessionState(s, this.#now()),
      events,
      head_hash: events.at(-1)?.hash ?? '',
      chain_verified: check.ok,
    };
  }

  /** End a session (revoke). Idempotent: revoking an ended session reports its state. */
  async revoke(id: string, by: Caller, reason = 'revoked'): Promise<Outcome<SessionView>> {
    const now = this.#now();
    const s = await this.#o.store.getSession(id);
    if (!s) return fail('not-found', 'session not found');
    if (sessionState(s, now) === 'expired' && !s.ended_at) await this.#expire(s);
    else if (!s.ended_at) {
      const who = by.kind === 'admin' ? `admin:${by.name}` : 'session';
      const ended = await this.#o.store.endSession(id, now, 'revoked', {
        target: null,
        kind: 'session.revoked',
        operation: { by: who, reason },
        decision: 'info',
        reasons: [`revoked by ${who}`],
        at: now.toISOString(),
      });
      if (ended) {
        this.#o.metrics.sessionsActive.dec();
        this.#o.metrics.sessionsEnded.inc({ how: 'revoked' });
        this.#o.logger.info({ session_id: id, by: who }, 'session revoked');
        this.events.emit('ended', { id, reason: 'revoked', message: `session ${id} was revoked` });
      }
    }
    const after = await this.#o.store.getSession(id);
    return { ok: true, value: this.#view(after ?? s) };
  }

  /** Write session.expired for every session past its expiry (timers cover this process; the sweep covers restarts and replicas). */
  async sweepExpired(): Promise<number> {
    const due = await this.#o.store.listExpiredUnended(this.#now(), 500);
    for (const s of due) await this.#expire(s);
    await this.#o.store.pruneTokenUses(this.#now());
    return due.length;
  }

  startSweeper(intervalMs = 5_000): void {
    this.#sweeper = setInterval(() => {
      this.sweepExpired().catch((err) => this.#o.logger.error({ err }, 'expiry sweep failed'));
    }, intervalMs);
    this.#sweeper.unref();
  }

  async init(): Promise<void> {
    const active = await this.#o.store.listSessions({ active_at: this.#now(), limit: 100_000 });
    this.#o.metrics.sessionsActive.set(active.length);
    for (const s of active) this.#scheduleExpiry(s);
    await this.sweepExpired();
  }

  close(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }

  readonly #timers = new Map<string, NodeJS.Timeout>();

  #scheduleExpiry(s: SessionRecord): void {
    const ms = s.expires_at.getTime() - this.#now().getTime();
    // setTimeout caps at ~24.8 days; sessions are hours at most, the sweep catches anything else.
    if (ms > 2 ** 31 - 1) return;
    const t = setTimeout(
      () => {
        this.#timers.delete(s.id);
        this.#expire(s).catch((err) => this.#o.logger.error({ err, session_id: s.id }, 'expiry failed'));
      },
      Math.max(0, ms),
    );
    t.unref();
    this.#timers.set(s.id, t);
  }

  async #expire(s: SessionRecord): Promise<void> {
    const now = this.#now();
    const t = this.#timers.get(s.id);
    if (t) clearTimeout(t);
    this.#timers.delete(s.id);
    const ended = await this.#o.store.endSession(s.id, now, 'expired', {
      target: null,
      kind: 'session.expired',
      operation: { expires_at: s.expires_at.toISOString() },
      decision: 'info',
      reasons: ['session reached its expiry'],
      at: now.toISOString(),
    });
    if (ended) {
      this.#o.metrics.sessionsActive.dec();
      this.#o.metrics.sessionsEnded.inc({ how: 'expired' });
      this.#o.logger.info({ session_id: s.id }, 'session expired');
    }
    // Gateways close on their own expiry timers too; emit anyway so nothing outlives the session.
    this.events.emit('ended', { id: s.id, reason: 'expired', message: `session ${s.id} expired` });
  }

  #targetViews(s: SessionRecord): SessionTarget[] {
    return s.grants.flatMap((g: Grant) => {
      const t = this.#targets.get(g.target);
      if (!t) return [];
      const connection = this.#o.connectionInfo(t, s);
      // kind and connection come from the same target: the gateway of t.kind made the connection
      const view = {
        name: g.target,
        kind: t.kind,
        access: g.access,
        ...(g.mask ? { mask: g.mask } : {}),
        ...(g.deny ? { deny: g.deny } : {}),
        ...(connection ? { connection } : {}),
      } as SessionTarget;
      return [view];
    });
  }

  #view(s: SessionRecord): SessionView {
    return {
      id: s.id,
      state: sessionState(s, this.#now()),
      created_at: s.created_at.toISOString(),
      expires_at: s.expires_at.toISOString(),
      ended_at: s.ended_at?.toISOString() ?? null,
      end_reason: s.end_reason,
      issuer: s.issuer,
      identity: s.identity,
      policy: s.policy,
      targets: this.#targetViews(s),
    };
  }
}

/**
 * The refusal at limits.sessions_per_repository / sessions_per_policy. The store counts live sessions
 * and refuses in the same transaction as the insert (Store.openSession), so the limit holds across replicas.
 */
function limitMessage(
  limit: 'sessions_per_repository' | 'sessions_per_policy',
  live: number,
  repository: string | null,
  policy: string,
  limits: { sessions_per_repository: number; sessions_per_policy: number | null },
): string {
  return limit === 'sessions_per_repository'
    ? `repository ${repository} already holds ${live} live sessions (limits.sessions_per_repository is ${limits.sessions_per_repository}); end some (the action revokes its session when the job ends) or raise the limit`
    : `policy ${policy} already holds ${live} live sessions (limits.sessions_per_policy is ${limits.sessions_per_policy})`;
}
