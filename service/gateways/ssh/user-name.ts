// The ssh user name the broker expects: `<session id>+<target>`. It names the session (whose
// registered public key must sign) and the target (the session's grant for it), and is what the
// session's connection settings tell the action to write as `User` in the ssh config.

const SEPARATOR = '+';
const SESSION = /^ses_[a-z2-7]{1,64}$/;
const TARGET = /^[a-z0-9][a-z0-9_-]*$/;

export function sshUserName(sessionId: string, target: string): string {
  return `${sessionId}${SEPARATOR}${target}`;
}

/** The session and target a user name names, or null when it is not of that form. */
export function parseSshUserName(user: string): { sessionId: string; target: string } | null {
  if (user.length > 300) return null;
  const at = user.indexOf(SEPARATOR);
  if (at < 0) return null;
  const sessionId = user.slice(0, at);
  const target = user.slice(at + 1);
  return SESSION.test(sessionId) && TARGET.test(target) ? { sessionId, target } : null;
}
