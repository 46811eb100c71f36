import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseScope } from '../auth/scopes.ts';
import { AuthDb, clientSecretContext, SEALED_SECRET } from '../authserver/auth-db.ts';
import { secretBox } from '../crypto/secret-box.ts';
import { ALLOWED_SCOPES, EHR_CLIENT } from '../authserver/provider.ts';
import type { Config } from '../config/config.ts';
import { CliError } from './audit.ts';
import { commandKeyring } from './keys.ts';

const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface ClientsAddArgs {
  id?: string;
  name?: string;
  type?: string;
  jwks?: string;
  'jwks-uri'?: string;
  scope?: string;
  /** app clients: the redirect URIs, space-separated */
  'redirect-uri'?: string;
  /** a backend service that is a trusted EHR: it may register launch contexts */
  ehr?: boolean;
}

const IDENTITY_SCOPES = new Set(['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access']);

/**
 * `hearth clients add`: registers a client of the built-in authorization server. Today's kind is
 * the backend service of SMART (confidential asymmetric: `client_credentials` authenticated by
 * a JWT signed with a key from its JWKS, given as a file or an https URL), with the system/
 * scopes it may be granted; a request for more is granted only what these cover.
 */
export function clientsAdd(config: Config, a: ClientsAddArgs): string {
  if (!a.id || !CLIENT_ID.test(a.id)) throw new CliError('--id is required: 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit');
  const type = a.type ?? 'backend';
  if (type === 'public' || type === 'confidential') return appClient(config, a, type);
  if (type !== 'backend') throw new CliError(`--type ${type} is not supported: backend (SMART backend services), public or confidential (apps)`);
  if ((a.jwks === undefined) === (a['jwks-uri'] === undefined)) throw new CliError('give the client\'s public keys: --jwks <file> or --jwks-uri <https URL>, one of them');
  const scopes = (a.scope ?? '').split(/\s+/).filter(Boolean);
  if (scopes.length === 0) throw new CliError('--scope is required: the system/ scopes the client may be granted, e.g. "system/Patient.rs system/Observation.rs"');
  for (const s of scopes) {
    if (parseScope(s)?.context !== 'system') throw new CliError(`--scope: "${s}" is not a SMART system/ scope (a backend service acts for no user or patient)`);
  }
  const metadata: Record<string, unknown> = {
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    [ALLOWED_SCOPES]: scopes.join(' '),
    ...(a.name ? { client_name: a.name } : {}),
    ...(a.ehr ? { [EHR_CLIENT]: true } : {}),
  };
  if (a.jwks !== undefined) metadata.jwks = publicJwks(a.jwks);
  else metadata.jwks_uri = httpsUrl(a['jwks-uri']!);
  const db = new AuthDb(config.dataDir);
  try {
    if (db.client(a.id)) throw new CliError(`a client "${a.id}" is registered already (revoked ids are not reused)`);
    db.addClient(a.id, metadata);
  } finally {
    db.close();
  }
  return `registered client ${a.id} (backend service${a.ehr ? ', trusted EHR: may register launches' : ''}, private_key_jwt) with scopes ${scopes.join(' ')}\n`;
}

/**
 * An app that users sign in to (the authorization code flow with PKCE): public (a browser or
 * mobile app, no secret) or confidential (a server, with a client secret — printed once), its
 * redirect URIs, and the scopes it may ask for: patient/ and user/ scopes, and the identity
 * and launch scopes (openid fhirUser launch/patient offline_access online_access).
 */
function appClient(config: Config, a: ClientsAddArgs, type: 'public' | 'confidential'): string {
  const redirects = (a['redirect-uri'] ?? '').split(/\s+/).filter(Boolean);
  if (redirects.length === 0) throw new CliError('--redirect-uri is required for an app: where the sign-in hands the app back its code');
  for (const r of redirects) {
    let url: URL;
    try {
      url = new URL(r);
    } catch {
      throw new CliError(`--redirect-uri: not a URL: ${r}`);
    }
    const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
    if (url.hash || !(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) throw new CliError(`--redirect-uri ${r}: https (http on loopback only), without a fragment`);
  }
  const scopes = (a.scope ?? '').split(/\s+/).filter(Boolean);
  if (scopes.length === 0) throw new CliError('--scope is required: the scopes the app may ask for, e.g. "patient/*.rs launch/patient openid fhirUser"');
  for (const s of scopes) {
    const g = parseScope(s);
    if (!IDENTITY_SCOPES.has(s) && (g === undefined || g.context === 'system')) throw new CliError(`--scope: "${s}" is not a patient/ or user/ scope nor one of ${[...IDENTITY_SCOPES].join(' ')}`);
  }
  const secret = type === 'confidential' ? randomBytes(32).toString('base64url') : undefined;
  const metadata: Record<string, unknown> = {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: redirects,
    token_endpoint_auth_method: secret ? 'client_secret_basic' : 'none',
    // The secret rests sealed under the keyring (the server opens it when the client authenticates).
    ...(secret ? { [SEALED_SECRET]: secretBox(commandKeyring(config)).seal(secret, clientSecretContext(a.id!)) } : {}),
    [ALLOWED_SCOPES]: scopes.join(' '),
    ...(a.name ? { client_name: a.name } : {}),
  };
  const db = new AuthDb(config.dataDir);
  try {
    if (db.client(a.id!)) throw new CliError(`a client "${a.id}" is registered already (revoked ids are not reused)`);
    db.addClient(a.id!, metadata);
  } finally {
    db.close();
  }
  return `registered client ${a.id} (${type} app) with scopes ${scopes.join(' ')}\n${secret ? `client secret (shown once): ${secret}\n` : ''}`;
}

export function clientsList(config: Config): string {
  const db = new AuthDb(config.dataDir);
  try {
    const rows = db.clients();
    if (rows.length === 0) return 'no clients registered\n';
    return rows
      .map((c) => `${c.clientId}\t${c.revokedAt ? `revoked ${c.revokedAt}` : 'active'}\t${String(c.metadata[ALLOWED_SCOPES] ?? '')}\t${c.metadata.jwks_uri ?? 'jwks'}\n`)
      .join('');
  } finally {
    db.close();
  }
}

/** `hearth clients revoke <id>`: the client can no longer obtain tokens (tokens it holds expire within their lifetime). */
export function clientsRevoke(config: Config, id: string | undefined): string {
  if (!id) throw new CliError('which client? hearth clients revoke <id>');
  const db = new AuthDb(config.dataDir);
  try {
    if (!db.revokeClient(id)) throw new CliError(db.client(id) ? `client ${id} is revoked already` : `no client ${id}`);
  } finally {
    db.close();
  }
  return `revoked client ${id}\n`;
}

function publicJwks(path: string): { keys: Record<string, unknown>[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliError(`--jwks ${path}: not a readable JSON file (${(err as Error).message})`);
  }
  const keys = (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new CliError(`--jwks ${path}: must be a JWKS, {"keys": [...]}, with at least one key`);
  for (const k of keys as Record<string, unknown>[]) {
    if (typeof k?.kty !== 'string' || !['RSA', 'EC'].includes(k.kty)) throw new CliError(`--jwks ${path}: every key must be an RSA or EC public key`);
    if ('d' in k) throw new CliError(`--jwks ${path}: holds a private key; register the public keys only`);
  }
  return { keys: keys as Record<string, unknown>[] };
}

function httpsUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`--jwks-uri: not a URL: ${raw}`);
  }
  // (oidc-provider fetches it, and refuses special-use addresses — loopback, private networks —
  // against server-side request forgery: a key server must be reachable as any https site)
  if (url.protocol !== 'https:') throw new CliError('--jwks-uri must be https');
  return url.href;
}
