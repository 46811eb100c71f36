import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';
import { Secret, TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientsAdd } from '../../src/cli/clients.ts';
import { usersAdd } from '../../src/cli/users.ts';
import type { Config } from '../../src/config/config.ts';
import { signToken, tempDir } from '../helpers/app.ts';
import { listeningApp } from '../helpers/listening.ts';
import { authorizationUrl as smartAuthorizationUrl, type Launch, publicApp } from '../helpers/smart-app.ts';

// The authorization code flow of the built-in server, as an app drives it with a real OAuth
// client library (openid-client: PKCE, state, the code exchange, refresh) and a user fills in
// the sign-in pages (plain HTTP forms here, cookies kept): password, TOTP enrolment and codes,
// patient picker and consent. The tokens then work on the FHIR API with exactly the access granted.

let app: FastifyInstance;
let config: Config;
let origin: string;
let base: string;
let admin: string;
const REDIRECT = 'http://127.0.0.1:9/callback';
const ids: Record<string, string> = {};

async function createPatient(family: string): Promise<string> {
  const res = await fetch(`${base}/Patient`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/fhir+json' },
    body: JSON.stringify({ resourceType: 'Patient', name: [{ family, given: ['Test'] }], birthDate: '1980-02-03' }),
  });
  return ((await res.json()) as { id: string }).id;
}

async function addUser(username: string, role: string, fhirUser: string, mfa?: string): Promise<void> {
  const file = join(tempDir(), 'password');
  writeFileSync(file, `${username}-correct-horse\n`);
  await usersAdd(config, { username, role, 'fhir-user': fhirUser, 'password-file': file, ...(mfa ? { mfa } : {}) });
}

beforeAll(async () => {
  ({ app, config, origin, base } = await listeningApp());
  admin = await signToken({ sub: 'ops', scope: 'system/*.cruds' }, { audience: base, lifetime: 600 });
  ids.mine = await createPatient('Mine');
  ids.other = await createPatient('Other');
  clientsAdd(config, { id: 'chart-app', type: 'public', 'redirect-uri': REDIRECT, scope: 'patient/*.rs user/*.rs launch launch/patient openid fhirUser offline_access', name: 'Chart App' });
  await addUser('pat', 'patient', `Patient/${ids.mine}`);
  await addUser('doc', 'provider', 'Practitioner/doc-1', 'optional');
});

afterAll(async () => {
  await app?.close();
});

interface Visit {
  status: number;
  url: string;
  html: string;
  location?: string;
}

/** A browser's cookie jar and redirect-following, enough for the sign-in pages. */
class Browser {
  readonly #cookies = new Map<string, string>();
  readonly #origin: string | undefined;

  /** `home`: the server whose redirects it follows (the suite's by default) */
  constructor(home?: string) {
    this.#origin = home;
  }

  async go(url: string, init: { method?: string; form?: Record<string, string | string[]> } = {}): Promise<Visit> {
    let body: URLSearchParams | undefined;
    if (init.form) {
      body = new URLSearchParams();
      for (const [k, v] of Object.entries(init.form)) for (const x of [v].flat()) body.append(k, x);
    }
    const res = await fetch(url, {
      method: init.method ?? (body ? 'POST' : 'GET'),
      body,
      redirect: 'manual',
      headers: { cookie: [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; '), accept: 'text/html' },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.#cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
    const location = res.headers.get('location') ?? undefined;
    const absolute = location && new URL(location, url).href;
    // Follow redirects within the server; stop at the app's redirect URI.
    if (absolute && res.status >= 300 && res.status < 400 && absolute.startsWith(this.#origin ?? origin)) return this.go(absolute);
    return { status: res.status, url, html: await res.text(), location: absolute };
  }
}

const csrf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
const action = (html: string) => new URL(/<form method="post" action="([^"]+)"/.exec(html)![1].replaceAll('&#47;', '/'), origin).href;
const totp = (secret: string) => new TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: Secret.fromBase32(secret) });

/** The code at the app's redirect URI, exchanged as the app would (its PKCE verifier, its state). */
function exchange(c: client.Configuration, page: Visit, launch: Launch) {
  return client.authorizationCodeGrant(c, new URL(page.location!), { pkceCodeVerifier: launch.verifier, expectedState: launch.state });
}

const appConfig = () => publicApp(origin, 'chart-app');

/** This suite's app asking this suite's server. */
const authorizationUrl = (c: client.Configuration, scope: string, extra: Record<string, string> = {}) =>
  smartAuthorizationUrl(c, { redirect: REDIRECT, aud: base, scope, extra });

describe('the authorization code flow with PKCE, through the sign-in pages', () => {
  let secret = '';

  it('a patient: password, TOTP enrolment, consent; the token carries the patient and reaches only that record; refresh rotates', async () => {
    const c = await appConfig();
    const launch = await authorizationUrl(c, 'patient/*.rs launch/patient openid fhirUser offline_access');
    const b = new Browser();
    let page = await b.go(launch.url.href);
    expect(page.status).toBe(200);
    expect(page.html).toContain('<h1>Sign in</h1>');
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'pat', password: 'pat-correct-horse' } });
    expect(page.html).toContain('Set up your second factor');
    secret = /Key: <code class="key">([A-Z2-7]+)<\/code>/.exec(page.html)![1];
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), code: totp(secret).generate() } });
    expect(page.html).toContain('Allow access?');
    expect(page.html).toContain('Chart App');
    const scopes = [...page.html.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]);
    expect(scopes).toEqual(['patient/*.rs', 'launch/patient', 'openid', 'fhirUser', 'offline_access']);
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), decision: 'allow', scope: scopes } });
    expect(page.location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
    const tokens = await exchange(c, page, launch);
    expect(tokens.patient).toBe(ids.mine);
    expect(tokens.scope?.split(' ').sort()).toEqual(['fhirUser', 'launch/patient', 'offline_access', 'openid', 'patient/*.rs']);
    expect(tokens.expires_in).toBe(900);
    expect(tokens.claims()).toMatchObject({ sub: 'pat', fhirUser: `Patient/${ids.mine}` });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: base, patient: ids.mine, role: 'patient', fhirUser: `Patient/${ids.mine}`, client_id: 'chart-app' });
    const read = (id: string, token: string) => fetch(`${base}/Patient/${id}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await read(ids.mine, tokens.access_token)).status).toBe(200);
    expect((await read(ids.other, tokens.access_token)).status).toBe(404);
    // Refresh: a new pair; the used refresh token presented again revokes the whole family.
    const first = tokens.refresh_token!;
    const next = await client.refreshTokenGrant(c, first);
    expect(next.refresh_token).toBeDefined();
    expect(next.refresh_token).not.toBe(first);
    expect((await read(ids.mine, next.access_token)).status).toBe(200);
    await expect(client.refreshTokenGrant(c, first)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(client.refreshTokenGrant(c, next.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('a practitioner picks the patient; scopes left unchecked are not granted (the request sent as a form: authorize-post)', async () => {
    const c = await appConfig();
    const launch = await authorizationUrl(c, 'user/*.rs launch/patient openid fhirUser');
    const b = new Browser();
    let page = await b.go(`${launch.url.origin}${launch.url.pathname}`, { form: Object.fromEntries(launch.url.searchParams) });
    expect(page.html).toContain('<h1>Sign in</h1>');
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'doc', password: 'doc-correct-horse' } });
    expect(page.html).toContain('Which patient?');
    expect(page.html).toContain('Test Mine (born 1980-02-03)');
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), decision: 'allow', scope: ['user/*.rs', 'launch/patient', 'openid'], patient: ids.other } });
    const tokens = await exchange(c, page, launch);
    expect(tokens.patient).toBe(ids.other);
    expect(tokens.scope?.split(' ').sort()).toEqual(['launch/patient', 'openid', 'user/*.rs']);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ role: 'provider', fhirUser: 'Practitioner/doc-1' });
    // fhirUser left unchecked: the ID token does not name the user's record
    expect(tokens.claims()).not.toHaveProperty('fhirUser');
    expect(tokens.refresh_token).toBeUndefined();
    // the same code a second time
    await expect(client.authorizationCodeGrant(c, new URL(page.location!), { pkceCodeVerifier: launch.verifier, expectedState: launch.state })).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses: no PKCE, PKCE plain, a wrong verifier, a reused code, another redirect URI, an aud that is not this server', async () => {
    const c = await appConfig();
    const b = new Browser();
    const plain = await authorizationUrl(c, 'patient/*.rs', { code_challenge_method: 'plain' });
    expect((await b.go(plain.url.href)).location).toMatch(/error=invalid_request/);
    const none = new URL(plain.url);
    none.searchParams.delete('code_challenge');
    none.searchParams.delete('code_challenge_method');
    expect((await b.go(none.href)).location).toMatch(/error=invalid_request/);
    const otherRedirect = new URL(plain.url);
    otherRedirect.searchParams.set('redirect_uri', 'http://127.0.0.1:9/elsewhere');
    expect((await b.go(otherRedirect.href)).status).toBe(400);
    const wrongAud = await authorizationUrl(c, 'patient/*.rs', { aud: 'https://other.example.org/fhir' });
    const refused = await b.go(wrongAud.url.href);
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('aud must be this FHIR server');
    const refusedPost = await b.go(`${wrongAud.url.origin}${wrongAud.url.pathname}`, { form: Object.fromEntries(wrongAud.url.searchParams) });
    expect(refusedPost.status).toBe(400);
    expect(refusedPost.html).toContain('aud must be this FHIR server');
    // a code, exchanged with the wrong verifier, then (once right) a second time
    const launch = await authorizationUrl(c, 'patient/*.rs launch/patient openid');
    let page = await b.go(launch.url.href);
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'doc', password: 'doc-correct-horse' } });
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), decision: 'allow', scope: ['patient/*.rs', 'launch/patient', 'openid'], patient: ids.mine } });
    const callback = new URL(page.location!);
    await expect(client.authorizationCodeGrant(c, callback, { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: launch.state })).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('EHR launch: a trusted EHR registers the context, the app presents its launch value, the token carries that patient', async () => {
    const ehrKeys = await generateKeyPair('ES384', { extractable: true });
    const jwks = join(tempDir(), 'ehr.jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(ehrKeys.publicKey)), alg: 'ES384', kid: 'ehr-1' }] }));
    clientsAdd(config, { id: 'the-ehr', jwks, scope: 'system/Patient.r', ehr: true });
    clientsAdd(config, { id: 'not-an-ehr', jwks, scope: 'system/Patient.r' });
    const tokenOf = async (clientId: string) => {
      const c = await client.discovery(new URL(`${origin}/auth`), clientId, undefined, client.PrivateKeyJwt({ key: ehrKeys.privateKey, kid: 'ehr-1' }), {
        execute: [client.allowInsecureRequests],
      });
      return (await client.clientCredentialsGrant(c, { scope: 'system/Patient.r' })).access_token;
    };
    const register = async (token: string, body: unknown) =>
      fetch(`${origin}/auth/launch`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    // only a client registered as an EHR, with a valid token, and a patient id
    expect((await register(await tokenOf('not-an-ehr'), { patient: ids.other })).status).toBe(403);
    expect((await register('not.a.token', { patient: ids.other })).status).toBe(401);
    const ehrToken = await tokenOf('the-ehr');
    expect((await register(ehrToken, { patient: 'bad id!' })).status).toBe(400);
    const registered = await register(ehrToken, { patient: ids.other, encounter: 'enc-1' });
    expect(registered.status).toBe(201);
    const { launch } = (await registered.json()) as { launch: string };
    const c = await appConfig();
    const flow = await authorizationUrl(c, 'launch user/*.rs openid', { launch });
    const b = new Browser();
    let page = await b.go(flow.url.href);
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'doc', password: 'doc-correct-horse' } });
    expect(page.html).toContain('Allow access?');
    expect(page.html).not.toContain('Which patient?');
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), decision: 'allow', scope: ['launch', 'user/*.rs', 'openid'] } });
    const tokens = await exchange(c, page, flow);
    expect(tokens.patient).toBe(ids.other);
    expect(tokens.encounter).toBe('enc-1');
    expect(tokens.scope?.split(' ').sort()).toEqual(['launch', 'openid', 'user/*.rs']);
    // an unknown launch value is refused before any sign-in
    const bogus = await authorizationUrl(c, 'launch user/*.rs openid', { launch: 'no-such-launch' });
    page = await new Browser().go(bogus.url.href);
    expect(page.status).toBe(400);
    expect(page.html).toContain('the launch from the EHR is unknown or expired');
  });

  it('a confidential app authenticates its code exchange with its secret; a wrong secret is invalid_client', async () => {
    const out = clientsAdd(config, { id: 'server-app', type: 'confidential', 'redirect-uri': REDIRECT, scope: 'user/*.rs openid' });
    const secret = /client secret \(shown once\): (\S+)/.exec(out)![1];
    // at rest only sealed: not in the auth server's database file (nor its WAL)
    const files = ['auth.db', 'auth.db-wal'].map((f) => join(config.dataDir, f)).filter((f) => existsSync(f));
    for (const f of files) expect(readFileSync(f).toString('latin1')).not.toContain(secret);
    const withSecret = (s: string) =>
      client.discovery(new URL(`${origin}/auth`), 'server-app', { id_token_signed_response_alg: 'ES256' }, client.ClientSecretBasic(s), { execute: [client.allowInsecureRequests] });
    const c = await withSecret(secret);
    const signIn = async () => {
      const flow = await authorizationUrl(c, 'user/*.rs openid');
      const b = new Browser();
      let page = await b.go(flow.url.href);
      page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'doc', password: 'doc-correct-horse' } });
      page = await b.go(action(page.html), { form: { csrf: csrf(page.html), decision: 'allow', scope: ['user/*.rs', 'openid'] } });
      return { flow, page };
    };
    const ok = await signIn();
    expect((await exchange(c, ok.page, ok.flow)).scope?.split(' ').sort()).toEqual(['openid', 'user/*.rs']);
    const bad = await signIn();
    // (a 401 with a WWW-Authenticate challenge, which this library reports as such)
    const refused = await exchange(await withSecret(`${secret}x`), bad.page, bad.flow).catch((e: unknown) => e as { status: number; cause: unknown });
    expect(refused.status).toBe(401);
    expect(JSON.stringify(refused.cause)).toContain('"error":"invalid_client"');
  });

  it('a sign-in step with no interaction behind it (no cookie, unknown or finished) is refused, saying nothing of the internals', async () => {
    for (const [method, path] of [['GET', '/auth/interaction/abc'], ['POST', '/auth/interaction/abc/login'], ['POST', '/auth/interaction/abc/mfa'], ['POST', '/auth/interaction/abc/consent']]) {
      const res = await fetch(`${origin}${path}`, { method, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: method === 'POST' ? 'csrf=x' : undefined });
      const text = await res.text();
      expect([method, path, res.status]).toEqual([method, path, 400]);
      expect(text).not.toMatch(/at .*\.(js|ts):\d+|node_modules/);
    }
  });

  it('an app introspects and revokes its refresh token: once revoked it is inactive and no longer refreshes', async () => {
    const c = await appConfig();
    const flow = await authorizationUrl(c, 'user/*.rs openid offline_access');
    const b = new Browser();
    let page = await b.go(flow.url.href);
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'doc', password: 'doc-correct-horse' } });
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), decision: 'allow', scope: ['user/*.rs', 'openid', 'offline_access'] } });
    const tokens = await exchange(c, page, flow);
    expect(tokens.refresh_token).toBeDefined();
    // introspection tells the app its refresh token is active, for whom; then not, once revoked
    expect(await client.tokenIntrospection(c, tokens.refresh_token!)).toMatchObject({ active: true, client_id: 'chart-app', sub: 'doc' });
    await client.tokenRevocation(c, tokens.refresh_token!);
    expect(await client.tokenIntrospection(c, tokens.refresh_token!)).toMatchObject({ active: false });
    await expect(client.refreshTokenGrant(c, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('a user who denies sends the app back access_denied, and nothing is issued', async () => {
    const c = await appConfig();
    const launch = await authorizationUrl(c, 'user/*.rs openid');
    const b = new Browser();
    let page = await b.go(launch.url.href);
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'doc', password: 'doc-correct-horse' } });
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), decision: 'deny' } });
    const back = new URL(page.location!);
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe(launch.state);
    expect(back.searchParams.get('code')).toBeNull();
  });

  it('a wrong second-factor code is refused, a spent one too; a fresh one passes', async () => {
    await addUser('nurse1', 'nurse', 'Practitioner/n-1');
    const c = await appConfig();
    const b = new Browser();
    let page = await b.go((await authorizationUrl(c, 'user/*.rs openid')).url.href);
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), username: 'nurse1', password: 'nurse1-correct-horse' } });
    const key = /Key: <code class="key">([A-Z2-7]+)<\/code>/.exec(page.html)![1];
    const enrolCode = totp(key).generate();
    page = await b.go(action(page.html), { form: { csrf: csrf(page.html), code: enrolCode } });
    expect(page.html).toContain('Allow access?');
    // signed in again: now the code of the enrolled key is asked for, and a wrong one refused
    const again = new Browser();
    page = await again.go((await authorizationUrl(c, 'user/*.rs openid')).url.href);
    page = await again.go(action(page.html), { form: { csrf: csrf(page.html), username: 'nurse1', password: 'nurse1-correct-horse' } });
    expect(page.html).toContain('<h1>Second factor</h1>');
    const wrong = String((Number(totp(key).generate()) + 1) % 1_000_000).padStart(6, '0');
    const refused = await again.go(action(page.html), { form: { csrf: csrf(page.html), code: wrong } });
    expect(refused.status).toBe(401);
    expect(refused.html).toContain('That code is not right.');
    // the code the enrolment used is spent: the same code again is refused (RFC 6238 §5.2)
    const replayed = await again.go(action(refused.html), { form: { csrf: csrf(refused.html), code: enrolCode } });
    expect(replayed.status).toBe(401);
    // the next step's code (a drift the server allows) passes, once
    const next = totp(key).generate({ timestamp: Date.now() + 30_000 });
    page = await again.go(action(replayed.html), { form: { csrf: csrf(replayed.html), code: next } });
    expect(page.html).toContain('Allow access?');
    // each step of the account's sign-ins left its AuditEvent, in order
    const auditor = await signToken({ sub: 'auditor', scope: 'system/AuditEvent.rs' }, { audience: base, lifetime: 300 });
    const events = (await (await fetch(`${base}/AuditEvent?type=110114&_count=200&_sort=date`, { headers: { authorization: `Bearer ${auditor}` } })).json()) as any;
    const steps = events.entry.map((e: any) => e.resource).filter((e: any) => e.agent[0].name === 'nurse1').map((e: any) => e.outcomeDesc ?? 'ok');
    expect(steps).toEqual(['ok', 'ok', 'ok', '401 mfa-failure', '401 mfa-failure', 'ok']);
  });

  it('wrong passwords lock the account after five; each attempt is audited', async () => {
    const c = await appConfig();
    const launch = await authorizationUrl(c, 'patient/*.rs launch/patient openid');
    const b = new Browser();
    const page = await b.go(launch.url.href);
    const form = page.html;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await b.go(action(form), { form: { csrf: csrf(form), username: 'pat', password: 'wrong-password-123' } })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
    const locked = await b.go(action(form), { form: { csrf: csrf(form), username: 'pat', password: 'pat-correct-horse' } });
    expect(locked.status).toBe(401);
    expect(locked.html).toContain('This account is locked');
    // a forged form (no CSRF token) is refused before anything is checked
    expect((await b.go(action(form), { form: { username: 'doc', password: 'doc-correct-horse' } })).status).toBe(403);
    const auditor = await signToken({ sub: 'auditor', scope: 'system/AuditEvent.rs' }, { audience: base, lifetime: 300 });
    const events = (await (await fetch(`${base}/AuditEvent?type=110114&_count=100`, { headers: { authorization: `Bearer ${auditor}` } })).json()) as any;
    const failures = events.entry.map((e: any) => e.resource).filter((e: any) => e.agent[0].name === 'pat' && e.outcome !== '0');
    expect(failures.map((e: any) => e.outcomeDesc)).toEqual(expect.arrayContaining(['401 password-failure', '423 password-locked']));
    expect(page.status).toBe(200);
  });
});

describe('the patient picker is an access of the user\'s, under the one policy', () => {
  it('with HEARTH_AUTH_RELATIONSHIP, offers only the practitioner\'s patients; showing them is audited', async () => {
    const server = await listeningApp({ HEARTH_AUTH_RELATIONSHIP: 'true' });
    try {
      const token = await signToken({ sub: 'ops', scope: 'system/*.cruds' }, { audience: server.base, lifetime: 600 });
      const make = async (family: string, gp?: string) => {
        const res = await fetch(`${server.base}/Patient`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
          body: JSON.stringify({ resourceType: 'Patient', name: [{ family, given: ['Pick'] }], ...(gp ? { generalPractitioner: [{ reference: gp }] } : {}) }),
        });
        return ((await res.json()) as { id: string }).id;
      };
      const mine = await make('Panelmine', 'Practitioner/gp-1');
      await make('Notmine');
      clientsAdd(server.config, { id: 'picker-app', type: 'public', 'redirect-uri': REDIRECT, scope: 'user/*.rs launch/patient openid' });
      const password = join(tempDir(), 'pw');
      writeFileSync(password, 'gp-correct-horse-battery\n');
      await usersAdd(server.config, { username: 'gp', role: 'provider', 'fhir-user': 'Practitioner/gp-1', 'password-file': password, mfa: 'optional' });
      const c = await publicApp(server.origin, 'picker-app');
      const { url } = await smartAuthorizationUrl(c, { redirect: REDIRECT, aud: server.base, scope: 'user/*.rs launch/patient openid' });
      const b = new Browser(server.origin);
      let page = await b.go(url.href);
      page = await b.go(new URL(/<form method="post" action="([^"]+)"/.exec(page.html)![1], server.origin).href, {
        form: { csrf: csrf(page.html), username: 'gp', password: 'gp-correct-horse-battery' },
      });
      expect(page.html).toContain('Which patient?');
      expect([...page.html.matchAll(/name="patient" value="([^"]+)"/g)].map((m) => m[1])).toEqual([mine]);
      const auditor = await signToken({ sub: 'auditor', scope: 'system/AuditEvent.rs' }, { audience: server.base, lifetime: 300 });
      const events = (await (await fetch(`${server.base}/AuditEvent?patient=Patient/${mine}&_count=50`, { headers: { authorization: `Bearer ${auditor}` } })).json()) as any;
      const shown = events.entry.map((e: any) => e.resource).filter((e: any) => e.agent[0].name === 'gp');
      expect(shown.map((e: any) => [e.subtype[0].code, e.outcome])).toEqual([['search-type', '0']]);
    } finally {
      await server.app.close();
    }
  });
});
