// The session side of every gateway: a presented credential → the live session → its grant for the
// target; then the connection is registered under its session, and ends when the session does
// (revocation, expiry, broker shutdown). One implementation for all gateways: a gateway keeps only its
// protocol's way of saying why (pg: FATAL 57P01 with the message given here).
import type { Grant } from '../config/schema.js';
import { secretMatches } from '../sessions/secret.js';
import { type SessionRecord, sessionState } from '../sessions/types.js';

/** What a session id looks like (sessions/secret.ts newSessionId): anything else is not looked up. */
export const SESSION_ID = /^ses_[a-z2-7]{1,64}$/;

/** setTimeout's ceiling (~24.8 days); longer expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A session ended (SessionService's 'ended' event). */
export interface SessionEnded {
  id: string;
  reason: 'revoked' | 'expired';
  message: string;
}

/** Why a live connection is being closed, in words any protocol can pass on. */
export interface ConnectionEnd {
  reason: 'revoked' | 'expired' | 'shutdown';
  /** for the client, e.g. "hoop: session ses_… has expired" */
  message: string;
  /** for the transcript's connection-closed event, e.g. "session expired" */
  why: string;
}

/** Anything a gateway keeps open for a session: a PostgreSQL connection, an ssh channel, a watch. */
export interface LiveConnection {
  close(end: ConnectionEnd): void;
}

export interface SessionGuardDeps {
  getSession(id: string): Promise<SessionRecord | null>;
  now(): Date;
  /** 'ended' fires with {id, reason, message} when a session is revoked or expires */
  sessionEvents: {
    on(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
    off(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
  };
}

/** The outcome of authorize(): a grant, or why not (a gateway words each in its protocol). */
export type Authorization =
  | { ok: true; session: SessionRecord; grant: Grant }
  | { ok: false; refusal: 'revoked' | 'expired' | 'unknown-target' | 'not-granted'; session: SessionRecord };

/** A registered connection; detach() when it closes (idempotent). */
export interface Attachment {
  detach(): void;
}

interface SessionEntry {
  expiresAt: Date;
  /** each live connection, with the target it reaches */
  connections: Map<LiveConnection, string>;
  timer: NodeJS.Timeout | null;
}

export class SessionGuard {
  readonly #deps: SessionGuardDeps;
  readonly #sessions = new Map<string, SessionEntry>();
  #closed = false;

  constructor(deps: SessionGuardDeps) {
    this.#deps = deps;
    deps.sessionEvents.on('ended', this.#onEnded);
  }

  /** The session a credential names, or null (malformed id, unknown). Its state is checked by authorize. */
  async lookup(id: string): Promise<SessionRecord | null> {
    if (!SESSION_ID.test(id)) return null;
    return this.#deps.getSession(id);
  }

  /**
   * The session whose id and secret these are, or null; unknown session and wrong secret cost the same
   * comparison (for gateways whose protocol carries the secret itself: ssh password, bearer token).
   */
  async authenticateSecret(id: string, secret: string): Promise<SessionRecord | null> {
    const session = await this.lookup(id);
    const matches = secretMatches(secret, session?.secret_hash ?? '0'.repeat(64));
    return session && matches ? session : null;
  }

  /**
   * After the credential is proven: is the session still live, does the gateway serve the target, and
   * does the session hold a grant for it? In that order (a dead session says only that).
   */
  authorize(session: SessionRecord, targetName: string, targetKnown: boolean): Authorization {
    const state = sessionState(session, this.#deps.now());
    if (state !== 'active') return { ok: false, refusal: state, session };
    if (!targetKnown) return { ok: false, refusal: 'unknown-target', session };
    const grant = session.grants.find((g) => g.target === targetName);
    if (!grant) return { ok: false, refusal: 'not-granted', session };
    return { ok: true, session, grant };
  }

  /**
   * Register a live connection of `session` to `target`, to be closed when the session ends; null when
   * the session already has `max` connections to that target.
   */
  attach(
    session: SessionRecord,
    target: string,
    conn: LiveConnection,
    max: number | undefined,
  ): Attachment | null {
    let entry = this.#sessions.get(session.id);
    if (!entry) {
      entry = { expiresAt: session.expires_at, connections: new Map(), timer: null };
      this.#sessions.set(session.id, entry);
      if (!this.#closed) this.#armExpiry(session.id, entry);
    }
    if (max !== undefined) {
      let same = 0;
      for (const t of entry.connections.values()) if (t === target) same++;
      if (same >= max) {
        this.#forgetIfIdle(session.id, entry);
        return null;
      }
    }
    entry.connections.set(conn, target);
    const id = session.id;
    let attached = true;
    return {
      detach: () => {
        if (!attached) return;
        attached = false;
        const e = this.#sessions.get(id);
        if (!e) return;
        e.connections.delete(conn);
        this.#forgetIfIdle(id, e);
      },
    };
  }

  /** Live connections registered under a session (all sessions without an id). */
  connectionCount(sessionId?: string): number {
    if (sessionId !== undefined) return this.#sessions.get(sessionId)?.connections.size ?? 0;
    let n = 0;
    for (const e of this.#sessions.values()) n += e.connections.size;
    return n;
  }

  /** Close every registered connection (broker shutdown), stop the timers and the subscription. */
  close(end: ConnectionEnd): void {
    this.#closed = true;
    this.#deps.sessionEvents.off('ended', this.#onEnded);
    for (const entry of this.#sessions.values()) if (entry.timer) clearTimeout(entry.timer);
    const all = [...this.#sessions.values()].flatMap((e) => [...e.connections.keys()]);
    this.#sessions.clear();
    for (const conn of all) conn.close(end);
  }

  #onEnded = (e: SessionEnded): void => {
    const message =
      e.message || `hoop: session ${e.id} was ${e.reason === 'revoked' ? 'revoked' : 'expired'}`;
    this.#end(e.id, { reason: e.reason, message, why: `session ${e.reason}` });
  };

  #end(id: string, end: ConnectionEnd): void {
    const entry = this.#sessions.get(id);
    if (!entry) return;
    for (const conn of [...entry.connections.keys()]) conn.close(end);
  }

  #armExpiry(id: string, entry: SessionEntry): void {
    if (entry.timer) clearTimeout(entry.timer);
    const delay = entry.expiresAt.getTime() - this.#deps.now().getTime();
    entry.timer = setTimeout(
      () => {
        entry.timer = null;
        if (entry.expiresAt.getTime() <= this.#deps.now().getTime())
          this.#end(id, {
            reason: 'expired',
            message: `hoop: session ${id} has expired`,
            why: 'session expired',
          });
        else this.#armExpiry(id, entry);
      },
      Math.max(0, Math.min(delay, MAX_TIMER_MS)),
    );
    entry.timer.unref();
  }

  #forgetIfIdle(id: string, entry: SessionEntry): void {
    if (entry.connections.size > 0) return;
    if (entry.timer) clearTimeout(entry.timer);
    this.#sessions.delete(id);
  }
}
