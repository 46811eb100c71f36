import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { AuthConfig } from '../config/config.ts';
import { FhirError } from '../fhir/errors.ts';
import type { Principal } from './authorize.ts';
import { parseScopes } from './scopes.ts';

/** Asymmetric algorithms only: never `none`, never an HMAC that a public key could be used as a secret for. */
export const ALGORITHMS = ['ES256', 'ES384', 'RS256', 'RS384', 'EdDSA'];
const CACHE_SIZE = 10_000;

export interface TokenVerifier {
  /** The principal of a valid access token; a 401 FhirError otherwise. */
  verify(token: string): Promise<Principal>;
}

/** 401 that tells the client only what RFC 6750 lets it know. The reason goes to the log via `reason`. */
export class InvalidTokenError extends FhirError {
  readonly reason: string;
  constructor(reason: string, missing = false) {
    // See: https://www.rfc-editor.org/rfc/rfc6750#section-3 (no error code when no credentials were sent)
    super(
      'HEARTH_INVALID_TOKEN',
      { code: 'login', diagnostics: missing ? 'a bearer access token is required' : 'the access token is invalid or expired' },
      { 'www-authenticate': missing ? 'Bearer realm="hearth"' : 'Bearer realm="hearth", error="invalid_token"' },
    );
    this.reason = reason;
  }
}

/**
 * Verifies JWT access tokens from the configured issuers against each issuer's JWKS (cached by
 * jose; refetched on an unknown kid at most once per HEARTH_AUTH_JWKS_COOLDOWN). A verified token is remembered until
 * its exp so that a signature is checked once per token, not once per request.
 */
export class JwtVerifier implements TokenVerifier {
  readonly #issuers: Map<string, JWTVerifyGetKey>;
  readonly #audience: string;
  readonly #config: AuthConfig;
  readonly #clock: () => Date;
  readonly #cache = new Map<string, Principal>();

  constructor(config: AuthConfig, audience: string, clock: () => Date) {
    this.#config = config;
    this.#audience = audience;
    this.#clock = clock;
    this.#issuers = new Map(
      config.issuers.map((i) => [
        i.issuer,
        i.jwks.kind === 'file'
          ? createLocalJWKSet(i.jwks.keys as Parameters<typeof createLocalJWKSet>[0])
          : createRemoteJWKSet(new URL(i.jwks.url), {
              cooldownDuration: config.jwksCooldownSeconds * 1000,
              cacheMaxAge: 600_000,
              timeoutDuration: 5000,
            }),
      ]),
    );
  }

  async verify(token: string): Promise<Principal> {
    const now = this.#clock().getTime();
    const cached = this.#cache.get(token);
    if (cached) {
      if (cached.expiresAt * 1000 > now) return cached;
      this.#cache.delete(token);
    }
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch {
      throw new InvalidTokenError('malformed');
    }
    const keys = typeof unverified.iss === 'string' ? this.#issuers.get(unverified.iss) : undefined;
    if (!keys) throw new InvalidTokenError('untrusted issuer');
    let payload: JWTPayload;
    try {
      // See: https://www.rfc-editor.org/rfc/rfc9068#section-4 (validating JWT access tokens)
      ({ payload } = await jwtVerify(token, keys, {
        issuer: unverified.iss,
        audience: this.#audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.#config.clockSkewSeconds,
        maxTokenAge: this.#config.maxTokenLifetimeSeconds,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'iat'],
      }));
    } catch (err) {
      throw new InvalidTokenError(err instanceof errors.JOSEError ? this.#why(err, unverified) : 'unverifiable');
    }
    if (typeof payload.exp !== 'number' || payload.exp - (payload.iat as number) > this.#config.maxTokenLifetimeSeconds) {
      throw new InvalidTokenError('lifetime too long');
    }
    const principal = this.#principal(payload);
    if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(token, principal);
    return principal;
  }

  /**
   * What the log says of a refused token: the JOSE code, and for a claim the check it failed —
   * `aud` expected X, got Y — so that an operator sees a token minted for another base URL at once.
   * Claims named here carry no PHI (audience, issuer, times).
   */
  #why(err: errors.JOSEError, unverified: JWTPayload): string {
    if (!(err instanceof errors.JWTClaimValidationFailed) && !(err instanceof errors.JWTExpired)) return err.code;
    const got = (v: unknown) => (v === undefined ? 'none' : JSON.stringify(v).slice(0, 200));
    const at = (v: unknown) => (typeof v === 'number' ? new Date(v * 1000).toISOString() : got(v));
    switch (err.claim) {
      case 'aud':
        return `${err.code}: aud expected ${this.#audience}, got ${got(unverified.aud)}`;
      case 'exp':
        return `${err.code}: exp ${at(unverified.exp)} has passed`;
      case 'nbf':
        return `${err.code}: nbf ${at(unverified.nbf)} is still ahead`;
      case 'iat':
        return `${err.code}: iat ${at(unverified.iat)} (${err.reason})`;
      default:
        return `${err.code}: ${err.claim} ${err.reason}`;
    }
  }

  #principal(p: JWTPayload): Principal {
    const str = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 1024 ? v : undefined);
    const role = p[this.#config.roleClaim];
    const purpose = p.purpose_of_use ?? p.purposeOfUse;
    return Object.freeze({
      issuer: p.iss as string,
      subject: str(p.sub),
      clientId: str(p.client_id) ?? str(p.azp),
      fhirUser: relativeFhirUser(str(p.fhirUser)),
      patient: str(p.patient) && /^[A-Za-z0-9\-.]{1,64}$/.test(p.patient as string) ? (p.patient as string) : undefined,
      role: role === undefined ? undefined : typeof role === 'string' ? role : '\u0000invalid',
      grants: parseScopes(p.scope ?? p.scp),
      scopes: typeof p.scope === 'string' ? p.scope.split(' ') : [],
      tokenId: str(p.jti),
      purposeOfUse: typeof purpose === 'string' ? [purpose] : Array.isArray(purpose) ? purpose.filter((x) => typeof x === 'string') : undefined,
      expiresAt: p.exp as number,
    });
  }
}

/** `https://ehr.example/fhir/Practitioner/123` → `Practitioner/123`. See: SMART `fhirUser` claim. */
function relativeFhirUser(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const m = /(?:^|\/)([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64})$/.exec(v);
  return m?.[1];
}

export function bearerToken(header: string | string[] | undefined): string {
  if (header === undefined || header === '') throw new InvalidTokenError('missing', true);
  if (Array.isArray(header)) throw new InvalidTokenError('several authorization headers');
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!m) throw new InvalidTokenError('not a bearer token');
  return m[1];
}
