// One interface for every way a client proves its session secret. The connection drives it: send
// `start()`, then feed each PasswordMessage-family body to `respond()` until it is done or failed.

export type AuthStep =
  /** send this and wait for the client's next 'p' message */
  | { kind: 'continue'; message: Buffer }
  /** proven; `final` (e.g. AuthenticationSASLFinal) goes out before the broker's post-auth checks */
  | { kind: 'proven'; final?: Buffer }
  /** not proven: the reason is for the broker's log only; the client gets the same 28P01 either way */
  | { kind: 'failed'; reason: string }
  /** the client broke the exchange's rules (malformed message, channel-binding mismatch) */
  | { kind: 'invalid'; message: string };

export interface AuthMethod {
  readonly name: string;
  /** the first Authentication request to send */
  start(): Buffer;
  respond(body: Buffer): AuthStep;
}
