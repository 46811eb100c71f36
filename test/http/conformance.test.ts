import { beforeAll, describe, expect, it } from 'vitest';
import { create, FHIR_JSON, json, PLAIN, type TestApp, testApp } from '../helpers/app.ts';

// The HTTP and FHIR conformance details an integrator's client relies on.
describe('conformance of the REST surface', () => {
  let t: TestApp;
  let id: string;
  beforeAll(async () => {
    t = await testApp();
    id = (await create(t.app, { resourceType: 'Patient', gender: 'female' })).id;
  });

  it.each([
    ['/fhir/Patient', 'GET, HEAD, POST, PUT, OPTIONS'],
    ['/fhir/Patient/abc', 'GET, HEAD, PUT, DELETE, OPTIONS'],
    ['/fhir/Patient/abc/_history', 'GET, HEAD, OPTIONS'],
    ['/fhir/Patient/abc/_history/2', 'GET, HEAD, OPTIONS'],
    ['/fhir/Patient/_search', 'POST, OPTIONS'],
    ['/fhir/AuditEvent', 'GET, HEAD, OPTIONS'],
    ['/fhir/AuditEvent/abc', 'GET, HEAD, OPTIONS'],
    ['/fhir/metadata', 'GET, HEAD, OPTIONS'],
    ['/fhir/', 'POST, OPTIONS'],
  ])('OPTIONS %s (no preflight, no token) → 204 with Allow: %s, and no body', async (url, allow) => {
    const r = await t.raw.inject({ method: 'OPTIONS', url });
    expect(r.statusCode).toBe(204);
    expect(r.headers.allow).toBe(allow);
    expect(r.body).toBe('');
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('/metadata offers batch and transaction at the base, documented', async () => {
    const cs = json(await t.raw.inject({ method: 'GET', url: '/fhir/metadata' }));
    expect(cs.rest[0].interaction.map((i: any) => i.code)).toEqual(['batch', 'transaction']);
    expect(cs.rest[0].interaction[0].documentation).toContain('HEARTH_BUNDLE_MAX_ENTRIES');
  });

  it('OPTIONS of what is no FHIR URL stays a 404', async () => {
    for (const url of ['/fhir/Nope', '/fhir/Patient/abc/_history/x/y', '/elsewhere']) {
      expect((await t.raw.inject({ method: 'OPTIONS', url })).statusCode, url).toBe(404);
    }
  });

  it.each([
    ['PATCH', () => `/fhir/Patient/${id}`, 'GET, HEAD, PUT, DELETE', 'patch is not supported for Patient'],
    ['POST', () => `/fhir/Patient/${id}`, 'GET, HEAD, PUT, DELETE', 'POST on this URL is not supported for Patient'],
    ['PATCH', () => '/fhir/Patient?identifier=x', 'GET, HEAD, POST, PUT', 'patch is not supported for Patient'],
    ['DELETE', () => '/fhir/Patient?identifier=x', 'GET, HEAD, POST, PUT', 'conditional-delete is not supported for Patient'],
    ['PUT', () => '/fhir/AuditEvent/abc', 'GET, HEAD', 'update is not supported for AuditEvent'],
  ])('%s %s → 405 with Allow and a not-supported OperationOutcome, nothing written', async (method, url, allow, diagnostics) => {
    const before = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}` })).meta.versionId;
    const r = await t.app.inject({ method: method as 'POST', url: url(), headers: { 'content-type': FHIR_JSON }, payload: JSON.stringify({ resourceType: 'Patient', id }) });
    expect(r.statusCode).toBe(405);
    expect(r.headers.allow).toBe(allow);
    expect(json(r).issue[0]).toMatchObject({ code: 'not-supported', diagnostics });
    expect(json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}` })).meta.versionId).toBe(before);
  });

  it('the self link of a history without parameters has no dangling "?"', async () => {
    const b = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}/_history` }));
    expect(b.link).toEqual([{ relation: 'self', url: `${t.config.baseUrl}/Patient/${id}/_history` }]);
    const paged = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}/_history?_count=5` }));
    expect(paged.link[0].url).toBe(`${t.config.baseUrl}/Patient/${id}/_history?_count=5`);
  });

  it('conditional read: 304 with ETag and Last-Modified when the client has the current version, the resource otherwise', async () => {
    const first = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}` });
    const { etag } = first.headers;
    const lastModified = first.headers['last-modified'] as string;
    const ask = (headers: Record<string, string>, url = `/fhir/Patient/${id}`) => t.app.inject({ method: 'GET', url, headers });
    const fresh: Record<string, string>[] = [{ 'if-none-match': etag as string }, { 'if-none-match': `"x", ${etag as string}` }, { 'if-none-match': '*' }, { 'if-modified-since': lastModified }];
    for (const h of fresh) {
      const r = await ask(h);
      expect(r.statusCode, JSON.stringify(h)).toBe(304);
      expect(r.body).toBe('');
      expect(r.headers.etag).toBe(etag);
      expect(r.headers['last-modified']).toBe(lastModified);
    }
    expect((await ask({ 'if-none-match': 'W/"1"' }, `/fhir/Patient/${id}/_history/1`)).statusCode).toBe(304);
    // An older copy, an earlier date, or a date that is no HTTP-date: the resource.
    expect((await ask({ 'if-none-match': 'W/"99"' })).statusCode).toBe(200);
    expect((await ask({ 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' })).statusCode).toBe(200);
    expect((await ask({ 'if-modified-since': 'yesterday' })).statusCode).toBe(200);
    // If-None-Match decides when both are sent.
    expect((await ask({ 'if-none-match': 'W/"99"', 'if-modified-since': lastModified })).statusCode).toBe(200);
  });

  it('_pretty=true indents the JSON; _pretty with another value is a 400 naming it', async () => {
    const pretty = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}?_pretty=true` });
    expect(pretty.body).toBe(JSON.stringify(json(pretty), null, 2));
    expect(pretty.body).toContain('\n  "id": ');
    const compact = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}?_pretty=false` });
    expect(compact.body).not.toContain('\n');
    const bad = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}?_pretty=yes` });
    expect(bad.statusCode).toBe(400);
    expect(json(bad).issue[0]).toMatchObject({ code: 'invalid', expression: ['_pretty'] });
  });

  it('a refused system/ token is told the system/ scope it lacks, a user/ token the user/ one', async () => {
    const system = await t.token({ sub: 'backend', client_id: 'c', scope: 'system/Observation.rs' });
    const r = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}`, headers: { authorization: `Bearer ${system}` } });
    expect(r.statusCode).toBe(403);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="hearth", error="insufficient_scope", scope="system/Patient.r"');
    const user = await t.token({ sub: 'dr', fhirUser: 'Practitioner/1', scope: 'user/Observation.rs' });
    const u = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}`, headers: { authorization: `Bearer ${user}` } });
    expect(u.headers['www-authenticate']).toBe('Bearer realm="hearth", error="insufficient_scope", scope="user/Patient.r"');
  });

  it('AuditEvent: agent by reference or :identifier as R4 defines it, altid by the token subject; /metadata says so', async () => {
    const dr = await t.token({ sub: 'dr-who', fhirUser: 'Practitioner/77', scope: 'user/*.rs' });
    await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}`, headers: { authorization: `Bearer ${dr}` } });
    await t.auditIndexed();
    const total = async (q: string) => json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?${q}&_summary=count` })).total;
    expect(await total('agent=Practitioner/77')).toBe(1);
    expect(await total('altid=dr-who')).toBe(1);
    expect(await total(`agent:identifier=${encodeURIComponent('https://issuer.test/realms/hearth|test-system')}`)).toBeGreaterThan(1);
    // (each of these searches is itself audited as test-system: counts of it grow as they go)
    expect(await total('altid=nobody')).toBe(0);
    const cs = json(await t.raw.inject({ method: 'GET', url: '/fhir/metadata' }));
    const params = cs.rest[0].resource.find((r: any) => r.type === 'AuditEvent').searchParam;
    expect(params.find((p: any) => p.name === 'agent').documentation).toMatch(/agent:identifier=<issuer>\|<subject>/);
    expect(params.find((p: any) => p.name === 'altid')).toMatchObject({ type: 'token' });
  });

  it(':missing agrees with what a reference holds: an identifier, a display or a contained target is a value; only the absent one is missing', async () => {
    const obs = (basedOn?: object[], extra: object = {}) =>
      create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'missing-probe' }, ...(basedOn ? { basedOn } : {}), ...extra });
    const byIdentifier = (await obs([{ identifier: { system: 'urn:order', value: 'O-1' } }])).id;
    const byDisplay = (await obs([{ display: 'the order on paper' }])).id;
    const contained = (await obs([{ reference: '#sr' }], { contained: [{ resourceType: 'ServiceRequest', id: 'sr', status: 'active', intent: 'order', subject: { display: 'x' } }] })).id;
    const real = (await obs([{ reference: 'ServiceRequest/77' }])).id;
    const none = (await obs()).id;
    const found = async (q: string) => (json(await t.app.inject({ method: 'GET', url: `/fhir/Observation?code:text=missing-probe&${q}` })).entry ?? []).map((e: any) => e.resource.id).sort();
    expect(await found('based-on:missing=false')).toEqual([byIdentifier, byDisplay, contained, real].sort());
    expect(await found('based-on:missing=true')).toEqual([none]);
    expect(await found('based-on=ServiceRequest/77')).toEqual([real]);
    expect(await found('based-on:identifier=urn:order|O-1')).toEqual([byIdentifier]);
  });

  it('the CapabilityStatement says, for every parameter over encrypted elements, what is answered and that the rest is refused', async () => {
    const params = (cs: any, type: string) =>
      new Map(cs.rest[0].resource.find((r: any) => r.type === type).searchParam.map((p: any) => [p.name, p.documentation]));
    const sealed = json(await t.raw.inject({ method: 'GET', url: '/fhir/metadata' }));
    const patient = params(sealed, 'Patient');
    expect(patient.get('family')).toBe(
      'Reads elements encrypted at rest; searched through keyed blind indexes. Answered by index: a prefix of 1 to 24 characters or a whole value, :exact, :missing. ' +
      'Every other form (ranges, other prefixes, :contains, _sort by it) is answered by decrypting the resources the search\'s other parameters leave, ' +
      'when they are at most 10000; otherwise refused with 400 naming the limit: never answered by scanning.',
    );
    expect(patient.get('birthdate')).toContain('Answered by index: a whole year, month or day without prefix (birthdate=1974-12), :missing.');
    expect(patient.get('identifier')).toContain('Answered by index: code, system|code, |code, system|, :not, :missing.');
    expect(patient.get('gender')).toBeUndefined();
    const observation = params(sealed, 'Observation');
    expect(observation.get('value-quantity')).toContain('Answered by index: :missing only.');
    expect(observation.get('code-value-quantity')).toContain('Answered by index: :missing only.');
    const off = await testApp({ HEARTH_SEARCH_DECRYPT_BOUND: '0' });
    expect(params(json(await off.raw.inject({ method: 'GET', url: '/fhir/metadata' })), 'Patient').get('family')).toMatch(/is refused with 400 naming the supported forms/);
    expect(observation.get('code')).toBeUndefined();
    const plain = await testApp(PLAIN);
    expect(params(json(await plain.raw.inject({ method: 'GET', url: '/fhir/metadata' })), 'Patient').get('family')).toBeUndefined();
  });
});
