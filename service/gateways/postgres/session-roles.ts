// Per-session upstream roles (target option session_roles). Every session through the broker would
// otherwise run as the target's one role, and PostgreSQL shows a role its own other backends' statement
// text, so jobs could read each other's literals in pg_stat_activity. With session_roles, the broker
// creates for each session, at its first connection to the target:
//
//   CREATE ROLE <prefix><session id> LOGIN PASSWORD '<SCRAM verifier>' VALID UNTIL <expiry>
//     CONNECTION LIMIT <max connections per session> IN ROLE <member_of>;
//   ALTER ROLE … SET role = <member_of>;     the session acts as member_of: its objects belong to it
//   GRANT … TO CURRENT_USER;                 so the broker may end the role's backends
//
// so other sessions' backends show "<insufficient privilege>", the database's own logs and
// pg_stat_activity name the job's session, and a connection that outlived the broker dies with the
// session: at revocation or expiry the broker terminates the role's backends, reassigns and drops what
// it owns, and drops it; VALID UNTIL refuses new logins even if that never happens; and after a crash,
// the next start (and a sweep every minute) drops the roles of sessions that ended or are unknown.
// The password is random per session and never leaves the broker; only its SCRAM verifier is sent.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { SessionRecord } from '../../sessions/types.js';
import { makeScramVerifier } from '../../sessions/secret.js';
import { SESSION_ID } from '../session-guard.js';
import { SideConnection } from './catalog/side-connection.js';
import type { GatewayTarget } from './deps.js';

export interface SessionCredentials {
  user: string;
  password: string;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

export class SessionRoles {
  private readonly admin: SideConnection;
  private readonly created = new Map<string, Promise<SessionCredentials>>();
  private readonly memberOf: string;
  readonly prefix: string;

  constructor(
    private readonly gt: GatewayTarget,
    private readonly logger: Logger,
    timeoutMs: number,
  ) {
    const cfg = gt.target.session_roles!;
    this.memberOf = cfg.member_of;
    this.prefix = cfg.prefix ?? 'hoop_';
    this.admin = new SideConnection(gt, timeoutMs, [
      ['application_name', 'hoop-broker session roles'],
      ['client_encoding', 'UTF8'],
      ['options', '-c statement_timeout=10000 -c lock_timeout=2000'],
    ]);
  }

  roleName(sessionId: string): string {
    return `${this.prefix}${sessionId}`;
  }

  /**
   * The session's role on this target, created on first use (once per session, shared by its
   * connections). `renew`: the password this broker knows was refused (another replica, or this one
   * before a restart, set its own): set a new one. Connections already open are not affected.
   */
  credentialsFor(session: SessionRecord, maxConnections: number, renew = false): Promise<SessionCredentials> {
    if (renew) this.created.delete(session.id);
    let p = this.created.get(session.id);
    if (!p) {
      p = this.create(session, maxConnections);
      this.created.set(session.id, p);
      p.catch(() => this.created.delete(session.id));
    }
    return p;
  }

  private async create(session: SessionRecord, maxConnections: number): Promise<SessionCredentials> {
    if (!SESSION_ID.test(session.id)) throw new Error('unexpected session id');
    const role = this.roleName(session.id);
    const password = randomBytes(32).toString('base64url');
    const who = [session.identity.repository, session.identity.run_id].filter((x) => typeof x === 'string');
    const verifier = literal(makeScramVerifier(password));
    const until = literal(session.expires_at.toISOString());
    const exists = await this.admin.query(
      `SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${literal(role)}`,
    );
    if (exists.length > 0) {
      await this.admin.query(`ALTER ROLE ${ident(role)} PASSWORD ${verifier} VALID UNTIL ${until}`);
      this.logger.info({ session_id: session.id, role }, 'pg session role: new password');
      return { user: role, password };
    }
    await this.admin.query(
      [
        `CREATE ROLE ${ident(role)} LOGIN PASSWORD ${verifier} VALID UNTIL ${until} CONNECTION LIMIT ${maxConnections} IN ROLE ${ident(this.memberOf)}`,
        `ALTER ROLE ${ident(role)} SET role = ${literal(this.memberOf)}`,
        `GRANT ${ident(role)} TO CURRENT_USER`,
        `COMMENT ON ROLE ${ident(role)} IS ${literal(`hoop session ${session.id}${who.length ? ` (${who.join(', run ')})` : ''}, until ${session.expires_at.toISOString()}`)}`,
      ].join(';\n'),
    );
    this.logger.info({ session_id: session.id, role }, 'pg session role created');
    return { user: role, password };
  }

  /** End the session's role: its backends terminated, what it owns handed to member_of, the role dropped. */
  async drop(sessionId: string): Promise<void> {
    if (!SESSION_ID.test(sessionId)) return;
    const pending = this.created.get(sessionId);
    this.created.delete(sessionId);
    if (pending) await pending.catch(() => {});
    const role = this.roleName(sessionId);
    const exists = await this.admin.query(
      `SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${literal(role)}`,
    );
    if (exists.length === 0) return;
    await this.admin.query(
      [
        `SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = ${literal(role)}`,
        `REASSIGN OWNED BY ${ident(role)} TO ${ident(this.memberOf)}`,
        `DROP OWNED BY ${ident(role)}`,
        `DROP ROLE ${ident(role)}`,
      ].join(';\n'),
    );
    this.logger.info({ session_id: sessionId, role }, 'pg session role dropped');
  }

  /** Roles of this prefix whose session `isLive` does not vouch for (ended, expired, unknown): dropped. */
  async sweep(isLive: (sessionId: string) => Promise<boolean>): Promise<number> {
    // (the prefix is [a-z0-9_]: nothing in it means anything to a regular expression)
    const rows = await this.admin.query(
      `SELECT rolname FROM pg_catalog.pg_roles WHERE rolname ~ ${literal(`^${this.prefix}ses_[a-z2-7]+$`)}`,
    );
    let dropped = 0;
    for (const [name] of rows) {
      const id = name?.slice(this.prefix.length) ?? '';
      if (!SESSION_ID.test(id) || (await isLive(id))) continue;
      try {
        await this.drop(id);
        dropped++;
      } catch (err) {
        this.logger.warn(
          { err: err instanceof Error ? err.message : String(err), role: name },
          'pg session role could not be dropped',
        );
      }
    }
    return dropped;
  }

  close(): void {
    this.admin.close();
  }
}
