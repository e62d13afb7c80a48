// The signing keys of one configured issuer: found by OpenID discovery (or an explicit jwks_uri),
// cached, and refetched when a token names a key we do not have — at most once per cooldown
// (default one minute), so a flood of made-up `kid`s cannot turn the broker into a JWKS hammer.
//
// Not jose's createRemoteJWKSet: its cooldown counts only successful fetches (a failing JWKS endpoint
// would be hit on every unknown kid), it reads Date.now() directly (no test clock), it cannot take a
// per-issuer CA, and it has no discovery step. The key selection itself is jose's createLocalJWKSet.
import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
  errors as joseErrors,
} from 'jose';
import type { Issuer } from '../config/schema.js';
import { displayValue } from './compact-jwt.js';
import { FetchJsonError, fetchJson } from './fetch-json.js';

export interface IssuerKeysOptions {
  /** minimum time between two fetches triggered by an unknown kid (default 60 s) */
  refreshCooldownMs: number;
  /** keys older than this are refetched before use (default 10 min) */
  cacheMaxAgeMs: number;
  /** when a refetch of stale keys fails, keep using them for this long past cacheMaxAge (default 1 h) */
  staleIfErrorMs: number;
  /** after a failed fetch, wait this long before trying again on behalf of another token (default 5 s) */
  retryAfterFailureMs: number;
  fetchTimeoutMs: number;
  maxDocumentBytes: number;
  /** milliseconds since the epoch; injectable so tests can step over the cooldown */
  clock: () => number;
}

/** The issuer's keys could not be obtained: the token is not proven bad, the broker cannot check it. */
export class IssuerKeysUnavailable extends Error {
  override readonly name = 'IssuerKeysUnavailable';
}

/** No published key matches the token's kid/alg, even after the refetch we were allowed to do. */
export class UnknownSigningKey extends Error {
  override readonly name = 'UnknownSigningKey';
  constructor(
    message: string,
    /** whether this token caused a JWKS refetch (false: the cooldown forbade it) */
    readonly refetched: boolean,
  ) {
    super(message);
  }
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;
type ResolvedKey = Awaited<ReturnType<LocalKeySet>>;

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'] as const;

export class IssuerKeys {
  readonly #issuer: Issuer;
  readonly #opts: IssuerKeysOptions;
  #jwksUri: URL | undefined;
  #ca: string | undefined;
  #caLoaded = false;
  #local: LocalKeySet | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastError: string | undefined;
  #pending: Promise<void> | undefined;

  constructor(issuer: Issuer, opts: IssuerKeysOptions) {
    this.#issuer = issuer;
    this.#opts = opts;
    if (issuer.jwks_uri) this.#jwksUri = new URL(issuer.jwks_uri);
  }

  /** A jose key resolver for jwtVerify. Throws IssuerKeysUnavailable or UnknownSigningKey. */
  readonly resolve = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<ResolvedKey> => {
    const local = await this.#freshKeys();
    try {
      return await local(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
    }
    // Unknown kid: the issuer may have rotated. Join a fetch already under way, else start one if
    // the cooldown since the last attempt has passed; otherwise refuse without touching the network.
    let refetched = false;
    if (this.#pending) {
      await this.#pending.catch(() => undefined);
    } else if (this.#opts.clock() - this.#lastAttemptAt >= this.#opts.refreshCooldownMs) {
      refetched = true;
      await this.#refresh().catch(() => undefined);
    }
    const again = this.#local;
    if (again) {
      try {
        return await again(header, token);
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      }
    }
    const kid = header.kid === undefined ? 'no kid' : `kid ${JSON.stringify(displayValue(header.kid, 100))}`;
    throw new UnknownSigningKey(
      `no key in the JWKS of issuer "${this.#issuer.name}" matches the token (${kid}, alg ${String(header.alg)})` +
        (refetched
          ? '; the JWKS was refetched and still has no such key'
          : `; the JWKS was fetched less than ${Math.round(this.#opts.refreshCooldownMs / 1000)} s ago, so it was not refetched`),
      refetched,
    );
  };

  /** Current keys, fetching first when we have none or they are stale. */
  async #freshKeys(): Promise<LocalKeySet> {
    const now = this.#opts.clock();
    const age = now - this.#fetchedAt;
    if (this.#local && age < this.#opts.cacheMaxAgeMs) return this.#local;
    if (this.#pending) {
      await this.#pending.catch(() => undefined);
    } else if (!this.#lastError || now - this.#lastAttemptAt >= this.#opts.retryAfterFailureMs) {
      await this.#refresh().catch(() => undefined);
    }
    const after = this.#opts.clock() - this.#fetchedAt;
    if (this.#local && after < this.#opts.cacheMaxAgeMs + this.#opts.staleIfErrorMs) return this.#local;
    throw new IssuerKeysUnavailable(
      `the signing keys of issuer "${this.#issuer.name}" could not be fetched` +
        (this.#lastError ? `: ${this.#lastError}` : ''),
    );
  }

  /** One fetch at a time; the attempt time is taken before any await so concurrent callers see it. */
  #refresh(): Promise<void> {
    if (this.#pending) return this.#pending;
    this.#lastAttemptAt = this.#opts.clock();
    const run = (async () => {
      try {
        await this.#loadCa();
        const uri = await this.#jwksLocation();
        const document = await fetchJson(uri, this.#fetchOptions());
        const jwks = publicKeySet(document, uri);
        this.#local = createLocalJWKSet(jwks);
        this.#fetchedAt = this.#opts.clock();
        this.#lastError = undefined;
      } catch (err) {
        // A failed JWKS fetch may mean a moved jwks_uri: discover again next time.
        if (!this.#issuer.jwks_uri) this.#jwksUri = undefined;
        this.#lastError = err instanceof Error ? err.message : String(err);
        throw err;
      }
    })();
    this.#pending = run.finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #jwksLocation(): Promise<URL> {
    if (this.#jwksUri) return this.#jwksUri;
    const issuerUrl = this.#issuer.issuer.replace(/\/+$/, '');
    const discoveryUrl = new URL(`${issuerUrl}/.well-known/openid-configuration`);
    const doc = await fetchJson(discoveryUrl, this.#fetchOptions());
    if (typeof doc !== 'object' || doc === null)
      throw new FetchJsonError(`${discoveryUrl.href}: not a JSON object`);
    const record = doc as Record<string, unknown>;
    // OpenID Discovery §4.3: the document's issuer must be exactly the one we asked about.
    if (record.issuer !== this.#issuer.issuer) {
      throw new FetchJsonError(
        `${discoveryUrl.href}: discovery names issuer ${JSON.stringify(record.issuer)}, expected "${this.#issuer.issuer}"`,
      );
    }
    if (typeof record.jwks_uri !== 'string') throw new FetchJsonError(`${discoveryUrl.href}: no jwks_uri`);
    let jwksUri: URL;
    try {
      jwksUri = new URL(record.jwks_uri);
    } catch {
      throw new FetchJsonError(`${discoveryUrl.href}: jwks_uri is not a URL`);
    }
    // Never downgrade: keys for an https issuer come over https.
    if (discoveryUrl.protocol === 'https:' && jwksUri.protocol !== 'https:') {
      throw new FetchJsonError(`${discoveryUrl.href}: jwks_uri must use https`);
    }
    this.#jwksUri = jwksUri;
    return jwksUri;
  }

  #fetchOptions(): { ca: string | undefined; timeoutMs: number; maxBytes: number } {
    return { ca: this.#ca, timeoutMs: this.#opts.fetchTimeoutMs, maxBytes: this.#opts.maxDocumentBytes };
  }

  /** Read the issuer's CA file once, before the first fetch. */
  async #loadCa(): Promise<void> {
    if (this.#caLoaded || !this.#issuer.ca_file) return;
    try {
      this.#ca = await readFile(this.#issuer.ca_file, 'utf8');
      this.#caLoaded = true;
    } catch (err) {
      throw new FetchJsonError(
        `cannot read ca_file ${this.#issuer.ca_file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }
}

/** Validate a JWKS document and keep only public asymmetric keys (a JWKS serving private or shared keys is a misconfiguration we must not trust). */
function publicKeySet(document: unknown, uri: URL): JSONWebKeySet {
  if (
    typeof document !== 'object' ||
    document === null ||
    !Array.isArray((document as { keys?: unknown }).keys)
  ) {
    throw new FetchJsonError(`${uri.href}: not a JSON Web Key Set (no "keys" array)`);
  }
  const keys: JWK[] = [];
  for (const key of (document as { keys: unknown[] }).keys) {
    if (typeof key !== 'object' || key === null) continue;
    const jwk = key as JWK;
    if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') continue;
    if (PRIVATE_JWK_MEMBERS.some((member) => member in jwk)) continue;
    keys.push(jwk);
  }
  return { keys };
}
