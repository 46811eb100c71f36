import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, freePort, json, post, put, tempDir, type TestApp, testApp } from '../helpers/app.ts';

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
    expect(await t.storage.resources.writtenBy(`${id}.0`)).toEqual([{ type: 'Patient', id: madeId, versionId: 1, deleted: false, writeId: `${id}.0` }]);
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

const tx = (...entry: unknown[]) => ({ resourceType: 'Bundle', type: 'transaction', entry });
const count = async (t: TestApp, query: string) => json(await t.app.inject({ method: 'GET', url: `/fhir/${query}${query.includes('?') ? '&' : '?'}_total=accurate&_count=0` })).total;

describe('transaction Bundles: all or nothing', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp({ HEARTH_UPDATE_CREATE: 'true' });
  });

  it('resolves urn:uuid fullUrls everywhere they are referenced, in R4 processing order, and answers per entry in Bundle order', async () => {
    const existing = await create(t.app, { ...patient('Conditional'), identifier: [{ system: 'urn:mrn', value: 'C1' }] });
    const doomed = await create(t.app, patient('Doomed'));
    const res = await post(
      t.app,
      '/fhir',
      tx(
        { request: { method: 'GET', url: 'Patient?family=txnew' } },
        {
          fullUrl: 'urn:uuid:11111111-1111-4111-8111-111111111111',
          request: { method: 'POST', url: 'Observation' },
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { text: 'x' },
            subject: { reference: 'urn:uuid:22222222-2222-4222-8222-222222222222' },
            performer: [{ reference: 'urn:uuid:33333333-3333-4333-8333-333333333333' }],
            extension: [{ url: 'http://example.org/about', valueReference: { reference: 'urn:uuid:22222222-2222-4222-8222-222222222222' } }],
            contained: [{ resourceType: 'Patient', id: 'p1', link: [{ other: { reference: 'urn:uuid:22222222-2222-4222-8222-222222222222' }, type: 'seealso' }] }],
          },
        },
        { fullUrl: 'urn:uuid:22222222-2222-4222-8222-222222222222', request: { method: 'POST', url: 'Patient' }, resource: patient('Txnew') },
        {
          fullUrl: 'urn:uuid:33333333-3333-4333-8333-333333333333',
          request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:mrn|C1' },
          resource: { ...patient('Ignored'), identifier: [{ system: 'urn:mrn', value: 'C1' }] },
        },
        { request: { method: 'DELETE', url: `Patient/${doomed.id}` } },
        { request: { method: 'PUT', url: 'Patient?identifier=urn:mrn|C2' }, resource: { ...patient('Condupdate'), identifier: [{ system: 'urn:mrn', value: 'C2' }] } },
        { request: { method: 'PUT', url: 'Patient/chosen-id' }, resource: { ...patient('Chosen'), id: 'chosen-id' } },
      ),
    );
    expect(res.statusCode, res.body).toBe(200);
    const body = json(res);
    expect(body.type).toBe('transaction-response');
    expect(statuses(res)).toEqual(['200 OK', '201 Created', '201 Created', '200 OK', '204 No Content', '201 Created', '201 Created']);
    const [found, obs, made, matched] = body.entry;
    const newId = made.resource.id;
    // the read ran after the writes and sees them
    expect(found.resource.entry.map((e: any) => e.resource.id)).toEqual([newId]);
    expect(matched.resource.id).toBe(existing.id);
    const stored = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation/${obs.resource.id}` }));
    expect(stored.subject.reference).toBe(`Patient/${newId}`);
    expect(stored.performer[0].reference).toBe(`Patient/${existing.id}`);
    expect(stored.extension[0].valueReference.reference).toBe(`Patient/${newId}`);
    expect(stored.contained[0].link[0].other.reference).toBe(`Patient/${newId}`);
    // one lastUpdated for every version the transaction wrote
    const written = body.entry.filter((e: any) => e.response.status === '201 Created');
    expect(written).toHaveLength(4);
    expect(new Set(written.map((e: any) => e.response.lastModified)).size).toBe(1);
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${doomed.id}` })).statusCode).toBe(410);
    expect(await count(t, 'Patient?identifier=urn:mrn|C2')).toBe(1);
    expect(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient/chosen-id' })).name[0].family).toBe('Chosen');
    // In the chain: one write-ahead attempt for the whole transaction, before the entries' events
    // (in processing order: DELETE, conditional POST, POSTs, PUTs, then the read) and the Bundle's.
    const id = res.headers['x-request-id'] as string;
    const chain = (await Array.fromAsync(t.storage.audit.chain())).map((l) => l.id).filter((x) => x.startsWith(id));
    expect(chain).toEqual([`${id}.attempt`, ...[4, 3, 1, 2, 5, 6, 0].map((i) => `${id}.${i}`), id]);
    // every version names its entry, and all are the transaction's
    expect((await t.storage.resources.writtenBy(id)).map((w) => w.writeId).sort()).toEqual([1, 2, 4, 5, 6].map((i) => `${id}.${i}`));
  });

  it('with the audit writer on its thread: entries\' events built during the commit are appended after it, or dropped when it fails', async () => {
    const f = await testApp({}, { dataDir: tempDir() });
    const two = (family: string) => tx(
      { fullUrl: 'urn:uuid:66666666-6666-4666-8666-666666666666', request: { method: 'POST', url: 'Patient' }, resource: patient(family) },
      { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:66666666-6666-4666-8666-666666666666' } } },
    );
    const trail = async (id: string) => {
      await f.auditIndexed();
      const chain = (await Array.fromAsync(f.storage.audit.chain())).map((l) => l.id).filter((x) => x.startsWith(id));
      const events = json(await f.app.inject({ method: 'GET', url: `/fhir/AuditEvent?entity:identifier=${encodeURIComponent(`urn:hearth:request|${id}`)}&_sort=_id` })).entry;
      return { chain, outcomes: events.map((e: any) => [e.resource.id, e.resource.outcome]) };
    };
    f.store.failWith('commit', new Error('disk I/O error'));
    const failed = await post(f.app, '/fhir', two('Stagedfail'));
    expect(failed.statusCode).toBe(500);
    const a = failed.headers['x-request-id'] as string;
    expect(await trail(a)).toEqual({ chain: [`${a}.attempt`, `${a}.0`, `${a}.1`, a], outcomes: [[`${a}.0`, '8'], [`${a}.1`, '8']] });
    f.store.heal();
    const ok = await post(f.app, '/fhir', two('Stagedok'));
    expect(ok.statusCode, ok.body).toBe(200);
    const b = ok.headers['x-request-id'] as string;
    expect(await trail(b)).toEqual({ chain: [`${b}.attempt`, `${b}.0`, `${b}.1`, b], outcomes: [[`${b}.0`, '0'], [`${b}.1`, '0']] });
    expect(await count(f, 'Patient?family=stagedfail')).toBe(0);
    expect(await count(f, 'Patient?family=stagedok')).toBe(1);
  });

  it('one invalid entry: nothing is stored, and the OperationOutcome names the entry by index and fullUrl', async () => {
    const before = await count(t, 'Patient');
    const beforeObs = await count(t, 'Observation');
    const res = await post(
      t.app,
      '/fhir',
      tx(
        { fullUrl: 'urn:uuid:44444444-4444-4444-8444-444444444444', request: { method: 'POST', url: 'Patient' }, resource: patient('Never') },
        { fullUrl: 'urn:uuid:55555555-5555-4555-8555-555555555555', request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'bogus', code: { text: 'x' }, subject: { reference: 'urn:uuid:44444444-4444-4444-8444-444444444444' } } },
      ),
    );
    expect(res.statusCode).toBe(400);
    const issue = json(res).issue[0];
    expect(issue.diagnostics).toMatch(/^entry 1 \(urn:uuid:55555555-5555-4555-8555-555555555555\): /);
    expect(issue.expression).toEqual(['Observation.status']);
    expect(await count(t, 'Patient')).toBe(before);
    expect(await count(t, 'Observation')).toBe(beforeObs);
    // and every entry that was prepared says in its AuditEvent that it did not happen
    const id = res.headers['x-request-id'] as string;
    await t.auditIndexed();
    const events = json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?entity:identifier=${encodeURIComponent(`urn:hearth:request|${id}`)}&_sort=_id` })).entry.map((e: any) => e.resource);
    expect(events.map((e: any) => [e.id, e.outcome])).toEqual([[`${id}.0`, '4'], [`${id}.1`, '4']]);
    expect(json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent/${id}` })).subtype[0].code).toBe('transaction');
  });

  it('refuses references to no entry, a fullUrl twice, and two writes of one resource (the DELETE runs first, so the PUT is named)', async () => {
    const p = await create(t.app, patient('Twice'));
    const cases: [unknown, number, RegExp][] = [
      [tx({ request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:66666666-6666-4666-8666-666666666666' } } }), 400, /^entry 0: the reference urn:uuid:6666/],
      [tx({ fullUrl: 'urn:uuid:1', request: { method: 'POST', url: 'Patient' }, resource: patient('a') }, { fullUrl: 'urn:uuid:1', request: { method: 'POST', url: 'Patient' }, resource: patient('b') }), 400, /^entry 1 \(urn:uuid:1\): this fullUrl is on another entry too/],
      [tx({ request: { method: 'PUT', url: `Patient/${p.id}` }, resource: { ...patient('x'), id: p.id } }, { request: { method: 'DELETE', url: `Patient/${p.id}` } }), 400, new RegExp(`^entry 0: Patient/${p.id} is written by more than one entry`)],
    ];
    for (const [body, status, message] of cases) {
      const res = await post(t.app, '/fhir', body);
      expect(res.statusCode, res.body).toBe(status);
      expect(json(res).issue[0].diagnostics).toMatch(message);
    }
    expect(json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` })).meta.versionId).toBe('1');
  });

  it('a patient token: an entry aimed at another patient\'s compartment fails the whole transaction with 403 naming it', async () => {
    const mine = await create(t.app, patient('Minetx'));
    const other = await create(t.app, patient('Othertx'));
    const token = await t.token({ sub: 'ptx', patient: mine.id, scope: 'patient/*.cruds' });
    const obs = (subject: string) => ({ resourceType: 'Observation', status: 'final', code: { text: 'tx' }, subject: { reference: `Patient/${subject}` } });
    const res = await t.raw.inject({
      method: 'POST',
      url: '/fhir',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify(tx({ request: { method: 'POST', url: 'Observation' }, resource: obs(mine.id) }, { request: { method: 'POST', url: 'Observation' }, resource: obs(other.id) })),
    });
    expect(res.statusCode).toBe(403);
    expect(json(res).issue[0]).toMatchObject({ code: 'forbidden', expression: ['Bundle.entry[1]'] });
    expect(json(res).issue[0].diagnostics).toMatch(/^entry 1: /);
    expect(await count(t, 'Observation?code:text=tx')).toBe(0);
  });

  it('HL7\'s example transaction, its Patient entries: creates, a conditional create, updates by id and by criteria, a delete, reads', async () => {
    const example = JSON.parse(readFileSync(new URL('../fixtures/bundles/bundle-transaction-patients.json', import.meta.url), 'utf8'));
    // What the example assumes exists: a patient with identifier 234234, Patient/123a at version 2, Patient/234.
    await create(t.app, { ...patient('Old'), identifier: [{ system: 'http:/example.org/fhir/ids', value: '234234' }] });
    for (const family of ['One', 'Two']) expect((await put(t.app, '/fhir/Patient/123a', { ...patient(family), id: '123a' })).statusCode).toBeLessThan(300);
    expect((await put(t.app, '/fhir/Patient/234', { ...patient('Gone'), id: '234' })).statusCode).toBe(201);
    const res = await post(t.app, '/fhir', example);
    expect(res.statusCode, res.body).toBe(200);
    expect(statuses(res)).toEqual(['201 Created', '200 OK', '201 Created', '201 Created', '200 OK', '204 No Content', '200 OK', '404 Not Found']);
    expect(json(res).entry[4].response.etag).toBe('W/"3"');
    expect(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient/123' })).id).toBe('123');
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

  it('transaction(): a Patient with 10 Observations referencing it by urn:uuid, read back resolved; one invalid entry stores nothing', async () => {
    const patientUrl = 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000000';
    const obs = (n: number) => ({
      fullUrl: `urn:uuid:aaaaaaaa-0000-4000-8000-${String(n + 1).padStart(12, '0')}`,
      request: { method: 'POST', url: 'Observation' },
      resource: { resourceType: 'Observation', status: 'final', code: { text: 'kit-tx' }, subject: { reference: patientUrl }, valueQuantity: { value: n } },
    });
    const body = tx({ fullUrl: patientUrl, request: { method: 'POST', url: 'Patient' }, resource: patient('Kittx') }, ...Array.from({ length: 10 }, (_, n) => obs(n)));
    const response: any = await client.transaction({ body });
    expect(response.type).toBe('transaction-response');
    expect(response.entry.map((e: any) => e.response.status)).toEqual(Array(11).fill('201 Created'));
    const id = response.entry[0].resource.id;
    const back: any = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${id}`, _count: '50', _sort: 'value-quantity' } });
    expect(back.entry.map((e: any) => [e.resource.subject.reference, e.resource.valueQuantity.value])).toEqual(Array.from({ length: 10 }, (_, n) => [`Patient/${id}`, n]));
    const bad = tx(...(body.entry as any[]).map((e, n) => (n === 5 ? { ...e, resource: { ...e.resource, status: 'bogus' } } : e)));
    const refused = await client.transaction({ body: bad }).then(
      () => undefined,
      (err: any) => err.response,
    );
    expect(refused.status).toBe(400);
    expect(refused.data.issue[0].diagnostics).toMatch(/^entry 5 \(urn:uuid:aaaaaaaa-0000-4000-8000-000000000005\): /);
    expect((await client.search({ resourceType: 'Observation', searchParams: { 'code:text': 'kit-tx', _total: 'accurate', _count: '0' } }) as any).total).toBe(10);
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
