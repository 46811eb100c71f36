import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuthServerConfig } from '../config/config.ts';
import { AuthDb } from './auth-db.ts';
import { grantable } from './scopes.ts';
import { type Sealer, Users } from './users.ts';

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
/** A client's metadata flag: a trusted EHR, which may register launch contexts (POST /auth/launch). */
export const EHR_CLIENT = 'hearth_ehr';

/**
 * What one request to the authorization server's endpoints did (token, introspection,
 * revocation), for its AuditEvent: made durable before the response leaves, or the response is a
 * 503 with no token in it.
 */
export interface AuthEvent {
  readonly requestId: string;
  readonly address?: string;
  /** token, introspection or revocation */
  readonly endpoint: string;
  readonly status: number;
  /** the OAuth error of a refusal (its code, never its description) */
  readonly error?: string;
  /** the client, authenticated — or only claimed, when its authentication failed */
  readonly clientId?: string;
  readonly authenticated: boolean;
  /** the scopes granted, and the token's jti and expiry, of an issued token */
  readonly scope?: string;
  readonly tokenId?: string;
  readonly expiresAt?: number;
}

export interface AuthServer {
  readonly issuer: string;
  /** the FHIR base URL: the one resource tokens are for */
  readonly resource: string;
  readonly provider: Provider;
  readonly users: Users;
  /** the public keys access tokens are signed with (what the FHIR API verifies them with) */
  readonly jwks: { keys: JWK[] };
  readonly db: AuthDb;
  /** records an AuditEvent of the server's own endpoints (launch registration) */
  readonly audit: (e: AuthEvent) => Promise<void>;
  close(): void;
}

/** How long a token signing key signs before the next start makes a new one. */
export const SIGNING_KEY_DAYS = 90;
/** How many keys are kept (the newest signs; the others still verify what they signed). */
const KEPT_KEYS = 2;

interface StoredKey extends JWK {
  /** when the key was made (ISO) */
  readonly created: string;
}

/**
 * The keys access and ID tokens are signed with: ES256, under <data dir>/auth (owner-only), in
 * memory when the data is. They rotate: a start that finds the newest older than
 * SIGNING_KEY_DAYS makes a new one, which signs from then on, and keeps the one before it in the
 * JWKS (and in this server's own verifier) so that tokens it signed stay valid until they expire.
 * Newest first.
 */
export async function signingKeys(dataDir: string, now: Date = new Date()): Promise<StoredKey[]> {
  const make = async (): Promise<StoredKey> => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = `hearth-${now.toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
    return { ...jwk, alg: 'ES256', use: 'sig', kid, created: now.toISOString() };
  };
  if (dataDir === ':memory:') return [await make()];
  const dir = join(dataDir, 'auth');
  const file = join(dir, 'signing-keys.json');
  let keys: StoredKey[] = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { keys: StoredKey[] }).keys : [];
  const newest = keys[0];
  if (!newest || now.getTime() - Date.parse(newest.created) > SIGNING_KEY_DAYS * 86_400_000) {
    keys = [await make(), ...keys].slice(0, KEPT_KEYS);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.tmp`, JSON.stringify({ keys }), { mode: 0o600 });
    chmodSync(`${file}.tmp`, 0o600);
    renameSync(`${file}.tmp`, file);
  }
  return keys;
}

/**
 * The built-in SMART authorization server, on oidc-provider (a certified OpenID Connect
 * implementation): what is ours is the policy — which clients exist (`hearth clients`), which
 * SMART scopes each may be granted, the FHIR base URL as the only resource, token lifetimes,
 * users and their sign-in (interactions.ts), auditing.
 */
export async function createAuthServer(opts: {
  baseUrl: string;
  dataDir: string;
  config: AuthServerConfig;
  trustProxy: boolean;
  /** records an AuditEvent durably; rejects when it cannot */
  audit: (e: AuthEvent) => Promise<void>;
  /** seals users' TOTP secrets at rest */
  box: Sealer;
  /** the token claim naming a user's role (config.auth.roleClaim) */
  roleClaim: string;
}): Promise<AuthServer> {
  const issuer = authIssuer(opts.baseUrl);
  const db = new AuthDb(opts.dataDir);
  db.openSecretsWith(opts.box);
  const users = new Users(db, opts.box);
  const keys = await signingKeys(opts.dataDir);
  const publicKeys = keys.map(({ d: _d, created: _c, ...pub }) => pub);
  const resource = opts.baseUrl;
  const userTtl = opts.config.accessTokenSeconds;
  /** An access token's lifetime: a user's as configured, a backend service's at most 300 s. */
  const accessTtl = (backend: boolean) => (backend ? Math.min(BACKEND_TOKEN_TTL, userTtl) : userTtl);
  const provider = new Provider(issuer, {
    adapter: (name: string) => db.adapter(name),
    jwks: { keys: keys.map(({ created: _c, ...k }) => k) as never[] },
    clientAuthMethods: ['private_key_jwt', 'client_secret_basic', 'client_secret_post', 'none'],
    enabledJWA: { clientAuthSigningAlgValues: [...CLIENT_AUTH_ALGORITHMS] },
    clientDefaults: { grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'private_key_jwt', id_token_signed_response_alg: 'ES256' },
    extraClientMetadata: { properties: [ALLOWED_SCOPES, EHR_CLIENT] },
    // The identity and launch scopes; clinical scopes are the FHIR API's (getResourceServerInfo).
    scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access'],
    claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
    // The authorization code flow only (no implicit flow), PKCE S256 always.
    // See: SMART App Launch 2.x, app-launch.html#step-3-app-requests-authorization (PKCE S256 required)
    responseTypes: ['code'],
    pkce: { required: () => true },
    routes: { authorization: '/authorize' },
    extraParams: ['aud', 'launch'],
    interactions: { url: (_ctx, interaction) => `/auth/interaction/${interaction.uid}` },
    findAccount: (_ctx, sub) => {
      const user = users.get(sub);
      if (!user || user.disabled) return undefined;
      return { accountId: sub, claims: () => ({ sub, ...(user.fhirUser ? { fhirUser: user.fhirUser } : {}) }) };
    },
    // Refresh tokens for offline_access or online_access, bound to their client, rotated on every
    // use; a rotated one presented again revokes its whole grant (oidc-provider's reuse detection).
    issueRefreshToken: (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || code.scopes.has('online_access')),
    rotateRefreshToken: true,
    ttl: {
      AccessToken: (_ctx, token) => accessTtl(!token.accountId),
      AuthorizationCode: 60,
      IdToken: userTtl,
      RefreshToken: 30 * 24 * 3600,
      Grant: 30 * 24 * 3600,
      Interaction: 15 * 60,
      Session: 8 * 3600,
    },
    // A user's token says who the user is, in which role, and the patient picked at launch.
    extraTokenClaims: (_ctx, token) => {
      const accountId = (token as { accountId?: string }).accountId;
      if (!accountId) return undefined;
      const user = users.get(accountId);
      const grantId = (token as { grantId?: string }).grantId;
      const context = grantId ? db.grantContext(grantId) : undefined;
      return {
        ...(user ? { [opts.roleClaim]: user.role } : {}),
        ...(user?.fhirUser ? { fhirUser: user.fhirUser } : {}),
        ...(context?.patient ? { patient: context.patient } : {}),
        ...(context?.encounter ? { encounter: context.encounter } : {}),
      };
    },
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
          // What was asked: the request's scope (authorization, client credentials), or — when
          // a code or refresh token is exchanged — what the user granted.
          const entities = ctx.oidc.entities as { Grant?: { resources?: Record<string, string> } } | undefined;
          const granted = entities?.Grant?.resources?.[resource];
          const requested = String(ctx.oidc.params?.scope ?? granted ?? '').split(' ').filter(Boolean);
          const allowed = String((client as unknown as Record<string, unknown>)[ALLOWED_SCOPES] ?? '').split(' ').filter(Boolean);
          const scope = grantable(requested, allowed).join(' ');
          const backend = ctx.oidc.params?.grant_type === 'client_credentials';
          if (!scope && backend) throw new errors.InvalidScope('none of the requested scopes is allowed to this client', requested.join(' '));
          return {
            scope,
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: accessTtl(backend),
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
  provider.use(smartParameters(resource));
  provider.use(auditedEndpoints(opts.audit));
  return { issuer, resource, provider, users, jwks: { keys: publicKeys }, db, audit: opts.audit, close: () => db.close() };
}

/**
 * SMART's additions around oidc-provider: an authorization request must name this FHIR server
 * as `aud` (app-launch.html: "aud ... REQUIRED"; a token for another server is refused before
 * any sign-in), and a token response of a launch carries the `patient` its token holds.
 */
function smartParameters(resource: string) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    if (ctx.path === '/authorize') {
      const req = ctx.req as typeof ctx.req & { originalUrl?: string };
      // (the mount path is what the original URL has before the URL oidc-provider sees: kept)
      const mount = req.originalUrl?.slice(0, Math.max(0, req.originalUrl.indexOf(ctx.url))) ?? '';
      // An authorization request sent as a form (SMART authorize-post) is the same request as
      // its GET; it is read as one, so that the checks below see it too.
      // See: OpenID Connect Core 1.0 §3.1.2.1 (POST: the parameters form-serialized)
      if (ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
        ctx.method = 'GET';
        ctx.querystring = await readForm(ctx.req, 64 * 1024);
      }
      if (ctx.method === 'GET') {
        if (ctx.query.aud !== resource) {
          ctx.status = 400;
          ctx.type = 'text/plain; charset=utf-8';
          ctx.body = `invalid_request: aud must be this FHIR server, ${resource}\n`;
          return;
        }
        // SMART apps ask for offline_access without prompt=consent, which OpenID Connect would
        // drop it for; the user is always asked here, so the request is read as asking for consent.
        const scope = typeof ctx.query.scope === 'string' ? ctx.query.scope.split(' ') : [];
        if (scope.includes('offline_access') && ctx.query.prompt === undefined) ctx.query = { ...ctx.query, prompt: 'consent' };
      }
      req.originalUrl = `${mount}${ctx.url}`;
    }
    await next();
    if (ctx.path === '/token' && ctx.status === 200) {
      const body = ctx.body as Record<string, unknown> | undefined;
      if (typeof body?.access_token === 'string') {
        // See: SMART App Launch 2.x, app-launch.html#launch-context-arrives-with-your-access_token
        const { patient, encounter } = decodeJwt(body.access_token);
        if (typeof patient === 'string') body.patient = patient;
        if (typeof encounter === 'string') body.encounter = encounter;
        // The response names every scope granted (SMART): the FHIR API's, and the identity and
        // launch scopes the user allowed (oidc-provider lists the resource's alone).
        const oidc = (ctx.oidc?.entities as { Grant?: { openid?: { scope?: string } } } | undefined)?.Grant?.openid?.scope;
        if (oidc) body.scope = [...new Set([...oidc.split(' '), ...String(body.scope ?? '').split(' ')].filter(Boolean))].join(' ');
      }
    }
  };
}

/** A form body, up to `limit` bytes (413 past it). */
async function readForm(req: NodeJS.ReadableStream, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw Object.assign(new Error('the authorization request is too large'), { status: 413, expose: true });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const AUDITED = new Map([
  ['/token', 'token'],
  ['/token/introspection', 'introspection'],
  ['/token/revocation', 'revocation'],
]);

/**
 * Koa middleware around oidc-provider's own: every request to an endpoint that takes client
 * credentials leaves its AuditEvent — issued, refused, failed — before its response leaves; if
 * the AuditEvent cannot be written, the response becomes a 503 that carries no token.
 */
function auditedEndpoints(audit: (e: AuthEvent) => Promise<void>) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    const endpoint = ctx.method === 'POST' ? AUDITED.get(ctx.path) : undefined;
    if (!endpoint) return next();
    await next();
    const body = (ctx.body ?? {}) as Record<string, unknown>;
    const ok = ctx.status < 400;
    const issued = ok && endpoint === 'token' && typeof body.access_token === 'string' ? decodeJwt(body.access_token) : undefined;
    const params = ctx.oidc?.params as Record<string, unknown> | undefined;
    const claimed = ctx.oidc?.client?.clientId ?? claimedClient(params);
    try {
      await audit({
        requestId: String((ctx.req as { hearthRequestId?: string }).hearthRequestId ?? ''),
        address: ctx.ip,
        endpoint,
        status: ctx.status,
        error: !ok && typeof body.error === 'string' ? body.error : undefined,
        clientId: claimed,
        authenticated: ctx.oidc?.client !== undefined && ok,
        scope: typeof issued?.scope === 'string' ? issued.scope : undefined,
        tokenId: issued?.jti,
        expiresAt: issued?.exp,
      });
    } catch {
      ctx.status = 503;
      ctx.set('retry-after', '5');
      ctx.body = { error: 'temporarily_unavailable', error_description: 'the audit trail is unavailable, so nothing was issued' };
    }
  };
}

/** The client a request names (client_id, or the iss of its assertion), unverified: who tried. */
function claimedClient(params: Record<string, unknown> | undefined): string | undefined {
  if (typeof params?.client_id === 'string') return params.client_id.slice(0, 128);
  if (typeof params?.client_assertion !== 'string') return undefined;
  try {
    const iss = decodeJwt(params.client_assertion).iss;
    return typeof iss === 'string' ? iss.slice(0, 128) : undefined;
  } catch {
    return undefined;
  }
}
