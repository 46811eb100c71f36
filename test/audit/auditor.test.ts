import { beforeAll, describe, expect, it } from 'vitest';
import { BASE, create, ids, json, type TestApp, testApp } from '../helpers/app.ts';

describe('auditors search, include and report on the trail', () => {
  let t: TestApp;
  let auditor: Record<string, string>;
  let patient: string;
  const rid: Record<string, string> = {};

  beforeAll(async () => {
    t = await testApp();
    patient = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Tracked' }] })).id;
    const nurse = await t.token({ sub: 'nurse-1', client_id: 'ward-app', fhirUser: 'Practitioner/n1', scope: 'user/*.rs', role: 'nurse' });
    const send = async (key: string, url: string, headers: Record<string, string>, remoteAddress = '127.0.0.1') => {
      const res = await t.app.inject({ method: 'GET', url, headers, remoteAddress });
      rid[key] = res.headers['x-request-id'] as string;
      t.tick(1000);
    };
    t.tick(3600_000);
    await send('nurseRead', `/fhir/Patient/${patient}`, { authorization: `Bearer ${nurse}` }, '10.0.0.7');
    await send('nurseSearch', '/fhir/Observation?patient=' + patient, { authorization: `Bearer ${nurse}` }, '10.0.0.7');
    await send('denied', '/fhir/AuditEvent', { authorization: `Bearer ${nurse}` }, '10.0.0.7');
    await send('anonymous', '/fhir/Patient', { authorization: '' }, '192.0.2.9');
    auditor = { authorization: `Bearer ${await t.token({ sub: 'aud-1', scope: 'user/AuditEvent.rs', role: 'auditor' })}` };
  });

  const find = async (query: string) => {
    const res = await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?${query}`, headers: auditor });
    expect(res.statusCode, res.body).toBe(200);
    return ids(json(res));
  };

  it.each<[string, string[]]>([
    ['agent=Practitioner/n1', ['nurseRead', 'nurseSearch', 'denied']],
    ['agent-name=nurse', ['nurseRead', 'nurseSearch', 'denied']],
    ['agent:identifier=https://issuer.test/realms/hearth|ward-app', ['nurseRead', 'nurseSearch', 'denied']],
    ['address=192.0.2.9', ['anonymous']],
    ['address=10.0.0.7&outcome=4', ['denied']],
    ['patient={patient}&subtype=read', ['nurseRead']],
    ['entity=Patient/{patient}&action=R', ['nurseRead']],
    ['subtype=http://hl7.org/fhir/restful-interaction|search-type&agent=Practitioner/n1', ['nurseSearch', 'denied']],
    ['action=E&outcome=0&agent-name=nurse', ['nurseSearch']],
    ['type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest&address=192.0.2.9', ['anonymous']],
    ['source:identifier=urn:hearth:server|http://127.0.0.1:8080/fhir&address=192.0.2.9', ['anonymous']],
    ['policy=urn:hearth:scope:user/*.rs&outcome=4', ['denied']],
    ['date=ge2026-01-15T11:00:00Z&address=10.0.0.7', ['nurseRead', 'nurseSearch', 'denied']],
    ['date=lt2026-01-15T10:30:00Z&address=10.0.0.7', []],
    // An AuditEvent's last update is its recording (it has no meta; its Last-Modified is `recorded`).
    ['_lastUpdated=ge2026-01-15T11:00:00Z&address=10.0.0.7', ['nurseRead', 'nurseSearch', 'denied']],
    ['_lastUpdated=lt2026-01-15T11:00:01Z&address=10.0.0.7', ['nurseRead']],
    ['_lastUpdated:missing=true', []],
  ])('AuditEvent?%s', async (query, expected) => {
    const got = await find(query.replaceAll('{patient}', patient));
    expect(got.sort()).toEqual(expected.map((k) => rid[k]).sort());
  });

  it('sorts, pages and includes the patients', async () => {
    const sorted = await find('_sort=-date&_count=2&address=10.0.0.7');
    expect(sorted).toEqual([rid.denied, rid.nurseSearch]);
    expect(await find('_sort=-_lastUpdated&_count=2&address=10.0.0.7')).toEqual([rid.denied, rid.nurseSearch]);
    expect(await find('_sort=_lastUpdated&_count=2&address=10.0.0.7')).toEqual([rid.nurseRead, rid.nurseSearch]);
    const page = json(await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent?_sort=-date&_count=2&address=10.0.0.7', headers: auditor }));
    const next = json(await t.app.inject({ method: 'GET', url: page.link.find((l: any) => l.relation === 'next').url.replace(BASE, '/fhir'), headers: auditor }));
    expect(ids(next)).toEqual([rid.nurseRead]);
    const url = `/fhir/AuditEvent?_id=${rid.nurseRead}&_include=AuditEvent:patient`;
    const admin = json(await t.app.inject({ method: 'GET', url }));
    expect(admin.entry.map((e: any) => `${e.resource.resourceType}/${e.search.mode}`)).toEqual(['AuditEvent/match', 'Patient/include']);
    // the auditor role sees AuditEvents only: the patient it points at is not included
    const inc = json(await t.app.inject({ method: 'GET', url, headers: auditor }));
    expect(inc.entry.map((e: any) => `${e.resource.resourceType}/${e.search.mode}`)).toEqual(['AuditEvent/match']);
  });

  it('audits the auditor reading the trail', async () => {
    const res = await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent/${rid.nurseRead}`, headers: auditor });
    expect(res.statusCode).toBe(200);
    const meta = await t.store.read('AuditEvent', res.headers['x-request-id'] as string);
    expect(meta?.resource).toMatchObject({ subtype: [{ code: 'read' }] });
    expect((meta?.resource as any).entity.map((e: any) => e.what.reference)).toEqual([`Patient/${patient}`, `AuditEvent/${rid.nurseRead}/_history/1`]);
  });

  it('reports over a period, for those who may search AuditEvent only', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent/$report?start=2026-01-01&end=2026-02-01&top=5&burst=2', headers: auditor });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const r = json(res);
    expect(r.totals.events).toBeGreaterThanOrEqual(5);
    expect(r.totals.byAction).toMatchObject({ read: expect.any(Number), create: 1 });
    expect(r.refusals).toMatchObject({ unauthenticated: 1, forbidden: 1 });
    expect(r.phiAccess.topPatients[0].patient).toBe(`Patient/${patient}`);
    expect(r.phiAccess.topPatients[0].accesses).toBeGreaterThanOrEqual(2);
    expect(r.uniqueUsers).toBeGreaterThanOrEqual(4);
    expect(r.outsideWorkingHours.events).toBe(0);
    expect(r.bursts.length).toBeGreaterThan(0);
    const html = await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent/$report?start=2026-01-01&end=2026-02-01&format=html', headers: auditor });
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.body).toContain('<svg role="img"');
    expect(html.body).not.toContain('<script');
    const md = await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent/$report?start=2026-01-01&end=2026-02-01&format=md', headers: auditor });
    expect(md.body).toMatch(/^# Audit report /);
    const nurse = await t.token({ scope: 'user/*.rs', role: 'nurse' });
    expect((await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent/$report?start=2026-01-01&end=2026-02-01', headers: { authorization: `Bearer ${nurse}` } })).statusCode).toBe(403);
    for (const q of ['start=2026-01-01', 'start=x&end=2026-02-01', 'start=2026-02-01&end=2026-01-01', 'start=2026-01-01&end=2026-02-01&format=pdf', 'start=2026-01-01&end=2026-02-01&shoe=1']) {
      const bad = await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent/$report?${q}`, headers: auditor });
      expect(bad.statusCode, q).toBe(400);
    }
  });
});
