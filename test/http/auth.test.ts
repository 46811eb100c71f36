import { createServer } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { type InvalidTokenError, JwtVerifier } from '../../src/auth/token-verifier.ts';
import { loadConfig } from '../../src/config/config.ts';
import { BASE, create, freePort, ids, ISSUER, JWKS_FILE, json, type TestApp, testApp } from '../helpers/app.ts';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('token verification: every failure is a 401 that says no more than RFC 6750 allows', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
  });
  const get = (authorization: string) => t.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization } });

  it('refuses a request with no token, asking for one', async () => {
    const res = await get('');
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="hearth"');
    expect(json(res).issue[0]).toEqual({ severity: 'error', code: 'login', diagnostics: 'a bearer access token is required' });
  });

  const cases: [string, () => Promise<string>][] = [
    ['expired', () => t.token({ scope: 'system/*.rs' }, { now: new Date(t.now().getTime() - 7200_000), lifetime: 600 })],
    ['not yet valid', async () => {
      const now = Math.floor(t.now().getTime() / 1000);
      return new SignJWT({ scope: 'system/*.rs' }).setProtectedHeader({ alg: 'ES256', kid: 'test-key-1' }).setIssuer(ISSUER).setAudience(BASE)
        .setIssuedAt(now).setNotBefore(now + 600).setExpirationTime(now + 900).sign((await import('../helpers/app.ts')).TEST_PRIVATE_KEY);
    }],
    ['issued in the future', () => t.token({ scope: 'system/*.rs' }, { now: new Date(t.now().getTime() + 600_000) })],
    ['wrong issuer', () => t.token({ scope: 'system/*.rs' }, { issuer: 'https://evil.example.org' })],
    ['wrong audience', () => t.token({ scope: 'system/*.rs' }, { audience: 'https://other.example.org/fhir' })],
    ['lifetime beyond the maximum', () => t.token({ scope: 'system/*.rs' }, { lifetime: 7200 })],
    ['alg none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: ISSUER, aud: BASE, scope: 'system/*.cruds', iat: Math.floor(t.now().getTime() / 1000), exp: Math.floor(t.now().getTime() / 1000) + 600 })}.`],
    ['HS256 signed with the public key', async () => {
      const { JWKS_FILE } = await import('../helpers/app.ts');
      const { readFileSync } = await import('node:fs');
      const secret = new TextEncoder().encode(readFileSync(JWKS_FILE, 'utf8'));
      const now = Math.floor(t.now().getTime() / 1000);
      return new SignJWT({ scope: 'system/*.cruds' }).setProtectedHeader({ alg: 'HS256', kid: 'test-key-1' }).setIssuer(ISSUER).setAudience(BASE)
        .setIssuedAt(now).setExpirationTime(now + 600).sign(secret);
    }],
    ['unknown kid', async () => {
      const { privateKey } = await generateKeyPair('ES256');
      const now = Math.floor(t.now().getTime() / 1000);
      return new SignJWT({ scope: 'system/*.cruds' }).setProtectedHeader({ alg: 'ES256', kid: 'someone-else' }).setIssuer(ISSUER).setAudience(BASE)
        .setIssuedAt(now).setExpirationTime(now + 600).sign(privateKey);
    }],
    ['signed by another key under the trusted kid', async () => {
      const { privateKey } = await generateKeyPair('ES256');
      const now = Math.floor(t.now().getTime() / 1000);
      return new SignJWT({ scope: 'system/*.cruds' }).setProtectedHeader({ alg: 'ES256', kid: 'test-key-1' }).setIssuer(ISSUER).setAudience(BASE)
        .setIssuedAt(now).setExpirationTime(now + 600).sign(privateKey);
    }],
    ['tampered payload', async () => {
      const [h, , s] = (await t.token({ scope: 'patient/*.rs', patient: 'a' })).split('.');
      return `${h}.${b64({ iss: ISSUER, aud: BASE, scope: 'system/*.cruds', iat: Math.floor(t.now().getTime() / 1000), exp: Math.floor(t.now().getTime() / 1000) + 600 })}.${s}`;
    }],
    ['tampered signature', async () => {
      const tok = await t.token({ scope: 'system/*.rs' });
      return `${tok.slice(0, -4)}${tok.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    }],
    ['no exp claim', async () => new SignJWT({ scope: 'system/*.rs' }).setProtectedHeader({ alg: 'ES256', kid: 'test-key-1' }).setIssuer(ISSUER)
      .setAudience(BASE).setIssuedAt(Math.floor(t.now().getTime() / 1000)).sign((await import('../helpers/app.ts')).TEST_PRIVATE_KEY)],
    ['not a JWT', async () => 'abc.def.ghi'],
  ];

  it.each(cases)('%s → 401 invalid_token', async (_name, make) => {
    const res = await get(`Bearer ${await make()}`);
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="hearth", error="invalid_token"');
    expect(json(res).issue[0]).toEqual({ severity: 'error', code: 'login', diagnostics: 'the access token is invalid or expired' });
  });

  it('logs why a token was refused, by claim: aud expected X, got Y; exp passed at T', async () => {
    const verifier = new JwtVerifier(t.config.auth, t.config.baseUrl, t.now);
    const reason = (token: string) => verifier.verify(token).then(() => 'accepted', (err: InvalidTokenError) => err.reason);
    expect(await reason(await t.token({ scope: 'system/*.rs' }, { audience: 'https://127.0.0.1:9999/fhir' }))).toBe(
      `ERR_JWT_CLAIM_VALIDATION_FAILED: aud expected ${BASE}, got "https://127.0.0.1:9999/fhir"`,
    );
    const expired = await t.token({ scope: 'system/*.rs' }, { lifetime: 60 });
    t.tick(10 * 60_000);
    const exp = JSON.parse(Buffer.from(expired.split('.')[1], 'base64url').toString()).exp as number;
    expect(await reason(expired)).toBe(`ERR_JWT_EXPIRED: exp ${new Date(exp * 1000).toISOString()} has passed`);
  });

  it.each(['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b', 'bearer', 'Token abc'])('Authorization "%s" → 401', async (h) => {
    const res = await get(h);
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('accepts a valid token (scheme is case-insensitive) and still serves metadata and discovery without one', async () => {
    const tok = await t.token({ scope: 'system/*.rs' });
    expect((await get(`bearer ${tok}`)).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/fhir/metadata', headers: { authorization: '' } })).statusCode).toBe(200);
    const smart = await t.app.inject({ method: 'GET', url: '/fhir/.well-known/smart-configuration', headers: { authorization: '' } });
    expect(smart.statusCode).toBe(200);
    // the built-in authorization server, on by default beside the external issuer, is what discovery describes
    expect(json(smart)).toMatchObject({
      token_endpoint: 'http://127.0.0.1:8080/auth/token',
      capabilities: expect.arrayContaining(['launch-standalone', 'permission-v1', 'permission-v2', 'permission-patient']),
    });
    // With it switched off, the external issuer: no endpoints named, so no launch and no backend
    // services listed, and no issuer/jwks_uri without sso-openid-connect.
    const external = await testApp({ HEARTH_AUTH_SERVER: 'false' });
    const discovery = async (x: TestApp) => json(await x.app.inject({ method: 'GET', url: '/fhir/.well-known/smart-configuration', headers: { authorization: '' } }));
    const described = await discovery(external);
    expect(described.capabilities).toEqual(['permission-patient', 'permission-user', 'permission-v1', 'permission-v2']);
    expect(described.token_endpoint).toBeUndefined();
    expect(described.issuer).toBeUndefined();
    expect(described.grant_types_supported).toEqual([]);
    // endpoints and capabilities configured for it: listed as configured
    const issuers = JSON.stringify([{
      issuer: ISSUER,
      jwks: JWKS_FILE,
      authorization_endpoint: 'https://issuer.test/authorize',
      token_endpoint: 'https://issuer.test/token',
      capabilities: ['launch-standalone', 'client-public', 'sso-openid-connect', 'permission-v2'],
    }]);
    // (the helper's single issuer unset: the list names it, with its endpoints)
    const unset = { HEARTH_AUTH_ISSUER: undefined, HEARTH_AUTH_JWKS: undefined } as unknown as Record<string, string>;
    const configured = await discovery(await testApp({ HEARTH_AUTH_SERVER: 'false', ...unset, HEARTH_AUTH_ISSUERS: issuers }));
    expect(configured).toMatchObject({
      issuer: ISSUER,
      authorization_endpoint: 'https://issuer.test/authorize',
      token_endpoint: 'https://issuer.test/token',
      capabilities: ['launch-standalone', 'client-public', 'sso-openid-connect', 'permission-v2'],
      grant_types_supported: ['authorization_code'],
    });
    expect(() => loadConfig({ HEARTH_AUTH_ISSUERS: JSON.stringify([{ issuer: ISSUER, jwks: JWKS_FILE, capabilities: ['teleport'] }]) })).toThrow(
      'HEARTH_AUTH_ISSUERS: entry 0 capabilities must be a list of SMART capabilities; "teleport" is none',
    );
    expect((await external.app.inject({ method: 'POST', url: '/auth/token', headers: { authorization: '' } })).statusCode).toBe(404);
    const cs = json(await t.app.inject({ method: 'GET', url: '/fhir/metadata', headers: { authorization: '' } }));
    expect(cs.rest[0].security.service[0].coding[0].code).toBe('SMART-on-FHIR');
  });

  it('refuses two Authorization headers, a valid one first, with 400 — in process and on the wire — and audits it', async () => {
    const good = `Bearer ${await t.token({ scope: 'system/*.rs' })}`;
    for (const pair of [[good, good], [good, 'Bearer x.y.z'], [good, '']]) {
      const res = await t.raw.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: pair as unknown as string } });
      expect(res.statusCode).toBe(400);
      expect(json(res).issue[0]).toEqual({ severity: 'error', code: 'invalid', diagnostics: 'Authorization may appear only once' });
      const event = await t.store.read('AuditEvent', res.headers['x-request-id'] as string);
      expect(event?.resource).toMatchObject({ outcome: '4', outcomeDesc: '400 invalid' });
    }
    const { connect } = await import('node:net');
    await t.raw.listen({ port: 0, host: '127.0.0.1' });
    try {
      const port = (t.raw.server.address() as { port: number }).port;
      const reply = await new Promise<string>((resolve, reject) => {
        let got = '';
        const socket = connect(port, '127.0.0.1', () =>
          socket.write(`GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${good}\r\nAuthorization: ${good}\r\nConnection: close\r\n\r\n`));
        socket.on('data', (d) => {
          got += d;
        });
        socket.on('end', () => resolve(got));
        socket.on('error', reject);
      });
      expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
      expect(reply).toContain('Authorization may appear only once');
    } finally {
      await t.raw.close();
    }
  });

  it('refuses everything but metadata when no issuer is configured', async () => {
    const none = await testApp({ HEARTH_AUTH_ISSUER: '', HEARTH_AUTH_JWKS: '' }).catch((e) => e);
    expect(String(none)).toContain('HEARTH_AUTH_ISSUER');
  });
});

describe('scopes and the decision: denied requests never reach the store', () => {
  it('answers 403 with insufficient_scope, and the store is never called', async () => {
    const t = await testApp();
    const p = await create(t.app, { resourceType: 'Patient', name: [{ family: 'X' }] });
    const calls = t.store.calls;
    calls.length = 0;
    const readOnly = await t.token({ scope: 'user/Patient.rs' });
    const auth = { authorization: `Bearer ${readOnly}` };
    const denied = [
      t.app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...auth, 'content-type': 'application/fhir+json' }, payload: '{"resourceType":"Patient"}' }),
      t.app.inject({ method: 'PUT', url: `/fhir/Patient/${p.id}`, headers: { ...auth, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(p) }),
      t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${p.id}`, headers: auth }),
      t.app.inject({ method: 'GET', url: '/fhir/Observation', headers: auth }),
      t.app.inject({ method: 'GET', url: `/fhir/Observation/${p.id}`, headers: auth }),
      t.app.inject({ method: 'GET', url: '/fhir/AuditEvent', headers: auth }),
    ];
    for (const res of await Promise.all(denied)) {
      expect(res.statusCode).toBe(403);
      expect(json(res).issue[0].code).toBe('forbidden');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="hearth", error="insufficient_scope", scope="user\/\w+\.[cruds]"$/);
    }
    expect(calls).toEqual([]);
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}`, headers: auth })).statusCode).toBe(200);
    expect(calls).toEqual(['read']);
  });

  it('needs s as well as c for a conditional create', async () => {
    const t = await testApp();
    const tok = await t.token({ scope: 'user/Patient.c' });
    const headers = { authorization: `Bearer ${tok}`, 'content-type': 'application/fhir+json' };
    const plain = await t.app.inject({ method: 'POST', url: '/fhir/Patient', headers, payload: '{"resourceType":"Patient"}' });
    expect(plain.statusCode).toBe(201);
    const cond = await t.app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...headers, 'if-none-exist': 'identifier=a|b' }, payload: '{"resourceType":"Patient"}' });
    expect(cond.statusCode).toBe(403);
  });
});

describe('patient context: patient A never reaches patient B', () => {
  let t: TestApp;
  let a: string;
  let b: string;
  let oa: string;
  let ob: string;
  let auth: Record<string, string>;
  const CANARIES = ['Bcanaryfamily', 'Bsecretvalue', '1911-11-11'];
  // Resource content only: a self link may echo what the client itself typed.
  const noB = (body: string) => {
    const parsed = JSON.parse(body);
    const content = JSON.stringify(parsed.resourceType === 'Bundle' ? (parsed.entry ?? []) : parsed);
    for (const c of CANARIES) expect(content).not.toContain(c);
  };

  beforeAll(async () => {
    t = await testApp();
    a = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Afamily' }] })).id;
    b = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Bcanaryfamily' }], birthDate: '1911-11-11' })).id;
    oa = (await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${a}` }, valueString: 'A value' })).id;
    ob = (await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${b}` }, valueString: 'Bsecretvalue' })).id;
    await t.app.inject({ method: 'PUT', url: `/fhir/Observation/${ob}`, headers: { 'content-type': 'application/fhir+json' }, payload: JSON.stringify({ resourceType: 'Observation', id: ob, status: 'amended', code: { text: 'x' }, subject: { reference: `Patient/${b}` }, valueString: 'Bsecretvalue' }) });
    auth = { authorization: `Bearer ${await t.token({ sub: 'patient-a', patient: a, scope: 'patient/*.cruds launch/patient openid' })}` };
  });

  const as = (method: 'GET' | 'PUT' | 'DELETE' | 'POST', url: string, body?: unknown) =>
    t.app.inject({
      method,
      url: url.replaceAll('{a}', a).replaceAll('{b}', b).replaceAll('{oa}', oa).replaceAll('{ob}', ob),
      headers: { ...auth, ...(body ? { 'content-type': 'application/fhir+json' } : {}) },
      ...(body ? { payload: JSON.stringify(body).replaceAll('{a}', a).replaceAll('{b}', b).replaceAll('{ob}', ob) } : {}),
    });

  it.each([
    ['read B', 'GET', '/fhir/Patient/{b}'],
    ['read B\'s observation', 'GET', '/fhir/Observation/{ob}'],
    ['vread B\'s observation', 'GET', '/fhir/Observation/{ob}/_history/1'],
    ['B\'s history', 'GET', '/fhir/Patient/{b}/_history'],
    ['B\'s observation history', 'GET', '/fhir/Observation/{ob}/_history'],
    ['delete B\'s observation', 'DELETE', '/fhir/Observation/{ob}'],
  ] as const)('%s → 404, nothing of B', async (_n, method, url) => {
    const res = await as(method, url);
    expect(res.statusCode).toBe(404);
    expect(json(res).issue[0].code).toBe('not-found');
    noB(res.body);
  });

  it.each([
    ['search observations', '/fhir/Observation', ['oa']],
    ['search by B as subject', '/fhir/Observation?subject=Patient/{b}', []],
    ['search patients', '/fhir/Patient', ['a']],
    ['search B by id', '/fhir/Patient?_id={b}', []],
    ['chain into B', '/fhir/Observation?subject:Patient.family=Bcanaryfamily', []],
    ['chain by birthdate', '/fhir/Observation?patient.birthdate=1911-11-11', []],
    ['type history', '/fhir/Observation/_history', ['oa']],
  ])('%s sees only A', async (_n, url, expected) => {
    const res = await as('GET', url);
    expect(res.statusCode).toBe(200);
    const idOf: Record<string, string> = { a, oa };
    const got = (json(res).entry ?? []).map((e: any) => e.resource?.id);
    expect(got.sort()).toEqual(expected.map((k) => idOf[k]).sort());
    noB(res.body);
  });

  it('_include and _revinclude stay inside the compartment', async () => {
    const inc = await as('GET', '/fhir/Observation?_include=Observation:subject');
    expect(json(inc).entry.map((e: any) => e.resource.id).sort()).toEqual([oa, a].sort());
    noB(inc.body);
    const rev = await as('GET', '/fhir/Patient?_revinclude=Observation:subject');
    expect(json(rev).entry.map((e: any) => e.resource.id).sort()).toEqual([a, oa].sort());
    noB(rev.body);
    // even when A's own resource points at B
    await as('POST', '/fhir/Patient', { resourceType: 'Patient', id: 'x', link: [{ other: { reference: 'Patient/{b}' }, type: 'seealso' }] });
    const withB = await as('GET', '/fhir/Observation?_include=Observation:subject&_count=50');
    noB(withB.body);
  });

  it('cannot write into B: 403 for content outside the compartment, 404 for B resources', async () => {
    const steal = await as('PUT', '/fhir/Observation/{ob}', { resourceType: 'Observation', id: '{ob}', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/{a}' } });
    expect(steal.statusCode).toBe(404);
    const intoB = await as('POST', '/fhir/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/{b}' } });
    expect(intoB.statusCode).toBe(403);
    expect(json(intoB).issue[0].code).toBe('forbidden');
    const moveA = await as('PUT', `/fhir/Observation/${oa}`, { resourceType: 'Observation', id: oa, status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/{b}' } });
    expect(moveA.statusCode).toBe(403);
    const condB = await as('PUT', '/fhir/Observation?subject=Patient/{b}', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/{a}' } });
    expect(condB.statusCode).toBe(201); // no match inside the compartment: creates A's own
    const own = await as('POST', '/fhir/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'mine' }, subject: { reference: 'Patient/{a}' } });
    expect(own.statusCode).toBe(201);
    const admin = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation/${ob}` }));
    expect(admin.meta.versionId).toBe('2');
    expect(admin.subject.reference).toBe(`Patient/${b}`);
  });

  it('reads its own data', async () => {
    expect((await as('GET', '/fhir/Patient/{a}')).statusCode).toBe(200);
    expect((await as('GET', '/fhir/Observation/{oa}')).statusCode).toBe(200);
  });
});

describe('granular scopes, roles and element masks', () => {
  let t: TestApp;
  let lab: string;
  let vital: string;
  let patient: string;
  beforeAll(async () => {
    t = await testApp();
    patient = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Mask' }], contact: [{ name: { family: 'Kin' } }] })).id;
    const cat = (code: string) => [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code }] }];
    lab = (await create(t.app, { resourceType: 'Observation', status: 'final', category: cat('laboratory'), code: { text: 'Hb' }, subject: { reference: `Patient/${patient}` }, valueQuantity: { value: 13.5, unit: 'g/dL' } })).id;
    vital = (await create(t.app, { resourceType: 'Observation', status: 'final', category: cat('vital-signs'), code: { text: 'HR' }, subject: { reference: `Patient/${patient}` }, valueQuantity: { value: 72 } })).id;
  });
  const get = async (url: string, claims: Record<string, unknown>) =>
    t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await t.token(claims)}` } });

  it('a granular scope returns only matching resources', async () => {
    const claims = { scope: 'user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory' };
    expect(ids(json(await get('/fhir/Observation', claims)))).toEqual([lab]);
    expect((await get(`/fhir/Observation/${lab}`, claims)).statusCode).toBe(200);
    expect((await get(`/fhir/Observation/${vital}`, claims)).statusCode).toBe(404);
  });

  it('billing never receives Observation values, whatever it asks', async () => {
    const billing = { scope: 'user/*.cruds', role: 'billing' };
    for (const url of [`/fhir/Observation/${lab}`, `/fhir/Observation/${lab}?_elements=value`, `/fhir/Observation/${lab}/_history/1`]) {
      const res = await get(url, billing);
      expect(res.statusCode).toBe(200);
      expect(res.body).not.toContain('valueQuantity');
      expect(res.body).not.toContain('13.5');
      expect(json(res).meta.tag.filter((x: any) => x.code === 'SUBSETTED')).toHaveLength(1);
    }
    const search = await get('/fhir/Observation?_include=Observation:subject', billing);
    expect(search.statusCode).toBe(200);
    expect(search.body).not.toContain('valueQuantity');
    expect(search.body).not.toContain('"contact"');
    const masked = ['value-quantity=gt1', 'combo-value-quantity=13.5', 'code-value-quantity=Hb$13.5', '_sort=value-quantity', 'component-value-quantity=1',
      'combo-code-value-quantity=Hb$13.5', 'combo-value-quantity:missing=true', '_sort=combo-value-quantity'];
    for (const q of masked) {
      const res = await get(`/fhir/Observation?${q}`, billing);
      expect(res.statusCode, q).toBe(403);
      // named as asked, where other parameters' entries answer it (combo-: SearchParamDef.unionOf)
      const asked = q.startsWith('_sort=') ? q.slice(6) : q.split(/[=:]/)[0];
      expect(json(res).issue[0].diagnostics, q).toMatch(new RegExp(`^search parameter ${asked} reads Observation\\.\\w+, which this role may not see$`));
    }
    const pat = json(await get(`/fhir/Patient/${patient}`, billing));
    expect(pat.name).toBeDefined();
    expect(pat.contact).toBeUndefined();
    expect((await get('/fhir/AuditEvent', billing)).statusCode).toBe(403);
    const write = await t.app.inject({
      method: 'POST',
      url: '/fhir/Patient',
      headers: { authorization: `Bearer ${await t.token(billing)}`, 'content-type': 'application/fhir+json' },
      payload: '{"resourceType":"Patient"}',
    });
    expect(write.statusCode).toBe(403);
  });

  it('the auditor sees AuditEvent only; an unknown role sees nothing', async () => {
    const auditor = { scope: 'user/*.rs', role: 'auditor' };
    expect((await get('/fhir/AuditEvent', auditor)).statusCode).toBe(200);
    expect((await get(`/fhir/Patient/${patient}`, auditor)).statusCode).toBe(403);
    expect((await get('/fhir/Observation', auditor)).statusCode).toBe(403);
    expect((await get('/fhir/Patient', { scope: 'system/*.cruds', role: 'janitor' })).statusCode).toBe(403);
    expect((await get('/fhir/Patient', { scope: 'system/*.cruds', role: ['administrator'] })).statusCode).toBe(403);
  });

  it('reads the role from the configured claim', async () => {
    const custom = await testApp({ HEARTH_AUTH_ROLE_CLAIM: 'https://hearth/role' });
    const tok = await custom.token({ scope: 'user/*.rs', 'https://hearth/role': 'auditor' });
    const res = await custom.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${tok}` } });
    expect(res.statusCode).toBe(403);
  });
});

describe('clinician relationship policy', () => {
  it('limits user/ access to patients whose general practitioner is the user', async () => {
    const t = await testApp({ HEARTH_AUTH_RELATIONSHIP: 'true' });
    const mine = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Mine' }], generalPractitioner: [{ reference: 'Practitioner/dr1' }] })).id;
    const other = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Othercanary' }], generalPractitioner: [{ reference: 'Practitioner/dr2' }] })).id;
    const om = (await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${mine}` } })).id;
    const oo = (await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${other}` } })).id;
    const tok = await t.token({ scope: 'user/*.cruds', fhirUser: 'https://ehr.example.org/fhir/Practitioner/dr1' });
    const get = (url: string) => t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${tok}` } });
    expect(ids(json(await get('/fhir/Patient')))).toEqual([mine]);
    expect(ids(json(await get('/fhir/Observation')))).toEqual([om]);
    expect((await get(`/fhir/Observation/${oo}`)).statusCode).toBe(404);
    expect((await get(`/fhir/Patient/${other}`)).statusCode).toBe(404);
    expect((await get(`/fhir/Observation/${om}`)).statusCode).toBe(200);
    const write = await t.app.inject({
      method: 'POST',
      url: '/fhir/Observation',
      headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${other}` } }),
    });
    expect(write.statusCode).toBe(403);
  });

  it('refuses a relationship parameter that is not a Patient reference', async () => {
    await expect(testApp({ HEARTH_AUTH_RELATIONSHIP: 'true', HEARTH_AUTH_RELATIONSHIP_PARAM: 'family' })).rejects.toThrow('HEARTH_AUTH_RELATIONSHIP_PARAM');
  });
});

describe('remote JWKS', () => {
  it('fetches keys over the network, and refetches on an unknown kid after rotation', async () => {
    const k1 = await generateKeyPair('ES256', { extractable: true });
    const k2 = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
    const jwk1 = { ...(await exportJWK(k1.publicKey)), kid: 'k1', alg: 'ES256' };
    const jwk2 = { ...(await exportJWK(k2.publicKey)), kid: 'k2', alg: 'RS256' };
    let published: object[] = [jwk1];
    let fetches = 0;
    const port = await freePort();
    const server = createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    const issuer = `http://127.0.0.1:${port}`;
    try {
      const t = await testApp({ HEARTH_AUTH_ISSUER: issuer, HEARTH_AUTH_JWKS: `${issuer}/jwks`, HEARTH_AUTH_JWKS_COOLDOWN: '0' });
      const sign = (key: Parameters<SignJWT['sign']>[0], kid: string, alg: string) => {
        const now = Math.floor(t.now().getTime() / 1000);
        return new SignJWT({ scope: 'system/*.rs' }).setProtectedHeader({ alg, kid }).setIssuer(issuer).setAudience(BASE)
          .setIssuedAt(now).setExpirationTime(now + 600).sign(key);
      };
      const get = async (tok: string) => (await t.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${tok}` } })).statusCode;
      expect(await get(await sign(k1.privateKey, 'k1', 'ES256'))).toBe(200);
      expect(fetches).toBe(1);
      published = [jwk1, jwk2];
      expect(await get(await sign(k2.privateKey, 'k2', 'RS256'))).toBe(200);
      expect(fetches).toBe(2);
      // with the default cooldown, a burst of unknown kids cannot make the server hammer the issuer
      const limited = await testApp({ HEARTH_AUTH_ISSUER: issuer, HEARTH_AUTH_JWKS: `${issuer}/jwks` });
      const lget = async (tok: string) => (await limited.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${tok}` } })).statusCode;
      expect(await lget(await sign(k1.privateKey, 'k1', 'ES256'))).toBe(200);
      const before = fetches;
      const rogue = await generateKeyPair('ES256');
      for (let i = 0; i < 5; i++) expect(await lget(await sign(rogue.privateKey, `unknown-${i}`, 'ES256'))).toBe(401);
      expect(fetches - before).toBeLessThanOrEqual(1);
    } finally {
      server.close();
    }
  });
});
