import { beforeAll, describe, expect, it } from 'vitest';
import { create, ids, json, type TestApp, testApp } from '../helpers/app.ts';

const jtiOf = (token: string): string => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).jti;

// A patient's access to AuditEvents is its accounting of disclosures (HIPAA 45 CFR 164.528):
// only events in which the patient is an entity, and nothing in them about anyone else.
describe('a patient sees who accessed its record, and nothing else of the trail', () => {
  let t: TestApp;
  let a: string;
  let b: string;
  let tokenA: string;
  let hA: Record<string, string>;
  const others: { tokens: string[]; addresses: string[] } = { tokens: [], addresses: ['10.9.8.7', '10.6.6.6', '192.0.2.44'] };
  const rid: Record<string, string> = {};
  const B_NAMES = ['Bcanaryfamily', 'Bcanarygiven'];

  beforeAll(async () => {
    t = await testApp();
    a = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Aownfamily' }] })).id;
    b = (await create(t.app, { resourceType: 'Patient', name: [{ family: B_NAMES[0], given: [B_NAMES[1]] }] })).id;
    await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${a}` } });
    await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${b}` } });
    const doctor = await t.token({ sub: 'dr-house', client_id: 'ward-app', fhirUser: 'Practitioner/dr1', scope: 'user/*.rs', role: 'provider' });
    const tokenB = await t.token({ sub: 'patient-b-login', fhirUser: `Patient/${b}`, patient: b, scope: 'patient/*.rs' });
    tokenA = await t.token({ sub: 'patient-a-login', fhirUser: `Patient/${a}`, patient: a, scope: 'patient/*.rs' });
    hA = { authorization: `Bearer ${tokenA}` };
    others.tokens.push(doctor, tokenB, t.adminToken);
    const send = async (key: string, url: string, token: string, remoteAddress: string) => {
      const res = await t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` }, remoteAddress });
      rid[key] = res.headers['x-request-id'] as string;
      t.tick(1000);
    };
    await send('doctorReadsA', `/fhir/Patient/${a}`, doctor, '10.9.8.7');
    await send('doctorSearchesBoth', `/fhir/Patient?family=${B_NAMES[0]},Aownfamily`, doctor, '10.9.8.7');
    await send('doctorObsBoth', `/fhir/Observation?subject=Patient/${a},Patient/${b}`, doctor, '10.9.8.7');
    await send('doctorReadsB', `/fhir/Patient/${b}`, doctor, '10.9.8.7');
    await send('bTriesA', `/fhir/Patient/${a}`, tokenB, '10.6.6.6');
    await send('adminSearchesB', `/fhir/Patient?family=${B_NAMES[0]}`, t.adminToken, '192.0.2.44');
    // A acting on B's record is about B: in the R4 compartment (agent A) but not in A's accounting.
    await send('aTriesB', `/fhir/Patient/${b}`, tokenA, '127.0.0.1');
    await send('aSearchesB', `/fhir/Observation?subject=Patient/${b}`, tokenA, '127.0.0.1');
  });

  const asA = (url: string) => t.app.inject({ method: 'GET', url, headers: hA });

  it('searching AuditEvent returns exactly the events that name A as an entity', async () => {
    const res = await asA('/fhir/AuditEvent?_count=200');
    expect(res.statusCode).toBe(200);
    const got = ids(json(res));
    for (const k of ['doctorReadsA', 'doctorSearchesBoth', 'doctorObsBoth', 'bTriesA']) expect(got, k).toContain(rid[k]);
    for (const k of ['doctorReadsB', 'adminSearchesB', 'aTriesB', 'aSearchesB']) expect(got, k).not.toContain(rid[k]);
    for (const e of json(res).entry) {
      expect(e.resource.entity.some((x: any) => x.what?.reference === `Patient/${a}`)).toBe(true);
    }
  });

  it('filters its view by when: _lastUpdated is when an event was recorded, as date is', async () => {
    const first = await asA('/fhir/AuditEvent?_count=200');
    const since = ids(json(await asA('/fhir/AuditEvent?_count=200&_lastUpdated=ge2000-01-01&_sort=-_lastUpdated')));
    // (the first search is an access to A's accounting too: its own event is among them now)
    expect([...since].sort()).toEqual([...ids(json(first)), first.headers['x-request-id']].sort());
    expect(ids(json(await asA('/fhir/AuditEvent?_lastUpdated=lt2000-01-01')))).toEqual([]);
  });

  it('holds nothing of B, of other users\' tokens, scopes or addresses, nor any query', async () => {
    const bodies = [
      (await asA('/fhir/AuditEvent?_count=200')).body,
      (await asA(`/fhir/AuditEvent/${rid.doctorSearchesBoth}`)).body,
      (await asA(`/fhir/AuditEvent/${rid.bTriesA}`)).body,
      (await asA('/fhir/AuditEvent?_sort=-date&action=E')).body,
    ];
    const forbidden = [b, ...B_NAMES, 'patient-b-login', ...others.tokens.map(jtiOf), ...others.addresses, 'urn:hearth:scope', 'urn:hearth:token'];
    for (const body of bodies) {
      const resources = JSON.stringify((JSON.parse(body).entry ?? [{ resource: JSON.parse(body) }]).map((e: any) => e.resource));
      for (const f of forbidden) expect(resources, f).not.toContain(f);
      for (const r of JSON.parse(body).entry?.map((e: any) => e.resource) ?? [JSON.parse(body)]) {
        for (const e of r.entity ?? []) expect(e.query).toBeUndefined();
        for (const ag of r.agent) {
          expect(ag.network).toBeUndefined();
          expect(ag.policy).toBeUndefined();
          expect(ag.altId).toBeUndefined();
        }
      }
    }
  });

  it('keeps who, role, application, when, what and outcome; tags the view as subsetted', async () => {
    const e = json(await asA(`/fhir/AuditEvent/${rid.doctorSearchesBoth}`));
    expect(e.meta.tag).toContainEqual({ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' });
    expect(e.subtype).toEqual([{ system: 'http://hl7.org/fhir/restful-interaction', code: 'search-type' }]);
    expect(e.action).toBe('E');
    expect(e.outcome).toBe('0');
    expect(e.agent[0]).toMatchObject({ who: { reference: 'Practitioner/dr1' }, name: 'dr-house', requestor: true, role: [{ coding: [{ code: 'provider' }] }] });
    expect(e.agent[1]).toMatchObject({ name: 'ward-app', requestor: false });
    // A itself, and the version of its own record that the search returned; not B's.
    expect(e.entity.map((x: any) => x.what?.reference).filter(Boolean)).toEqual([`Patient/${a}`, `Patient/${a}/_history/1`]);
    expect(e.entity.find((x: any) => x.role.code === '24')).toEqual({
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '24', display: 'Query' },
      description: 'Patient',
    });
    const obsSearch = json(await asA(`/fhir/AuditEvent/${rid.doctorObsBoth}`));
    expect(obsSearch.entity.filter((x: any) => x.what?.type === 'Observation')).toHaveLength(1);
    const attempt = json(await asA(`/fhir/AuditEvent/${rid.bTriesA}`));
    expect(attempt.outcome).toBe('4');
    expect(attempt.agent[0].who).toEqual({ display: 'another patient' });
    expect(attempt.agent[0].name).toBeUndefined();
  });

  it('an event that does not name A is not found, as any other patient\'s data', async () => {
    const res = await asA(`/fhir/AuditEvent/${rid.doctorReadsB}`);
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('dr-house');
  });

  it.each([
    `patient=Patient/{b}`,
    'address=10.9.8.7',
    'policy=urn:hearth:token:x',
    'entity=Patient/{b}',
    'source=x',
    '_sort=address',
    '_include=AuditEvent:entity',
  ])('refuses to filter its view by what the view leaves out: AuditEvent?%s → 403', async (q) => {
    const res = await asA(`/fhir/AuditEvent?${q.replace('{b}', b)}`);
    expect(res.statusCode).toBe(403);
    expect(json(res).issue[0].code).toBe('forbidden');
  });

  it('refuses to reach AuditEvents through _revinclude from its own record', async () => {
    const res = await asA('/fhir/Patient?_revinclude=AuditEvent:entity');
    expect(res.statusCode).toBe(403);
  });

  it.each([
    ['patient/*.cruds', 'patient/*.cruds'],
    ['patient/AuditEvent.s alone', 'patient/AuditEvent.s'],
  ])('$report with a patient token (%s) → 403, nothing of the report', async (_n, scope) => {
    const tok = await t.token({ patient: a, scope });
    const res = await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent/$report?start=2020-01-01&end=2030-01-01', headers: { authorization: `Bearer ${tok}` } });
    expect(res.statusCode).toBe(403);
    expect(json(res).issue[0].code).toBe('forbidden');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="hearth", error="insufficient_scope", scope="system/AuditEvent.s"');
    expect(res.body).not.toContain(b);
    expect(res.body).not.toContain('topPatients');
  });
});

describe('$report and AuditEvent search under the relationship policy', () => {
  it('a clinician limited to assigned patients gets 403; a role that audits gets the report', async () => {
    const t = await testApp({ HEARTH_AUTH_RELATIONSHIP: 'true' });
    await create(t.app, { resourceType: 'Patient', generalPractitioner: [{ reference: 'Practitioner/dr1' }] });
    const get = async (url: string, claims: Record<string, unknown>) =>
      t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await t.token(claims)}` } });
    const clinician = { scope: 'user/*.cruds', fhirUser: 'Practitioner/dr1' };
    expect((await get('/fhir/AuditEvent/$report?start=2020-01-01&end=2030-01-01', clinician)).statusCode).toBe(403);
    expect((await get('/fhir/AuditEvent', clinician)).statusCode).toBe(403);
    const auditor = { scope: 'user/AuditEvent.rs', fhirUser: 'Practitioner/aud', role: 'auditor' };
    expect((await get('/fhir/AuditEvent/$report?start=2020-01-01&end=2030-01-01', auditor)).statusCode).toBe(200);
    expect((await get('/fhir/AuditEvent', auditor)).statusCode).toBe(200);
  });
});
