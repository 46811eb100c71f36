import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuthServerConfig } from '../config/config.ts';
import { AuthDb } from './auth-db.ts';
import { grantable } from './scopes.ts';

/** The built-in authorization server's issuer identifier: `/auth` on the FHIR server's origin. */
export function authIssuer(baseUrl: string): string {
  return `${new URL(baseUrl).origin}/auth`;
}

// See: SMART App Launch 2.x, backend services (client authentication: RS384 and ES384 at least)
export const CLIENT_AUTH_ALGORITHMS = ['RS384', 'ES384', 'RS256', 'ES256', 'PS384'] as const;
/** SMART backend services: an access token lives at most five minutes. See: backend-services.html#issue-access-token */
export const BACKEND_TOKEN_TTL = 300;
/** SMART backend services: a client assertion expires at most five minutes after it is made. */
const MAX_ASSERTION_SECONDS = 300;
/** The registered scopes of a client, in its metadata (space-separated SMART scopes). */
export const ALLOWED_SCOPES = 'hearth_allowed_scopes';

export interface AuthServer {
  readonly issuer: string;
  readonly provider: Provider;
  /** the public keys access tokens are signed with (what the FHIR API verifies them with) */
  readonly jwks: { keys: JWK[] };
  readonly db: AuthDb;
  close(): void;
}

/**
 * The signing key of the access tokens: ES256, made on first start under <data dir>/auth
 * (owner-only), in memory when the data is.
 */
async function signingKey(dataDir: string): Promise<JWK> {
  const make = async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    return { ...jwk, alg: 'ES256', use: 'sig', kid: `hearth-${new Date().toISOString().slice(0, 10)}-${Math.random().toString(36).slice(2, 8)}` };
  };
  if (dataDir === ':memory:') return make();
  const dir = join(dataDir, 'auth');
  const file = join(dir, 'signing-key.jwk.json');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify(await make()), { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as JWK;
}

/**
 * The built-in SMART authorization server, on oidc-provider (a certified OpenID Connect
 * implementation): what is ours is the policy — which clients exist (`hearth clients`), which
 * SMART scopes each may be granted, the FHIR base URL as the only resource, token lifetimes.
 * This first part serves SMART backend services: `client_credentials` with `private_key_jwt`.
 */
export async function createAuthServer(opts: {
  baseUrl: string;
  dataDir: string;
  config: AuthServerConfig;
  trustProxy: boolean;
}): Promise<AuthServer> {
  const issuer = authIssuer(opts.baseUrl);
  const db = new AuthDb(opts.dataDir);
  const key = await signingKey(opts.dataDir);
  const { d: _d, ...publicKey } = key;
  const resource = opts.baseUrl;
  const provider = new Provider(issuer, {
    adapter: (name: string) => db.adapter(name),
    jwks: { keys: [key as never] },
    clientAuthMethods: ['private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: [...CLIENT_AUTH_ALGORITHMS] },
    clientDefaults: { grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'private_key_jwt', id_token_signed_response_alg: 'ES256' },
    extraClientMetadata: { properties: [ALLOWED_SCOPES] },
    scopes: [],
    // (the authorization code flow and its pages are not built yet; no implicit flow ever)
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // SMART clients name no `resource`: the FHIR API is the one resource here.
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx: KoaContextWithOIDC, indicator: string, client) => {
          if (indicator !== resource) throw new errors.InvalidTarget(`the only resource is ${resource}`);
          const requested = String(ctx.oidc.params?.scope ?? '').split(' ').filter(Boolean);
          const allowed = String((client as unknown as Record<string, unknown>)[ALLOWED_SCOPES] ?? '').split(' ').filter(Boolean);
          const scope = grantable(requested, allowed).join(' ');
          if (!scope) throw new errors.InvalidScope('none of the requested scopes is allowed to this client', requested.join(' '));
          return {
            scope,
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: Math.min(BACKEND_TOKEN_TTL, opts.config.accessTokenSeconds),
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    assertJwtClientAuthClaimsAndHeader: (_ctx, claims) => {
      // See: SMART backend services, authentication JWT: "exp ... no more than five minutes in the future"
      const now = Math.floor(Date.now() / 1000);
      if (typeof claims.exp !== 'number' || claims.exp > now + MAX_ASSERTION_SECONDS) {
        throw new errors.InvalidClientAuth(`the client assertion must expire within ${MAX_ASSERTION_SECONDS} seconds`);
      }
    },
    // Responses name what went wrong by its OAuth error; never a stack or an internal message.
    renderError: (ctx, out) => {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `${out.error}${out.error_description ? `: ${out.error_description}` : ''}\n`;
    },
  });
  provider.proxy = opts.trustProxy;
  return { issuer, provider, jwks: { keys: [publicKey] }, db, close: () => db.close() };
}
