// Errors a Store throws for states a caller can meet in normal operation (races with revocation),
// as opposed to programmer errors (TypeError/RangeError) and database failures (driver errors).

/** appendEvents on a session id the store does not know. */
export class UnknownSessionError extends Error {
  override readonly name = 'UnknownSessionError';
  constructor(readonly sessionId: string) {
    super(`unknown session ${sessionId}`);
  }
}

/**
 * appendEvents after endSession: the transcript already ends with its final event (session.revoked /
 * session.expired), so nothing is appended. A gateway seeing this should close the connection.
 */
export class SessionEndedError extends Error {
  override readonly name = 'SessionEndedError';
  constructor(readonly sessionId: string) {
    super(`session ${sessionId} has ended; its transcript is closed`);
  }
}

/** Any call after close(). */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';
  constructor() {
    super('store is closed');
  }
}
