// What main hands to post through core.saveState (the runner carries it as STATE_* variables; it is
// not logged). The secret travels under its own key so the rest can be parsed without touching it.
import type { SessionTarget } from '../service/api/schemas.js';

export const STATE_SESSION = 'session';
export const STATE_SECRET = 'secret';

export interface SavedSession {
  brokerUrl: string;
  /** the ca-cert input (PEM) so post trusts the same broker */
  caCertPem: string | null;
  /** this session's private files (key, kubeconfig, CA); post deletes it */
  dir: string | null;
  id: string;
  expiresAt: string;
  policy: string;
  identity: Record<string, unknown>;
  targets: Array<{ name: string; kind: string; access: SessionTarget['access'] }>;
}

export function encodeSavedSession(s: SavedSession): string {
  return JSON.stringify(s);
}

export function decodeSavedSession(raw: string): SavedSession | null {
  if (raw === '') return null;
  try {
    const v = JSON.parse(raw) as Partial<SavedSession>;
    if (typeof v.brokerUrl !== 'string' || typeof v.id !== 'string' || typeof v.expiresAt !== 'string')
      return null;
    return {
      brokerUrl: v.brokerUrl,
      caCertPem: typeof v.caCertPem === 'string' ? v.caCertPem : null,
      dir: typeof v.dir === 'string' ? v.dir : null,
      id: v.id,
      expiresAt: v.expiresAt,
      policy: typeof v.policy === 'string' ? v.policy : '',
      identity: typeof v.identity === 'object' && v.identity !== null ? v.identity : {},
      targets: Array.isArray(v.targets) ? v.targets : [],
    };
  } catch {
    return null;
  }
}
