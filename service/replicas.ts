// Several broker replicas on one PostgreSQL store (store.url). This module makes what one replica
// decides reach the others:
// - revocation: a session ended on any replica (endSession NOTIFYs hoop_session_ended in its
//   transaction) is announced on this replica's session events, so the session guard closes the
//   connections it holds here within a notification's latency; a sweep of recently ended sessions is
//   the backstop for a missed notification (a LISTEN connection that dropped).
// - crash gaps: every replica heartbeats; each gateway connection is noted while open; the connections
//   of a replica whose heartbeat stopped are claimed by one live replica, which appends
//   `<gateway>.connection.lost` with the connection's last recorded seq to the session's transcript.
import pg from 'pg';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { BrokerEvent, NewEvent } from './audit/event.js';
import type { SessionEnded } from './gateways/session-guard.js';
import { SessionEndedError, UnknownSessionError } from './store/errors.js';
import type { Store } from './store/store.js';

export interface ReplicaOptions {
  store: Store;
  replica: string;
  logger: Logger;
  /** the session service's events: 'ended' is listened to (seen here) and emitted (seen elsewhere) */
  events: {
    on(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
    off(ev: 'ended', fn: (e: SessionEnded) => void): unknown;
    emit(ev: 'ended', e: SessionEnded): unknown;
  };
  /** appends an event to a transcript, durably (the broker's recorder) */
  record(sessionId: string, event: NewEvent): Promise<unknown>;
  /** store.url: LISTEN for other replicas' revocations (absent: the embedded store, one process) */
  listenUrl?: string | undefined;
  heartbeatMs?: number;
  /** a replica silent this long is dead (default 3 heartbeats) */
  staleMs?: number;
  /** the revocation backstop's period (default 2 s) */
  sweepMs?: number;
  registry?: Registry;
  /** an approval changed on some replica (NOTIFY hoop_approval_changed): the approvals service reads it again */
  onApprovalChanged?: (id: string) => void;
}

const CHANNEL = 'hoop_session_ended';
const APPROVALS_CHANNEL = 'hoop_approval_changed';

export class ReplicaCoordinator {
  readonly #o: ReplicaOptions;
  readonly #heartbeatMs: number;
  readonly #staleMs: number;
  readonly #sweepMs: number;
  readonly #timers: NodeJS.Timeout[] = [];
  /** sessions whose end this replica has announced (or heard of): each is announced once */
  readonly #ended = new Map<string, number>();
  #listener: pg.Client | null = null;
  #closed = false;
  #sweptUntil: Date;
  readonly #lost: Counter | null;
  readonly #remoteEnds: Counter<'via'> | null;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(opts: ReplicaOptions) {
    this.#o = opts;
    this.#heartbeatMs = opts.heartbeatMs ?? 5000;
    this.#staleMs = opts.staleMs ?? 3 * this.#heartbeatMs;
    this.#sweepMs = opts.sweepMs ?? 2000;
    this.#sweptUntil = new Date(Date.now() - 5000);
    const registers = opts.registry ? [opts.registry] : [];
    this.#lost = opts.registry
      ? new Counter({
          name: 'hoop_connections_lost_total',
          help: 'Connections marked lost because the replica holding them died',
          registers,
        })
      : null;
    this.#remoteEnds = opts.registry
      ? new Counter({
          name: 'hoop_remote_session_ends_total',
          help: 'Sessions ended on another replica and closed here, by how this replica heard (notify, sweep)',
          labelNames: ['via'],
          registers,
        })
      : null;
    opts.events.on('ended', this.#onLocalEnd);
  }

  async start(): Promise<void> {
    await this.#o.store.heartbeat(this.#o.replica, new Date());
    const every = (ms: number, fn: () => Promise<unknown>) => {
      let running = false;
      const t = setInterval(() => {
        if (running || this.#closed) return;
        running = true;
        const p = fn()
          .catch((err: unknown) => this.#o.logger.warn({ err }, 'replica task failed'))
          .finally(() => {
            running = false;
            this.#pending.delete(p);
          });
        this.#pending.add(p);
      }, ms);
      t.unref();
      this.#timers.push(t);
    };
    every(this.#heartbeatMs, () => this.#o.store.heartbeat(this.#o.replica, new Date()));
    every(this.#heartbeatMs, () => this.sweepLost());
    every(this.#sweepMs, () => this.sweepEnded());
    if (this.#o.listenUrl) await this.#listen(this.#o.listenUrl);
  }

  /** Note a gateway connection opening or closing (the broker passes every gateway event through here). */
  track(sessionId: string, event: BrokerEvent | NewEvent): void {
    const m = /^([a-z0-9]+)\.connection\.(opened|closed)$/.exec(event.kind);
    const connId = (event.operation as { conn_id?: unknown }).conn_id;
    if (!m || typeof connId !== 'string') return;
    const p = (
      m[2] === 'opened'
        ? this.#o.store.addLiveConnection({
            conn_id: connId,
            session_id: sessionId,
            replica: this.#o.replica,
            target: event.target,
            opened_at: new Date(),
          })
        : this.#o.store.removeLiveConnection(connId)
    ).catch((err: unknown) =>
      this.#o.logger.warn({ err, conn_id: connId }, 'could not note a live connection'),
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** Mark the connections of dead replicas lost, in their transcripts. */
  async sweepLost(now = new Date()): Promise<number> {
    const { store } = this.#o;
    await store.pruneReplicas(new Date(now.getTime() - 10 * this.#staleMs));
    const lost = await store.claimLostConnections(
      new Date(now.getTime() - this.#staleMs),
      this.#o.replica,
      100,
    );
    for (const c of lost) {
      const events = await store.listEvents(c.session_id);
      const mine = events.filter((e) => (e.operation as { conn_id?: unknown }).conn_id === c.conn_id);
      const last = mine.at(-1);
      const gateway = /^([a-z0-9]+)\./.exec(last?.kind ?? 'pg.')?.[1] ?? 'pg';
      const lastSeq = last?.seq ?? 0;
      try {
        await this.#o.record(c.session_id, {
          target: c.target,
          kind: `${gateway}.connection.lost`,
          operation: {
            conn_id: c.conn_id,
            last_seq: lastSeq,
            opened_at: new Date(c.opened_at).toISOString(),
            replica: c.replica,
          },
          decision: 'info',
          reasons: [
            `replica ${c.replica} stopped with this connection open; events after seq ${lastSeq} of this connection may be missing`,
          ],
        });
        this.#lost?.inc();
        this.#o.logger.warn(
          { session_id: c.session_id, conn_id: c.conn_id, replica: c.replica, last_seq: lastSeq },
          'connection lost with its replica: marked in the transcript',
        );
      } catch (err) {
        // the session ended meanwhile: its transcript is final, the gap stays in the log
        if (err instanceof SessionEndedError || err instanceof UnknownSessionError)
          this.#o.logger.warn(
            { session_id: c.session_id, conn_id: c.conn_id, replica: c.replica, last_seq: lastSeq },
            'connection lost with its replica after its session ended: not marked in the transcript',
          );
        else throw err;
      }
    }
    return lost.length;
  }

  /** Announce sessions other replicas ended since the last look (the backstop for missed notifications). */
  async sweepEnded(): Promise<number> {
    const since = new Date(this.#sweptUntil.getTime() - 2000); // overlap: clocks and commit order
    const now = new Date();
    const rows = await this.#o.store.listEndedSince(since);
    this.#sweptUntil = now;
    let n = 0;
    for (const r of rows) if (this.#announce(r.id, r.end_reason, 'sweep')) n++;
    // forget old announcements
    const cutoff = Date.now() - 60_000;
    for (const [id, at] of this.#ended) if (at < cutoff) this.#ended.delete(id);
    return n;
  }

  #onLocalEnd = (e: SessionEnded): void => {
    this.#ended.set(e.id, Date.now());
  };

  /** Tell this replica's gateways (through the session events) that a session ended elsewhere. */
  #announce(id: string, reason: string, via: 'notify' | 'sweep'): boolean {
    if (this.#ended.has(id) || this.#closed) return false;
    this.#ended.set(id, Date.now());
    const r = reason === 'expired' ? 'expired' : 'revoked';
    this.#remoteEnds?.inc({ via });
    this.#o.events.emit('ended', {
      id,
      reason: r,
      message: `hoop: session ${id} was ${r === 'revoked' ? 'revoked' : 'expired'}`,
    });
    return true;
  }

  async #listen(url: string): Promise<void> {
    const connect = async (): Promise<void> => {
      const client = new pg.Client({ connectionString: url, application_name: 'hoop-broker listen' });
      client.on('notification', (msg) => {
        if (msg.channel === APPROVALS_CHANNEL && msg.payload) {
          this.#o.onApprovalChanged?.(msg.payload);
          return;
        }
        if (msg.channel !== CHANNEL || !msg.payload) return;
        try {
          const { id, reason } = JSON.parse(msg.payload) as { id: string; reason: string };
          this.#announce(id, reason, 'notify');
        } catch {
          /* not ours */
        }
      });
      const retry = () => {
        if (this.#closed) return;
        this.#listener = null;
        const t = setTimeout(() => {
          connect()
            .then(() => this.sweepEnded())
            .catch(() => retry());
        }, 1000);
        t.unref();
      };
      client.on('error', (err) => {
        this.#o.logger.warn({ err: err.message }, 'revocation LISTEN connection failed; reconnecting');
        client.end().catch(() => undefined);
        retry();
      });
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      if (this.#o.onApprovalChanged) await client.query(`LISTEN ${APPROVALS_CHANNEL}`);
      if (this.#closed) {
        await client.end();
        return;
      }
      this.#listener = client;
    };
    await connect();
  }

  /** Leave cleanly: stop the timers and the LISTEN, remove this replica's row. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#o.events.off('ended', this.#onLocalEnd);
    for (const t of this.#timers) clearInterval(t);
    await Promise.allSettled([...this.#pending]);
    await this.#listener?.end().catch(() => undefined);
    this.#listener = null;
    await this.#o.store.removeReplica(this.#o.replica).catch(() => undefined);
  }
}
