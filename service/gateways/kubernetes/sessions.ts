// The session side of the Kubernetes gateway: the bearer token (the session secret) and the session
// id in the path → the live session → its grant; live requests and streams registered per session
// and closed when it is revoked or expires. (The shared session guard of the gateway core does the
// same for every gateway; this adapter keeps its interface so the gateway can move onto it.)
import type { Grant } from '../../config/schema.js';
import { secretMatches } from '../../sessions/secret.js';
import { type SessionRecord, sessionState } from '../../sessions/types.js';

export const SESSION_ID = /^ses_[a-z2-7]{1,64}$/;

export interface SessionEndedEvent {
  id: string;
  reason: 'revoked' | 'expired';
  message: string;
}

export interface SessionSource {
  getSession(id: string): Promise<SessionRecord | null>;
  now(): Date;
  sessionEvents: {
    on(ev: 'ended', fn: (e: SessionEndedEvent) => void): unknown;
    off(ev: 'ended', fn: (e: SessionEndedEvent) => void): unknown;
  };
}

export interface LiveStream {
  close(why: string): void;
}

export type SessionCheck =
  { ok: true; session: SessionRecord; grant: Grant } | { ok: false; code: 401 | 403; message: string };

export class KubernetesSessions {
  readonly #src: SessionSource;
  readonly #live = new Map<string, { streams: Set<LiveStream>; timer: NodeJS.Timeout | null }>();

  constructor(src: SessionSource) {
    this.#src = src;
    src.sessionEvents.on('ended', this.#onEnded);
  }

  readonly #onEnded = (e: SessionEndedEvent): void => {
    this.#closeAll(e.id, e.reason === 'revoked' ? 'session revoked' : 'session expired');
  };

  #closeAll(id: string, why: string): void {
    const entry = this.#live.get(id);
    if (!entry) return;
    this.#live.delete(id);
    if (entry.timer) clearTimeout(entry.timer);
    for (const s of entry.streams) s.close(why);
  }

  /** Unknown session, wrong secret and malformed id look the same: 401. */
  async check(sessionId: string, bearer: string | undefined, target: string): Promise<SessionCheck> {
    const unauthorized = { ok: false as const, code: 401 as const, message: 'Unauthorized' };
    if (!bearer) return unauthorized;
    const session = SESSION_ID.test(sessionId) ? await this.#src.getSession(sessionId) : null;
    const matches = secretMatches(bearer, session?.secret_hash ?? '0'.repeat(64));
    if (!session || !matches) return unauthorized;
    const state = sessionState(session, this.#src.now());
    if (state !== 'active')
      return {
        ok: false,
        code: 401,
        message: `hoop: session ${session.id} has ${state === 'revoked' ? 'been revoked' : 'expired'}`,
      };
    const grant = session.grants.find((g) => g.target === target);
    if (!grant)
      return {
        ok: false,
        code: 403,
        message: `hoop: session ${session.id} has no grant for target ${target}`,
      };
    return { ok: true, session, grant };
  }

  /** Register a live request or stream; the returned function unregisters it. */
  attach(session: SessionRecord, stream: LiveStream): () => void {
    let entry = this.#live.get(session.id);
    if (!entry) {
      entry = { streams: new Set(), timer: null };
      this.#live.set(session.id, entry);
      const ms = session.expires_at.getTime() - this.#src.now().getTime();
      if (ms < 2 ** 31 - 1) {
        entry.timer = setTimeout(() => this.#closeAll(session.id, 'session expired'), Math.max(0, ms));
        entry.timer.unref();
      }
    }
    entry.streams.add(stream);
    const e = entry;
    return () => {
      e.streams.delete(stream);
      if (e.streams.size === 0 && this.#live.get(session.id) === e) {
        if (e.timer) clearTimeout(e.timer);
        this.#live.delete(session.id);
      }
    };
  }

  count(sessionId?: string): number {
    if (sessionId !== undefined) return this.#live.get(sessionId)?.streams.size ?? 0;
    let n = 0;
    for (const e of this.#live.values()) n += e.streams.size;
    return n;
  }

  close(): void {
    this.#src.sessionEvents.off('ended', this.#onEnded);
    for (const id of [...this.#live.keys()]) this.#closeAll(id, 'broker shutting down');
  }
}
