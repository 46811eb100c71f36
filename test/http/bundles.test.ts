import { Client } from 'fhir-kit-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, freePort, json, post, type TestApp, testApp } from '../helpers/app.ts';

const batch = (...entry: unknown[]) => ({ resourceType: 'Bundle', type: 'batch', entry });
const patient = (family: string) => ({ resourceType: 'Patient', name: [{ family }], gender: 'female' });
const statuses = (res: { body: string }) => json(res).entry.map((e: any) => e.response.status);

describe('batch Bundles: POST [base], each entry on its own', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
  });

  it('runs every kind of entry in order, each with its own status, and one failure stops nothing', async () => {
    const existing = await create(t.app, patient('Existing'));
    const gone = await create(t.app, patient('Gone'));
    const res = await post(
      t.app,
      '/fhir',
      batch(
        { request: { method: 'POST', url: 'Patient' }, resource: patient('Batchone') },
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', birthDate: 'not-a-date' } },
        { request: { method: 'PUT', url: `Patient/${existing.id}`, ifMatch: 'W/"1"' }, resource: { ...patient('Renamed'), id: existing.id } },
        { request: { method: 'GET', url: `Patient/${existing.id}` } },
        { request: { method: 'GET', url: 'Patient?family=batchone' } },
        { request: { method: 'DELETE', url: `Patient/${gone.id}` } },
        { request: { method: 'GET', url: 'Patient/does-not-exist' } },
        { request: { method: 'PUT', url: `Patient/${existing.id}`, ifMatch: 'W/"1"' }, resource: { ...patient('Stale'), id: existing.id } },
        { request: { method: 'PATCH', url: `Patient/${existing.id}` } },
        { request: { method: 'GET', url: 'Medication/1' } },
        { request: { method: 'POST', url: 'Patient' }, resource: patient('Batchtwo') },
      ),
    );
    expect(res.statusCode, res.body).toBe(200);
    const body = json(res);
    expect(body.resourceType).toBe('Bundle');
    expect(body.type).toBe('batch-response');
    expect(statuses(res)).toEqual([
      '201 Created',
      '400 Bad Request',
      '200 OK',
      '200 OK',
      '200 OK',
      '204 No Content',
      '404 Not Found',
      '412 Precondition Failed',
      '405 Method Not Allowed',
      '404 Not Found',
      '201 Created',
    ]);
    const [made, invalid, updated, read, found, , missing, stale, patch, unknown] = body.entry;
    expect(made.response.location).toMatch(/\/fhir\/Patient\/[^/]+\/_history\/1$/);
    expect(made.response.etag).toBe('W/"1"');
    expect(made.fullUrl).toBe(`http://127.0.0.1:8080/fhir/Patient/${made.resource.id}`);
    expect(made.resource.name[0].family).toBe('Batchone');
    expect(invalid.response.outcome.issue[0]).toMatchObject({ code: 'value', expression: ['Patient.birthDate'] });
    expect(updated.response.etag).toBe('W/"2"');
    expect(read.resource.name[0].family).toBe('Renamed');
    expect(found.resource.type).toBe('searchset');
    expect(found.resource.entry.map((e: any) => e.resource.id)).toEqual([made.resource.id]);
    expect(missing.response.outcome.issue[0].code).toBe('not-found');
    expect(stale.response.outcome.issue[0].code).toBe('conflict');
    expect(patch.response.outcome.issue[0].code).toBe('not-supported');
    expect(unknown.response.outcome.issue[0].expression).toEqual(['Bundle.entry[9].request.url']);
    // what reached the store: the valid writes, not the invalid one
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${gone.id}` })).statusCode).toBe(410);
    expect(json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${existing.id}` })).name[0].family).toBe('Renamed');
    expect(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?birthdate:missing=false&_total=accurate' })).total).toBe(0);
  });

  it('leaves one AuditEvent per entry, linked to the Bundle\'s own, with a write-ahead attempt for each write', async () => {
    const res = await post(
      t.app,
      '/fhir',
      batch(
        { request: { method: 'POST', url: 'Patient' }, resource: patient('Audited') },
        { request: { method: 'GET', url: 'Patient?family=audited' } },
        { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation' } },
      ),
    );
    expect(statuses(res)).toEqual(['201 Created', '200 OK', '400 Bad Request']);
    const id = res.headers['x-request-id'] as string;
    const madeId = json(res).entry[0].resource.id;
    await t.auditIndexed();
    const own = json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent/${id}` }));
    expect(own.subtype.map((c: any) => c.code)).toEqual(['batch']);
    expect(own.outcome).toBe('0');
    const linked = json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?entity:identifier=${encodeURIComponent(`urn:hearth:request|${id}`)}&_sort=_id&_count=50` }));
    const events = linked.entry.map((e: any) => e.resource);
    expect(events.map((e: any) => [e.id, e.subtype.map((c: any) => c.code).join(','), e.action, e.outcome ?? '-'])).toEqual([
      [`${id}.0`, 'create', 'C', '0'],
      [`${id}.1`, 'search-type', 'E', '0'],
      [`${id}.2`, 'create', 'C', '4'],
    ]);
    // In the chain: the write entries' attempts before their events (the refused create never
    // reached the store, so it has none), the Bundle's own event last; the version names its entry.
    const chain = (await Array.fromAsync(t.storage.audit.chain())).map((l) => l.id).filter((x) => x.startsWith(id));
    expect(chain).toEqual([`${id}.0.attempt`, `${id}.0`, `${id}.1`, `${id}.2`, id]);
    expect(await t.storage.resources.writtenBy(`${id}.0`)).toEqual([{ type: 'Patient', id: madeId, versionId: 1, deleted: false }]);
    const created = events[0];
    expect(created.entity.map((e: any) => e.what.reference ?? e.what.identifier.value)).toEqual([`Patient/${madeId}`, `Patient/${madeId}/_history/1`, id]);
    expect(created.agent[0].who).toBeDefined();
    // the query of a GET entry, as for a search: base64 in entity.query, never in clear
    expect(Buffer.from(events[1].entity.find((e: any) => e.query).query, 'base64').toString()).toBe('family=audited');
  });

  it('applies the element masks and the patient compartment to every entry, as on the routes', async () => {
    const mine = await create(t.app, patient('Mine'));
    const other = await create(t.app, patient('Other'));
    const token = await t.token({ sub: 'pm', patient: mine.id, scope: 'patient/*.cruds' });
    const res = await t.raw.inject({
      method: 'POST',
      url: '/fhir/',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify(
        batch(
          { request: { method: 'GET', url: `Patient/${mine.id}` } },
          { request: { method: 'GET', url: `Patient/${other.id}` } },
          { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${other.id}` } } },
          { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${mine.id}` } } },
          { request: { method: 'GET', url: 'Observation' } },
        ),
      ),
    });
    expect(res.statusCode).toBe(200);
    expect(statuses(res)).toEqual(['200 OK', '404 Not Found', '403 Forbidden', '201 Created', '200 OK']);
    const search = json(res).entry[4].resource;
    expect(search.entry.map((e: any) => e.resource.subject.reference)).toEqual([`Patient/${mine.id}`]);
    // nothing was written into the other patient's compartment
    const theirs = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation?subject=Patient/${other.id}&_total=accurate` }));
    expect(theirs.total).toBe(0);
    const billing = await t.token({ sub: 'b1', fhirUser: 'Practitioner/b', scope: 'user/*.rs', role: 'billing' });
    const masked = await t.raw.inject({
      method: 'POST',
      url: '/fhir',
      headers: { authorization: `Bearer ${billing}`, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify(batch({ request: { method: 'GET', url: `Patient/${mine.id}` } })),
    });
    const direct = await t.raw.inject({ method: 'GET', url: `/fhir/Patient/${mine.id}`, headers: { authorization: `Bearer ${billing}` } });
    expect(json(masked).entry[0].resource).toEqual(json(direct));
  });

  it('refuses what is not a batch, and what is too large, naming the problem and storing nothing', async () => {
    const before = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?_total=accurate&_count=0' })).total;
    const cases: [unknown, number, string, string][] = [
      [patient('x'), 400, 'invalid', 'Bundle.resourceType'],
      [{ resourceType: 'Bundle', type: 'collection', entry: [] }, 400, 'value', 'Bundle.type'],
      [{ resourceType: 'Bundle', type: 'batch', entry: {} }, 400, 'structure', 'Bundle.entry'],
      [{ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'POST', url: 'Patient' }, resource: patient('T') }] }, 400, 'not-supported', 'Bundle.type'],
    ];
    for (const [body, status, code, expression] of cases) {
      const res = await post(t.app, '/fhir', body);
      expect(res.statusCode, res.body).toBe(status);
      expect(json(res).issue[0]).toMatchObject({ code, expression: [expression] });
    }
    const small = await testApp({ HEARTH_BUNDLE_MAX_ENTRIES: '2', HEARTH_BUNDLE_BODY_LIMIT: '4096' });
    const three = batch(...[1, 2, 3].map(() => ({ request: { method: 'POST', url: 'Patient' }, resource: patient('x') })));
    const tooMany = await post(small.app, '/fhir', three);
    expect(tooMany.statusCode).toBe(413);
    expect(json(tooMany).issue[0]).toMatchObject({ code: 'too-long', expression: ['Bundle.entry'] });
    expect(json(tooMany).issue[0].diagnostics).toContain('HEARTH_BUNDLE_MAX_ENTRIES');
    const big = await post(small.app, '/fhir', batch({ request: { method: 'POST', url: 'Patient' }, resource: { ...patient('x'), text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'a'.repeat(5000)}</div>` } } }));
    expect(big.statusCode).toBe(413);
    // entries without a usable request are that entry's 400, not the batch's
    const loose = await post(t.app, '/fhir', batch({ resource: patient('x') }, { request: { method: 'FETCH', url: 'Patient' } }, { request: { method: 'GET', url: 'https://elsewhere.example/fhir/Patient/1' } }));
    expect(statuses(loose)).toEqual(['400 Bad Request', '400 Bad Request', '400 Bad Request']);
    expect(json(loose).entry.map((e: any) => e.response.outcome.issue[0].expression[0])).toEqual([
      'Bundle.entry[0].request',
      'Bundle.entry[1].request.method',
      'Bundle.entry[2].request.url',
    ]);
    expect(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?_total=accurate&_count=0' })).total).toBe(before);
  });
});

describe('batch over HTTP with fhir-kit-client', () => {
  let t: TestApp;
  let client: Client;
  beforeAll(async () => {
    const port = await freePort();
    t = await testApp({ HEARTH_PORT: String(port) });
    await t.app.listen({ host: '127.0.0.1', port });
    client = new Client({ baseUrl: `http://127.0.0.1:${port}/fhir`, bearerToken: t.adminToken });
  });
  afterAll(async () => {
    await t.app.close();
  });

  it('batch(): a Patient and its Observations, one invalid entry refused, the rest stored', async () => {
    const p = await create(t.app, patient('Kitbatch'));
    const obs = (value: number) => ({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${p.id}` }, valueQuantity: { value } });
    const response: any = await client.batch({
      body: batch(
        ...[1, 2, 3].map((v) => ({ request: { method: 'POST', url: 'Observation' }, resource: obs(v) })),
        { request: { method: 'POST', url: 'Observation' }, resource: { ...obs(4), status: 'unknown-status' } },
        { request: { method: 'GET', url: `Observation?subject=Patient/${p.id}&_sort=value-quantity` } },
      ),
    });
    expect(response.type).toBe('batch-response');
    expect(response.entry.map((e: any) => e.response.status)).toEqual(['201 Created', '201 Created', '201 Created', '400 Bad Request', '200 OK']);
    expect(response.entry[4].resource.entry.map((e: any) => e.resource.valueQuantity.value)).toEqual([1, 2, 3]);
  });
});
