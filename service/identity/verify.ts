// OIDC token verification against the configured issuers. Each token is verified once, at exchange;
// results are never cached (the single-use record is the sessions module's job, keyed by tokenKey).
//
// Order of checks, cheapest and most telling first, so junk never reaches the network:
//   size → structure → header (alg, crit) → iss (selects the issuer) → alg allow-list of that issuer
//   → aud, exp, nbf, iat (all failures reported together) → signature with that issuer's keys only
//   (jose jwtVerify, which re-checks alg, iss, aud and the times as a second line).
import { createHash } from 'node:crypto';
import { type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from 'jose';
import type { Reason } from '../reasons.js';
import { parseDuration } from '../config/duration.js';
import type { Issuer } from '../config/schema.js';
import type { Claims } from './claims.js';
import { decodeCompactJwt, displayValue } from './compact-jwt.js';
import {
  IssuerKeys,
  type IssuerKeysOptions,
  IssuerKeysUnavailable,
  UnknownSigningKey,
} from './issuer-keys.js';

/** Why a token was not verified, as a domain outcome (api/ maps it to an HTTP status). */
export type VerifyFailure = 'invalid' | 'unavailable';

export type VerifyResult =
  | {
      ok: true;
      /** the config name of the issuer that signed */
      issuer: string;
      claims: Claims;
      /** `${iss}#jti:${jti}`, or `${iss}#sha256:${hex}` of the raw token when it has no usable jti */
      tokenKey: string;
      expiresAt: Date;
    }
  | {
      ok: false;
      /** invalid: the token is refused; unavailable: the issuer's keys could not be fetched, the token is unproven (the routes answer 401 / 503) */
      failure: VerifyFailure;
      error: string;
      reasons: Reason[];
    };

export type VerifiedToken = Extract<VerifyResult, { ok: true }>;

export interface IssuerRegistryOptions extends Partial<IssuerKeysOptions> {
  /** default 16384 (config limits.max_token_bytes) */
  maxTokenBytes?: number;
  /** allowance for exp/nbf/iat, default 30 s (config limits.clock_skew) */
  clockSkewMs?: number;
  /** the same allowance in seconds; clockSkewMs wins when both are given */
  clockSkewSeconds?: number;
}

/** The config parts the registry reads; `limits` may be the raw (clock_skew text) or resolved (ms) form. */
export interface IdentityConfig {
  issuers: readonly Issuer[];
  limits?:
    | {
        max_token_bytes?: number | undefined;
        clock_skew?: string | undefined;
        clock_skew_ms?: number | undefined;
      }
    | undefined;
}

export const DEFAULT_MAX_TOKEN_BYTES = 16_384;
export const DEFAULT_CLOCK_SKEW_MS = 30_000;
export const DEFAULT_ALGORITHMS = ['RS256'] as const;
/** Asymmetric signature families only: `none` and HMAC (HS*) can never verify an issuer's token. */
const ASYMMETRIC_ALG = /^(RS|PS|ES)(256|384|512)$/;
const MAX_JTI_CHARS = 256;

const INVALID = 'invalid OIDC token';
const UNAVAILABLE = 'cannot verify the OIDC token now';

interface ConfiguredIssuer {
  config: Issuer;
  algorithms: readonly string[];
  keys: IssuerKeys;
}

export class IssuerRegistry {
  readonly #issuers: ConfiguredIssuer[];
  readonly #maxTokenBytes: number;
  readonly #clockSkewSec: number;

  constructor(issuers: readonly Issuer[], options: IssuerRegistryOptions = {}) {
    const keyOptions: IssuerKeysOptions = {
      refreshCooldownMs: options.refreshCooldownMs ?? 60_000,
      cacheMaxAgeMs: options.cacheMaxAgeMs ?? 10 * 60_000,
      staleIfErrorMs: options.staleIfErrorMs ?? 60 * 60_000,
      retryAfterFailureMs: options.retryAfterFailureMs ?? 5_000,
      fetchTimeoutMs: options.fetchTimeoutMs ?? 5_000,
      maxDocumentBytes: options.maxDocumentBytes ?? 1_048_576,
      clock: options.clock ?? Date.now,
    };
    this.#issuers = issuers.map((config) => ({
      config,
      algorithms: config.algorithms ?? DEFAULT_ALGORITHMS,
      keys: new IssuerKeys(config, keyOptions),
    }));
    this.#maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
    const skewMs =
      options.clockSkewMs ??
      (options.clockSkewSeconds !== undefined ? options.clockSkewSeconds * 1000 : DEFAULT_CLOCK_SKEW_MS);
    // jose compares whole seconds; round the allowance up so a configured skew is never shortened.
    this.#clockSkewSec = Math.max(0, Math.ceil(skewMs / 1000));
  }

  /** The registry for a validated config (issuers, limits.max_token_bytes, limits.clock_skew[_ms]). */
  static fromConfig(config: IdentityConfig, options: IssuerRegistryOptions = {}): IssuerRegistry {
    const limits = config.limits;
    const skew = limits?.clock_skew_ms ?? (limits?.clock_skew ? parseDuration(limits.clock_skew) : null);
    return new IssuerRegistry(config.issuers, {
      ...options,
      ...(limits?.max_token_bytes ? { maxTokenBytes: limits.max_token_bytes } : {}),
      ...(skew !== null && skew !== undefined ? { clockSkewMs: skew } : {}),
    });
  }

  /** Config names of the issuers, in config order. */
  get issuerNames(): string[] {
    return this.#issuers.map((i) => i.config.name);
  }

  async verifyToken(raw: string, now: Date): Promise<VerifyResult> {
    const decoded = decodeCompactJwt(raw, this.#maxTokenBytes);
    if (!decoded.ok) return refused(decoded.reasons);
    const { header, payload, signatureBytes } = decoded.jwt;

    const alg = header.alg;
    if (typeof alg !== 'string') return refused([{ message: 'the JWT header has no "alg"' }]);
    if (alg.toLowerCase() === 'none') {
      return refused([
        { message: 'alg "none" (an unsigned token) is never accepted', claim: 'alg', actual: 'none' },
      ]);
    }
    if (!ASYMMETRIC_ALG.test(alg)) {
      return refused([
        {
          message: /^HS/i.test(alg)
            ? `alg "${displayValue(alg, 20)}" is refused: HMAC algorithms are never accepted for OIDC tokens (an issuer signs with a private key)`
            : `alg "${displayValue(alg, 20)}" is refused: only RS*, PS* and ES* signatures are accepted`,
          claim: 'alg',
          actual: displayValue(alg, 20),
        },
      ]);
    }
    if ('crit' in header) {
      return refused([
        {
          message: 'the JWT header has "crit": no critical JWS extensions are supported',
          actual: displayValue(header.crit),
        },
      ]);
    }

    // Choose the issuer by the unverified iss; the signature is then checked with its keys only.
    const iss = payload.iss;
    if (typeof iss !== 'string' || iss.length === 0) {
      return refused([{ message: 'the token has no "iss" claim', claim: 'iss', actual: displayValue(iss) }]);
    }
    const sameIss = this.#issuers.filter((i) => i.config.issuer === iss);
    if (sameIss.length === 0) {
      return refused([
        {
          message: `issuer ${JSON.stringify(displayValue(iss))} is not configured; configured issuers: ${this.#issuers
            .map((i) => `${i.config.name} (${i.config.issuer})`)
            .join(', ')}`,
          claim: 'iss',
          expected: this.#issuers.map((i) => i.config.issuer).join(' | '),
          actual: displayValue(iss),
        },
      ]);
    }
    // Several entries may share an iss with different audiences: the token's aud picks one.
    const issuer = sameIss.find((i) => audienceMatches(payload.aud, i.config.audience)) ?? sameIss[0]!;
    const { config } = issuer;

    if (!issuer.algorithms.includes(alg)) {
      return refused([
        {
          message: `alg "${alg}" is not allowed for issuer "${config.name}"`,
          claim: 'alg',
          expected: issuer.algorithms.join(' | '),
          actual: alg,
        },
      ]);
    }

    const claimReasons = checkRegisteredClaims(payload, config, now, this.#clockSkewSec);
    if (claimReasons.length > 0) return refused(claimReasons);

    let resolvedModulusBits: number | undefined;
    const getKey: JWTVerifyGetKey = async (protectedHeader, token) => {
      const key = await issuer.keys.resolve(protectedHeader, token);
      const algorithm = (key as { algorithm?: { modulusLength?: number } }).algorithm;
      resolvedModulusBits = algorithm?.modulusLength;
      return key;
    };
    let claims: Claims;
    try {
      const verified = await jwtVerify(raw, getKey, {
        algorithms: [...issuer.algorithms],
        issuer: config.issuer,
        audience: config.audience,
        clockTolerance: this.#clockSkewSec,
        currentDate: now,
        requiredClaims: ['iss', 'aud', 'exp', 'iat'],
      });
      claims = verified.payload as Claims;
    } catch (err) {
      return verificationFailure(err, config, alg, signatureBytes, resolvedModulusBits);
    }

    return {
      ok: true,
      issuer: config.name,
      claims,
      tokenKey: tokenKey(raw, claims),
      expiresAt: new Date(claims.exp * 1000),
    };
  }
}

/** aud equals the configured audience, or (array aud) contains it: the token was minted for us. */
function audienceMatches(aud: unknown, audience: string): boolean {
  if (typeof aud === 'string') return aud === audience;
  return Array.isArray(aud) && aud.includes(audience);
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

const isoSeconds = (seconds: number): string => {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
};

/** aud, exp, nbf, iat, each failure with expected vs actual; times are shown as ISO dates. */
function checkRegisteredClaims(
  payload: Record<string, unknown>,
  issuer: Issuer,
  now: Date,
  skewSec: number,
): Reason[] {
  const reasons: Reason[] = [];
  const nowSec = Math.floor(now.getTime() / 1000);
  const skewNote = `(clock skew allowance ${skewSec} s)`;

  if (!audienceMatches(payload.aud, issuer.audience)) {
    reasons.push({
      message:
        payload.aud === undefined
          ? `the token has no "aud" claim; issuer "${issuer.name}" requires audience "${issuer.audience}"`
          : `the token's audience is not the one configured for issuer "${issuer.name}"`,
      claim: 'aud',
      expected: issuer.audience,
      actual: displayValue(payload.aud),
    });
  }

  const { exp, nbf, iat } = payload;
  if (!isNumericDate(exp)) {
    reasons.push({
      message: 'the token has no numeric "exp" claim',
      claim: 'exp',
      actual: displayValue(exp),
    });
  } else if (nowSec - skewSec >= exp) {
    reasons.push({
      message: `the token expired ${nowSec - exp} s ago ${skewNote}`,
      claim: 'exp',
      expected: `after ${isoSeconds(nowSec - skewSec)}`,
      actual: isoSeconds(exp),
    });
  }
  if (nbf !== undefined) {
    if (!isNumericDate(nbf)) {
      reasons.push({
        message: 'the token\'s "nbf" claim is not a number',
        claim: 'nbf',
        actual: displayValue(nbf),
      });
    } else if (nbf > nowSec + skewSec) {
      reasons.push({
        message: `the token is not valid yet: nbf is ${nbf - nowSec} s in the future ${skewNote}`,
        claim: 'nbf',
        expected: `at or before ${isoSeconds(nowSec + skewSec)}`,
        actual: isoSeconds(nbf),
      });
    }
  }
  if (!isNumericDate(iat)) {
    reasons.push({
      message: 'the token has no numeric "iat" claim',
      claim: 'iat',
      actual: displayValue(iat),
    });
  } else if (iat > nowSec + skewSec) {
    reasons.push({
      message: `the token claims to be issued ${iat - nowSec} s in the future ${skewNote}`,
      claim: 'iat',
      expected: `at or before ${isoSeconds(nowSec + skewSec)}`,
      actual: isoSeconds(iat),
    });
  }
  return reasons;
}

const EXPECTED_SIGNATURE_BYTES: Record<string, number> = { ES256: 64, ES384: 96, ES512: 132 };

function verificationFailure(
  err: unknown,
  issuer: Issuer,
  alg: string,
  signatureBytes: number,
  modulusBits: number | undefined,
): VerifyResult {
  if (err instanceof IssuerKeysUnavailable) {
    return { ok: false, failure: 'unavailable', error: UNAVAILABLE, reasons: [{ message: err.message }] };
  }
  if (err instanceof UnknownSigningKey) return refused([{ message: err.message, claim: 'kid' }]);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    const expectedBytes = modulusBits ? modulusBits / 8 : EXPECTED_SIGNATURE_BYTES[alg];
    if (expectedBytes !== undefined && signatureBytes !== expectedBytes) {
      return refused([
        {
          message: `the signature is ${signatureBytes} bytes but a ${alg} signature with issuer "${issuer.name}"'s key is ${expectedBytes} bytes: the token was truncated or altered`,
          claim: 'signature',
        },
      ]);
    }
    return refused([
      {
        message: `the signature does not verify with issuer "${issuer.name}"'s key: the token was altered or signed by another key`,
        claim: 'signature',
      },
    ]);
  }
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return refused([
      {
        message: `several keys of issuer "${issuer.name}" match the token; it must name its key with "kid"`,
        claim: 'kid',
      },
    ]);
  }
  if (err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed) {
    // Normally caught by checkRegisteredClaims first; jose's messages name the claim and carry no token data.
    return refused([{ message: `claim check failed: ${err.message}`, claim: err.claim }]);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return refused([{ message: `alg "${alg}" is not allowed`, claim: 'alg' }]);
  if (err instanceof joseErrors.JOSEError) {
    // JWSInvalid, JWTInvalid, JWKInvalid, JOSENotSupported…: jose's messages describe structure, never contents.
    return refused([{ message: `the token is malformed: ${err.message}` }]);
  }
  return refused([{ message: 'the token could not be verified' }]);
}

function refused(reasons: Reason[]): VerifyResult {
  return { ok: false, failure: 'invalid', error: INVALID, reasons };
}

/** The single-use key: the jti when the issuer set a sane one, else a hash of the whole token. */
export function tokenKey(raw: string, claims: Pick<Claims, 'iss' | 'jti'>): string {
  const { jti } = claims;
  if (typeof jti === 'string' && jti.length > 0 && jti.length <= MAX_JTI_CHARS)
    return `${claims.iss}#jti:${jti}`;
  return `${claims.iss}#sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

/** The verifier the broker holds: one IssuerRegistry over the configured issuers. */
export function createVerifier(
  issuers: readonly Issuer[],
  options: IssuerRegistryOptions = {},
): IssuerRegistry {
  return new IssuerRegistry(issuers, options);
}
