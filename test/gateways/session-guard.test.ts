import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConnectionEnd,
  type LiveConnection,
  type SessionEnded,
  SessionGuard,
} from '../../service/gateways/session-guard.js';
import { hashSecret } from '../../service/sessions/secret.js';
import type { SessionRecord } from '../../service/sessions/types.js';

const ID = 'ses_abcdefgh';
const SECRET = 'hoop_the-secret';

function session(over: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    id: ID,
    secret_hash: hashSecret(SECRET),
    scram_verifier: '',
    issuer: 'github',
    identity: {},
    claims: {},
    policy: 'p',
    grants: [{ target: 'db', access: 'read' }],
    ssh_public_key: null,
    created_at: new Date(now),
    expires_at: new Date(now + 60_000),
    ended_at: null,
    end_reason: null,
    ...over,
  };
}

class Conn implements LiveConnection {
  ends: ConnectionEnd[] = [];
  close(end: ConnectionEnd): void {
    this.ends.push(end);
  }
}

const guards: SessionGuard[] = [];
function guardFor(s: SessionRecord | null, events = new EventEmitter<{ ended: [SessionEnded] }>()) {
  const guard = new SessionGuard({
    getSession: async (id) => (s && id === s.id ? s : null),
    now: () => new Date(),
    sessionEvents: events,
  });
  guards.push(guard);
  return { guard, events };
}
const shutdown: ConnectionEnd = { reason: 'shutdown', message: 'bye', why: 'broker shutdown' };
afterEach(() => {
  for (const g of guards.splice(0)) g.close(shutdown);
});

describe('SessionGuard', () => {
  it('looks up only well-formed session ids, and checks secrets in constant time', async () => {
    const { guard } = guardFor(session());
    expect(await guard.lookup('postgres')).toBeNull();
    expect((await guard.lookup(ID))?.id).toBe(ID);
    expect((await guard.authenticateSecret(ID, SECRET))?.id).toBe(ID);
    expect(await guard.authenticateSecret(ID, 'hoop_wrong')).toBeNull();
    expect(await guard.authenticateSecret('ses_unknown', SECRET)).toBeNull();
  });

  it('authorizes in order: live session, known target, granted target', () => {
    const { guard } = guardFor(null);
    expect(
      guard.authorize(session({ ended_at: new Date(), end_reason: 'revoked' }), 'db', true),
    ).toMatchObject({
      ok: false,
      refusal: 'revoked',
    });
    expect(guard.authorize(session({ expires_at: new Date(Date.now() - 1) }), 'nope', false)).toMatchObject({
      ok: false,
      refusal: 'expired',
    });
    expect(guard.authorize(session(), 'nope', false)).toMatchObject({ ok: false, refusal: 'unknown-target' });
    expect(guard.authorize(session(), 'other', true)).toMatchObject({ ok: false, refusal: 'not-granted' });
    expect(guard.authorize(session(), 'db', true)).toMatchObject({
      ok: true,
      grant: { target: 'db', access: 'read' },
    });
  });

  it('caps connections per session and target, and forgets detached ones', () => {
    const { guard } = guardFor(null);
    const s = session();
    const a = guard.attach(s, 'db', new Conn(), 2);
    const b = guard.attach(s, 'db', new Conn(), 2);
    expect(a && b).toBeTruthy();
    expect(guard.attach(s, 'db', new Conn(), 2)).toBeNull();
    expect(guard.attach(s, 'other', new Conn(), 2)).not.toBeNull();
    expect(guard.connectionCount(ID)).toBe(3);
    a!.detach();
    a!.detach();
    expect(guard.connectionCount(ID)).toBe(2);
    expect(guard.attach(s, 'db', new Conn(), 2)).not.toBeNull();
  });

  it("closes a session's connections when it is revoked, with the service's message", () => {
    const { guard, events } = guardFor(null);
    const c1 = new Conn();
    const c2 = new Conn();
    guard.attach(session(), 'db', c1, undefined);
    guard.attach(session({ id: 'ses_other' }), 'db', c2, undefined);
    events.emit('ended', { id: ID, reason: 'revoked', message: `session ${ID} was revoked` });
    expect(c1.ends).toEqual([
      { reason: 'revoked', message: `session ${ID} was revoked`, why: 'session revoked' },
    ]);
    expect(c2.ends).toEqual([]);
    events.emit('ended', { id: 'ses_other', reason: 'expired', message: '' });
    expect(c2.ends).toEqual([
      { reason: 'expired', message: 'hoop: session ses_other was expired', why: 'session expired' },
    ]);
  });

  it('closes connections at expiry on its own timer', async () => {
    const { guard } = guardFor(null);
    const c = new Conn();
    guard.attach(session({ expires_at: new Date(Date.now() + 30) }), 'db', c, undefined);
    await new Promise((r) => setTimeout(r, 80));
    expect(c.ends).toEqual([
      { reason: 'expired', message: `hoop: session ${ID} has expired`, why: 'session expired' },
    ]);
  });

  it('closes everything on shutdown and stops listening', () => {
    const { guard, events } = guardFor(null);
    const c = new Conn();
    guard.attach(session(), 'db', c, undefined);
    guard.close(shutdown);
    expect(c.ends).toEqual([shutdown]);
    expect(events.listenerCount('ended')).toBe(0);
  });
});
