import { beforeEach, describe, expect, it } from 'vitest';
import { BASE, create, json, post, put, type TestApp, testApp } from '../helpers/app.ts';

const patient = (family = 'Chalmers') => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Peter'] }],
  gender: 'male',
});

describe('FHIR REST interactions', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp();
  });

  it('serves the capability statement from capability-statement.json with search parameters', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/fhir/metadata' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
    const cs = json(res);
    expect(cs.resourceType).toBe('CapabilityStatement');
    expect(cs.fhirVersion).toBe('4.0.1');
    expect(cs.implementation.url).toBe(BASE);
    const types = cs.rest[0].resource.map((r: any) => r.type);
    expect(types).toEqual(['Patient', 'Observation', 'AuditEvent']);
    const pat = cs.rest[0].resource[0];
    expect(pat.searchParam.find((p: any) => p.name === 'family')).toMatchObject({
      name: 'family',
      definition: 'http://hl7.org/fhir/SearchParameter/individual-family',
      type: 'string',
    });
    // (family reads encrypted elements: its documentation says how it is searched, conformance.test.ts)
    expect(pat.searchParam.find((p: any) => p.name === 'gender')).toEqual({
      name: 'gender',
      definition: 'http://hl7.org/fhir/SearchParameter/individual-gender',
      type: 'token',
    });
    expect(pat.updateCreate).toBe(false);
    const audit = cs.rest[0].resource[2];
    expect(audit.interaction.map((i: any) => i.code)).toEqual(['read', 'search-type']);
  });

  it('creates with a server id: 201, Location, ETag, Last-Modified, server meta', async () => {
    const res = await post(t.app, '/fhir/Patient', {
      ...patient(),
      id: 'client-chosen',
      meta: { versionId: '99', lastUpdated: '2001-01-01T00:00:00Z' },
    });
    expect(res.statusCode).toBe(201);
    const body = json(res);
    expect(body.id).not.toBe('client-chosen');
    expect(body.meta.versionId).toBe('1');
    expect(body.meta.lastUpdated).not.toBe('2001-01-01T00:00:00Z');
    expect(res.headers.location).toBe(`${BASE}/Patient/${body.id}/_history/1`);
    expect(res.headers.etag).toBe('W/"1"');
    expect(res.headers['last-modified']).toBe(new Date(body.meta.lastUpdated).toUTCString());
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('reads and vreads with ETag, and answers 404 for an unknown id', async () => {
    const p = await create(t.app, patient());
    const read = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` });
    expect(read.statusCode).toBe(200);
    expect(json(read)).toEqual(p);
    expect(read.headers.etag).toBe('W/"1"');
    const v = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}/_history/1` });
    expect(json(v)).toEqual(p);
    const missing = await t.app.inject({ method: 'GET', url: '/fhir/Patient/nope' });
    expect(missing.statusCode).toBe(404);
    expect(json(missing).issue[0].code).toBe('not-found');
    const noVersion = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}/_history/7` });
    expect(noVersion.statusCode).toBe(404);
  });

  it('updates into version 2, honours If-Match, and 412s a stale one without writing', async () => {
    const p = await create(t.app, patient());
    const stale = await put(t.app, `/fhir/Patient/${p.id}`, { ...patient('Jones'), id: p.id }, { 'if-match': 'W/"2"' });
    expect(stale.statusCode).toBe(412);
    expect(json(stale).issue[0].code).toBe('conflict');
    const ok = await put(t.app, `/fhir/Patient/${p.id}`, { ...patient('Jones'), id: p.id }, { 'if-match': 'W/"1"' });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers.etag).toBe('W/"2"');
    expect(json(ok).meta.versionId).toBe('2');
    const old = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}/_history/1` });
    expect(json(old).name[0].family).toBe('Chalmers');
    const cur = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` });
    expect(json(cur).name[0].family).toBe('Jones');
  });

  it('refuses update-as-create unless configured', async () => {
    const res = await put(t.app, '/fhir/Patient/mine', { ...patient(), id: 'mine' });
    expect(res.statusCode).toBe(404);
    const allowed = await testApp({ HEARTH_UPDATE_CREATE: 'true' });
    const created = await put(allowed.app, '/fhir/Patient/mine', { ...patient(), id: 'mine' });
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe(`${BASE}/Patient/mine/_history/1`);
    const cs = json(await allowed.app.inject({ method: 'GET', url: '/fhir/metadata' }));
    expect(cs.rest[0].resource[0].updateCreate).toBe(true);
  });

  it('deletes as a tombstone: read 410, vread of the tombstone 410, old version still readable', async () => {
    const p = await create(t.app, patient());
    const del = await t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${p.id}` });
    expect(del.statusCode).toBe(204);
    expect(del.headers.etag).toBe('W/"2"');
    const read = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` });
    expect(read.statusCode).toBe(410);
    expect(json(read).issue[0].code).toBe('deleted');
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}/_history/2` })).statusCode).toBe(410);
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}/_history/1` })).statusCode).toBe(200);
    const again = await t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${p.id}` });
    expect(again.statusCode).toBe(204);
    expect(again.headers.etag).toBe('W/"2"');
    expect((await t.app.inject({ method: 'DELETE', url: '/fhir/Patient/never' })).statusCode).toBe(404);
  });

  it('keeps instance and type history with _since and _count paging', async () => {
    const p = await create(t.app, patient());
    t.tick(60_000);
    await put(t.app, `/fhir/Patient/${p.id}`, { ...patient('B'), id: p.id });
    await t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${p.id}` });
    await create(t.app, patient('Other'));
    const h = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}/_history` }));
    expect(h.type).toBe('history');
    expect(h.total).toBe(3);
    expect(h.entry.map((e: any) => [e.request.method, e.response.status, e.response.etag])).toEqual([
      ['DELETE', '204', 'W/"3"'],
      ['PUT', '200', 'W/"2"'],
      ['POST', '201', 'W/"1"'],
    ]);
    expect(h.entry[0].resource).toBeUndefined();
    const typeHist = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient/_history?_count=2' }));
    expect(typeHist.total).toBe(4);
    expect(typeHist.entry).toHaveLength(2);
    const next = typeHist.link.find((l: any) => l.relation === 'next').url.replace(BASE, '/fhir');
    const page2 = json(await t.app.inject({ method: 'GET', url: next }));
    expect(page2.entry).toHaveLength(2);
    expect(page2.link.find((l: any) => l.relation === 'next')).toBeUndefined();
    const since = new Date(Date.parse(p.meta.lastUpdated) + 30_000).toISOString();
    const recent = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/_history?_since=${since}` }));
    expect(recent.total).toBe(3);
    expect((await t.app.inject({ method: 'GET', url: '/fhir/Patient/nope/_history' })).statusCode).toBe(404);
  });

  it('conditional create returns the existing match without writing, 412 on several', async () => {
    const p = await create(t.app, { ...patient(), identifier: [{ system: 'urn:mrn', value: '42' }] });
    const again = await post(
      t.app,
      '/fhir/Patient',
      { ...patient(), identifier: [{ system: 'urn:mrn', value: '42' }] },
      {
        'if-none-exist': 'identifier=urn:mrn|42',
      },
    );
    expect(again.statusCode).toBe(200);
    expect(json(again).id).toBe(p.id);
    const fresh = await post(t.app, '/fhir/Patient', patient(), { 'if-none-exist': 'identifier=urn:mrn|43' });
    expect(fresh.statusCode).toBe(201);
    await create(t.app, { ...patient(), identifier: [{ system: 'urn:mrn', value: '42' }] });
    const many = await post(t.app, '/fhir/Patient', patient(), { 'if-none-exist': 'Patient?identifier=urn:mrn|42' });
    expect(many.statusCode).toBe(412);
    expect(json(many).issue[0].code).toBe('multiple-matches');
  });

  it('conditional update creates, then updates the single match', async () => {
    const body = { ...patient(), identifier: [{ system: 'urn:mrn', value: '7' }] };
    const c = await put(t.app, '/fhir/Patient?identifier=urn:mrn|7', body);
    expect(c.statusCode).toBe(201);
    const id = json(c).id;
    const u = await put(t.app, '/fhir/Patient?identifier=urn:mrn|7', { ...body, gender: 'female' });
    expect(u.statusCode).toBe(200);
    expect(json(u)).toMatchObject({ id, gender: 'female', meta: { versionId: '2' } });
    const wrongId = await put(t.app, '/fhir/Patient?identifier=urn:mrn|7', { ...body, id: 'other' });
    expect(wrongId.statusCode).toBe(400);
    expect(json(wrongId).issue[0].expression).toEqual(['Patient.id']);
  });

  it('honours Prefer: return=minimal and return=OperationOutcome', async () => {
    const min = await post(t.app, '/fhir/Patient', patient(), { prefer: 'return=minimal' });
    expect(min.statusCode).toBe(201);
    expect(min.body).toBe('');
    expect(min.headers.location).toMatch(/\/_history\/1$/);
    const oo = await post(t.app, '/fhir/Patient', patient(), { prefer: 'return=OperationOutcome' });
    expect(oo.statusCode).toBe(201);
    expect(json(oo)).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'information', code: 'informational' }],
    });
  });

  it('answers in application/json when asked for exactly that', async () => {
    const p = await create(t.app, patient());
    const res = await t.app.inject({
      method: 'GET',
      url: `/fhir/Patient/${p.id}`,
      headers: { accept: 'application/json' },
    });
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const fmt = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}?_format=json` });
    expect(fmt.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
  });

  it('refuses write interactions on AuditEvent with 405', async () => {
    for (const [method, url] of [
      ['POST', '/fhir/AuditEvent'],
      ['PUT', '/fhir/AuditEvent/1'],
      ['DELETE', '/fhir/AuditEvent/1'],
      ['GET', '/fhir/AuditEvent/1/_history'],
      ['GET', '/fhir/AuditEvent/_history'],
    ] as const) {
      const res = await t.app.inject({
        method,
        url,
        headers: { 'content-type': 'application/fhir+json' },
        payload: '{}',
      });
      expect(res.statusCode, `${method} ${url}`).toBe(405);
      expect(json(res).issue[0].code).toBe('not-supported');
    }
  });

  it('answers server faults with a generic 500 carrying the request id and nothing else', async () => {
    t.store.failWith('read', new Error('secret internal detail: Patient Chalmers'));
    const res = await t.app.inject({ method: 'GET', url: '/fhir/Patient/x' });
    expect(res.statusCode).toBe(500);
    const body = json(res);
    expect(body.issue).toEqual([
      {
        severity: 'error',
        code: 'exception',
        diagnostics: `internal server error; request id ${res.headers['x-request-id']}`,
      },
    ]);
    expect(res.body).not.toContain('secret');
    expect(res.body).not.toContain('Chalmers');
    expect(res.body).not.toContain('at ');
  });
});
