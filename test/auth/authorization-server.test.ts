import { randomUUID, type webcrypto } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import Fastify, { type FastifyInstance } from 'fastify';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthServer, signingKeys } from '../../src/authserver/provider.ts';
import { LocalKeyring } from '../../src/crypto/keyring.ts';
import { secretBox } from '../../src/crypto/secret-box.ts';
import { authServerRoutes } from '../../src/authserver/routes.ts';
import { clientsAdd, clientsList, clientsRevoke } from '../../src/cli/clients.ts';
import { usersAdd, usersDisable, usersResetMfa } from '../../src/cli/users.ts';
import { CliError } from '../../src/cli/audit.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { signToken, tempDir } from '../helpers/app.ts';
import { listeningApp } from '../helpers/listening.ts';

// The built-in authorization server over real HTTP with a real OAuth client library
// (openid-client): SMART backend services — client_credentials with private_key_jwt — and the
// tokens it issues used on the FHIR API. The server runs on the real clock (oidc-provider's).

let app: FastifyInstance;
let config: Config;
let origin: string;
let base: string;
const keys: Record<string, { privateKey: webcrypto.CryptoKey; jwks: string }> = {};

async function clientKeys(name: string, alg: 'ES384' | 'RS384'): Promise<{ privateKey: webcrypto.CryptoKey; jwks: string }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwks = join(tempDir(), `${name}.jwks.json`);
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg, kid: `${name}-1`, use: 'sig' }] }));
  return { privateKey, jwks };
}

beforeAll(async () => {
  // (the test issuer trusted beside the built-in one, as a deployment may)
  ({ app, config, origin, base } = await listeningApp());
  keys.feed = await clientKeys('feed', 'ES384');
  keys.rsa = await clientKeys('rsa', 'RS384');
  clientsAdd(config, { id: 'lab-feed', jwks: keys.feed.jwks, scope: 'system/Patient.rs system/Observation.cruds' });
  clientsAdd(config, { id: 'rsa-client', jwks: keys.rsa.jwks, scope: 'system/*.rs' });
});

afterAll(async () => {
  await app?.close();
});

/** openid-client's configuration for a registered client, discovered from the issuer, its assertion optionally altered. */
async function configFor(
  clientId: string,
  key: webcrypto.CryptoKey,
  kid: string,
  alter?: (payload: Record<string, unknown>) => void,
): Promise<client.Configuration> {
  const modify = alter && { [client.modifyAssertion]: (_h: unknown, payload: unknown) => alter(payload as Record<string, unknown>) };
  const auth = client.PrivateKeyJwt({ key, kid }, modify);
  return client.discovery(new URL(`${origin}/auth`), clientId, undefined, auth, { execute: [client.allowInsecureRequests] });
}

/** The OAuth error a token request failed with. */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const e = err as { error?: string; code?: string; error_description?: string };
    return `${e.error ?? e.code}${e.error_description ? `: ${e.error_description}` : ''}`;
  }
  throw new Error('the request succeeded');
}

describe('SMART backend services on the built-in authorization server', () => {
  it('issues a JWT access token for the FHIR API to a client authenticated with private_key_jwt (ES384), which then reads and writes what it was granted', async () => {
    const c = await configFor('lab-feed', keys.feed.privateKey, 'feed-1');
    const tokens = await client.clientCredentialsGrant(c, { scope: 'system/Patient.rs system/Observation.cruds' });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.scope).toBe('system/Patient.rs system/Observation.cruds');
    expect(tokens.expires_in).toBe(300);
    const header = decodeProtectedHeader(tokens.access_token);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    const claims = decodeJwt(tokens.access_token);
    expect(claims).toMatchObject({ iss: `${origin}/auth`, aud: base, client_id: 'lab-feed', sub: 'lab-feed', scope: 'system/Patient.rs system/Observation.cruds' });
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(typeof claims.jti).toBe('string');
    const headers = { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/fhir+json' };
    const made = await fetch(`${base}/Observation`, { method: 'POST', headers, body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' } }) });
    expect(made.status).toBe(201);
    expect((await fetch(`${base}/Patient?_count=1`, { headers })).status).toBe(200);
    // granted read on Patient, not write
    const refused = await fetch(`${base}/Patient`, { method: 'POST', headers, body: JSON.stringify({ resourceType: 'Patient' }) });
    expect(refused.status).toBe(403);
  });

  it('grants no more than the registered scopes cover: a narrower request as asked, a wider one cut to what is covered, none at all refused', async () => {
    const c = await configFor('rsa-client', keys.rsa.privateKey, 'rsa-1');
    expect((await client.clientCredentialsGrant(c, { scope: 'system/Observation.r' })).scope).toBe('system/Observation.r');
    expect((await client.clientCredentialsGrant(c, { scope: 'system/Patient.rs system/Patient.cud' })).scope).toBe('system/Patient.rs');
    expect(await refusal(client.clientCredentialsGrant(c, { scope: 'system/*.cruds' }))).toMatch(/^invalid_scope/);
    expect(await refusal(client.clientCredentialsGrant(c, { scope: 'patient/*.rs' }))).toMatch(/^invalid_scope/);
  });

  it('answers the token request with Cache-Control: no-store and Pragma: no-cache', async () => {
    const { privateKey } = keys.feed;
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', kid: 'feed-1' })
      .setIssuer('lab-feed')
      .setSubject('lab-feed')
      .setAudience(`${origin}/auth/token`)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(privateKey);
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: 'system/Patient.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    const res = await fetch(`${origin}/auth/token`, { method: 'POST', body });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('pragma')).toBe('no-cache');
    const { access_token: issued } = (await res.json()) as { access_token: string };
    // the same assertion again: its jti was seen
    const again = await fetch(`${origin}/auth/token`, { method: 'POST', body });
    expect(again.status).toBe(401);
    expect(await again.json()).toMatchObject({ error: 'invalid_client' });
    // Both left their AuditEvent (BALP user authentication): the login by the client, with the
    // token's jti and scope; the refusal by the client it claimed to be.
    const auditor = await signToken({ sub: 'auditor', scope: 'system/AuditEvent.rs' }, { audience: base, lifetime: 300 });
    const event = async (r: Response) =>
      (await (await fetch(`${base}/AuditEvent/${r.headers.get('x-request-id')}`, { headers: { authorization: `Bearer ${auditor}` } })).json()) as any;
    const login = await event(res);
    expect(login).toMatchObject({ type: { code: '110114' }, subtype: [{ code: '110122' }], action: 'E', outcome: '0' });
    expect(login.agent[0]).toMatchObject({
      who: { identifier: { system: `${origin}/auth`, value: 'lab-feed' } },
      name: 'lab-feed',
      policy: [`urn:hearth:token:${decodeJwt(issued).jti}`, 'urn:hearth:scope:system/Patient.rs'],
    });
    const refused = await event(again);
    expect(refused).toMatchObject({ type: { code: '110114' }, outcome: '4', outcomeDesc: '401 invalid_client' });
    expect(refused.agent[0].name).toBe('lab-feed');
    expect(refused.agent[0].who).toBeUndefined();
  });

  it('refuses assertions that expire more than five minutes ahead, name another audience, or come from an unknown or revoked client', async () => {
    const farExp = await configFor('lab-feed', keys.feed.privateKey, 'feed-1', (p) => {
      p.exp = Math.floor(Date.now() / 1000) + 600;
    });
    expect(await refusal(client.clientCredentialsGrant(farExp, { scope: 'system/Patient.rs' }))).toMatch(/^invalid_client/);
    const wrongAud = await configFor('lab-feed', keys.feed.privateKey, 'feed-1', (p) => {
      p.aud = `${base}`;
    });
    expect(await refusal(client.clientCredentialsGrant(wrongAud, { scope: 'system/Patient.rs' }))).toMatch(/^invalid_client/);
    // the token endpoint URL as audience (SMART), and the issuer (RFC 7523, as this library sends it): both accepted
    const tokenAud = await configFor('lab-feed', keys.feed.privateKey, 'feed-1', (p) => {
      p.aud = `${origin}/auth/token`;
    });
    expect((await client.clientCredentialsGrant(tokenAud, { scope: 'system/Patient.rs' })).scope).toBe('system/Patient.rs');
    const unknown = await configFor('nobody', keys.feed.privateKey, 'feed-1');
    expect(await refusal(client.clientCredentialsGrant(unknown, { scope: 'system/Patient.rs' }))).toMatch(/^invalid_client/);
    // a key the client did not register
    const forged = await configFor('lab-feed', keys.rsa.privateKey, 'feed-1');
    expect(await refusal(client.clientCredentialsGrant(forged, { scope: 'system/Patient.rs' }))).toMatch(/^invalid_client/);
    clientsAdd(config, { id: 'short-lived', jwks: keys.feed.jwks, scope: 'system/Patient.rs' });
    const revoked = await configFor('short-lived', keys.feed.privateKey, 'feed-1');
    expect((await client.clientCredentialsGrant(revoked, { scope: 'system/Patient.rs' })).scope).toBe('system/Patient.rs');
    expect(clientsRevoke(config, 'short-lived')).toBe('revoked client short-lived\n');
    expect(await refusal(client.clientCredentialsGrant(revoked, { scope: 'system/Patient.rs' }))).toMatch(/^invalid_client/);
  });

  it('publishes its endpoints in the SMART configuration, with only the capabilities it has', async () => {
    const smart = (await (await fetch(`${base}/.well-known/smart-configuration`)).json()) as any;
    expect(smart).toMatchObject({
      token_endpoint: `${origin}/auth/token`,
      introspection_endpoint: `${origin}/auth/token/introspection`,
      revocation_endpoint: `${origin}/auth/token/revocation`,
      issuer: `${origin}/auth`,
      jwks_uri: `${origin}/auth/jwks`,
      authorization_endpoint: `${origin}/auth/authorize`,
      grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'client_secret_post', 'none'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384', 'RS256', 'ES256', 'PS384'],
    });
    expect(smart.capabilities).toEqual([
      'launch-ehr',
      'launch-standalone',
      'authorize-post',
      'client-public',
      'client-confidential-symmetric',
      'client-confidential-asymmetric',
      'context-ehr-patient',
      'context-ehr-encounter',
      'context-standalone-patient',
      'sso-openid-connect',
      'permission-offline',
      'permission-online',
      'permission-patient',
      'permission-user',
      'permission-v1',
      'permission-v2',
    ]);
    // the OpenID discovery agrees on the endpoints
    const oidc = (await (await fetch(`${origin}/auth/.well-known/openid-configuration`)).json()) as any;
    const { issuer, jwks_uri, authorization_endpoint, token_endpoint } = smart;
    expect(oidc).toMatchObject({ issuer, jwks_uri, authorization_endpoint, token_endpoint });
    const jwks = (await (await fetch(`${origin}/auth/jwks`)).json()) as any;
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });

  it('answers with the same security headers as the FHIR API, though oidc-provider writes its responses itself', async () => {
    const responses = [
      await fetch(`${origin}/auth/.well-known/openid-configuration`),
      await fetch(`${origin}/auth/jwks`),
      await fetch(`${origin}/auth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) }),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 400]);
    for (const res of responses) {
      expect(Object.fromEntries(res.headers)).toMatchObject({
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        'content-security-policy': 'default-src \'none\';frame-ancestors \'none\'',
        'referrer-policy': 'no-referrer',
        'cross-origin-resource-policy': 'same-origin',
        'cache-control': 'no-store',
      });
    }
  });
});

describe('hearth clients', () => {
  it('registers backend services with public keys and system/ scopes only, lists and revokes them', async () => {
    const cfg = loadConfig({ HEARTH_DATA_DIR: tempDir(), HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '127.0.0.1' });
    const { jwks } = await clientKeys('cli', 'ES384');
    const fails = (a: Parameters<typeof clientsAdd>[1]) => {
      try {
        clientsAdd(cfg, a);
      } catch (err) {
        expect(err).toBeInstanceOf(CliError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(fails({ jwks, scope: 'system/*.rs' })).toMatch(/^--id is required/);
    expect(fails({ id: 'a', scope: 'system/*.rs' })).toMatch(/--jwks <file> or --jwks-uri/);
    expect(fails({ id: 'a', jwks })).toMatch(/^--scope is required/);
    expect(fails({ id: 'a', jwks, scope: 'patient/*.rs' })).toBe('--scope: "patient/*.rs" is not a SMART system/ scope (a backend service acts for no user or patient)');
    expect(fails({ id: 'a', 'jwks-uri': 'http://example.org/jwks', scope: 'system/*.rs' })).toBe('--jwks-uri must be https');
    const priv = join(tempDir(), 'private.json');
    writeFileSync(priv, JSON.stringify({ keys: [{ ...(await exportJWK((await generateKeyPair('ES384', { extractable: true })).privateKey)) }] }));
    expect(fails({ id: 'a', jwks: priv, scope: 'system/*.rs' })).toMatch(/holds a private key/);
    expect(clientsList(cfg)).toBe('no clients registered\n');
    expect(clientsAdd(cfg, { id: 'a', jwks, scope: 'system/*.rs' })).toBe('registered client a (backend service, private_key_jwt) with scopes system/*.rs\n');
    expect(clientsAdd(cfg, { id: 'b', 'jwks-uri': 'https://keys.example.org/jwks.json', scope: 'system/Patient.r' })).toMatch(/^registered client b/);
    expect(fails({ id: 'a', jwks, scope: 'system/*.rs' })).toMatch(/registered already/);
    expect(clientsRevoke(cfg, 'a')).toBe('revoked client a\n');
    expect(() => clientsRevoke(cfg, 'a')).toThrow('client a is revoked already');
    expect(() => clientsRevoke(cfg, 'zzz')).toThrow('no client zzz');
    expect(clientsList(cfg).split('\n').map((l) => l.split('\t').slice(0, 3).join(' ').replace(/revoked \S+/, 'revoked'))).toEqual([
      'a revoked system/*.rs',
      'b active system/Patient.r',
      '',
    ]);
  });
});

describe('the audit trail gates every token', () => {
  it('answers 503 with no token when the AuditEvent of the token request cannot be written', async () => {
    const dataDir = tempDir();
    const server = await createAuthServer({
      baseUrl: 'http://127.0.0.1:9/fhir',
      dataDir,
      config: { accessTokenSeconds: 900 },
      trustProxy: false,
      audit: () => Promise.reject(new Error('disk full')),
      box: secretBox(LocalKeyring.open(join(dataDir, 'keyring.json'), true)),
      roleClaim: 'role',
    });
    const { privateKey, jwks } = await clientKeys('gated', 'ES384');
    clientsAdd(loadConfig({ HEARTH_DATA_DIR: dataDir, HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '127.0.0.1' }), { id: 'gated', jwks, scope: 'system/*.rs' });
    const bare = Fastify();
    await bare.register(authServerRoutes, { server });
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', kid: 'gated-1' })
      .setIssuer('gated')
      .setSubject('gated')
      .setAudience('http://127.0.0.1:9/auth')
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(privateKey);
    const res = await bare.inject({
      method: 'POST',
      url: '/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'system/Patient.rs',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }).toString(),
    });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'the audit trail is unavailable, so nothing was issued' });
    expect(res.body).not.toContain('access_token');
    await bare.close();
    server.close();
  });
});

describe('the token signing keys rotate', () => {
  it('a start after 90 days makes a new key that signs; the one before stays published for what it signed; older ones go', async () => {
    const dataDir = tempDir();
    const day = 86_400_000;
    const t0 = new Date('2026-01-01T00:00:00Z');
    const first = await signingKeys(dataDir, t0);
    expect(first).toHaveLength(1);
    expect(await signingKeys(dataDir, new Date(t0.getTime() + 89 * day))).toEqual(first);
    const second = await signingKeys(dataDir, new Date(t0.getTime() + 91 * day));
    expect(second.map((k) => k.kid)).toEqual([expect.not.stringMatching(first[0].kid!), first[0].kid]);
    const third = await signingKeys(dataDir, new Date(t0.getTime() + 182 * day));
    expect(third.map((k) => k.kid)).toEqual([expect.any(String), second[0].kid]);
    expect(third[0].kid).not.toBe(second[0].kid);
    expect(statSync(join(dataDir, 'auth', 'signing-keys.json')).mode & 0o777).toBe(0o600);
  });
});

describe('hearth users', () => {
  it('adds accounts with a role, who they are, a password from a file or stdin (never the command line); disables; resets the second factor', async () => {
    const cfg = loadConfig({ HEARTH_DATA_DIR: tempDir(), HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '127.0.0.1' });
    const file = join(tempDir(), 'pw');
    writeFileSync(file, 'twelve-chars-or-more\nsecond line ignored\n');
    const fails = async (a: Parameters<typeof usersAdd>[1], stdin?: string) => {
      const err = await usersAdd(cfg, a, () => stdin ?? '').then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CliError);
      return (err as Error).message;
    };
    expect(await fails({ role: 'nurse', 'password-file': file })).toMatch(/^--username is required/);
    expect(await fails({ username: 'a', role: 'wizard', 'password-file': file })).toMatch(/^--role is required: one of administrator, provider/);
    expect(await fails({ username: 'a', role: 'patient', 'password-file': file })).toBe('a patient account needs --fhir-user Patient/<id>: the record it may see');
    expect(await fails({ username: 'a', role: 'nurse', 'fhir-user': 'Device/1', 'password-file': file })).toMatch(/^--fhir-user must be/);
    expect(await fails({ username: 'a', role: 'nurse' })).toMatch(/a password never goes on the command line/);
    expect(await fails({ username: 'a', role: 'nurse', 'password-file': '-' }, 'short')).toBe('the password must have at least 12 characters');
    expect(await fails({ username: 'a', role: 'nurse', 'password-file': file, mfa: 'maybe' })).toMatch(/^--mfa must be/);
    expect(await usersAdd(cfg, { username: 'a', role: 'nurse', 'fhir-user': 'Practitioner/7', 'password-file': file })).toBe(
      'added user a (nurse, Practitioner/7); second factor required: enrolled at the first sign-in\n',
    );
    expect(await usersAdd(cfg, { username: 'b', role: 'auditor', 'password-file': '-', mfa: 'optional' }, () => 'from-standard-input\n')).toMatch(/second factor optional/);
    expect(await fails({ username: 'a', role: 'nurse', 'password-file': file })).toBe('a user "a" exists already');
    // what is stored: an argon2id hash, never the password
    const db = new DatabaseSync(join(cfg.dataDir, 'auth.db'), { readOnly: true });
    const rows = db.prepare('SELECT username, password_hash, role, fhir_user, mfa_required FROM users ORDER BY username').all() as any[];
    db.close();
    expect(rows.map((r) => [r.username, r.role, r.fhir_user, r.mfa_required])).toEqual([['a', 'nurse', 'Practitioner/7', 1], ['b', 'auditor', null, 0]]);
    expect(rows[0].password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(JSON.stringify(rows)).not.toContain('twelve-chars-or-more');
    expect(await usersDisable(cfg, 'a')).toBe('disabled user a\n');
    await expect(usersDisable(cfg, 'a')).rejects.toThrow('user a is disabled already');
    await expect(usersDisable(cfg, 'zed')).rejects.toThrow('no user zed');
    expect(await usersResetMfa(cfg, 'b')).toMatch(/^reset the second factor of b/);
  });
});
