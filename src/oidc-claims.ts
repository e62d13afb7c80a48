// The job's own OIDC claims, for explaining a denial. Decoded WITHOUT verification: they are only shown
// to the job that holds the token. Only the payload is read; the signature (what makes the token a
// credential) is never printed.

export type ClaimLines = Array<{ name: string; value: string }>;

export function decodeJwtClaims(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as unknown;
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload)
      ? (payload as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

const TIME_CLAIMS = new Set(['exp', 'iat', 'nbf']);

/** Claims as sorted display lines; times also as ISO dates, long values cut. */
export function claimLines(claims: Record<string, unknown>): ClaimLines {
  return Object.keys(claims)
    .sort()
    .map((name) => {
      const v = claims[name];
      let value = typeof v === 'string' ? v : (JSON.stringify(v) ?? 'null');
      if (TIME_CLAIMS.has(name) && typeof v === 'number')
        value = `${v} (${new Date(v * 1000).toISOString()})`;
      return { name, value: value.length > 300 ? `${value.slice(0, 299)}…` : value };
    });
}
