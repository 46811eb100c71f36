import { beforeAll, describe, expect, it } from 'vitest';
import { create, json, put, post, type TestApp, testApp } from '../helpers/app.ts';

// Writes stay in the writer's compartment on every compartment link (R4 Patient
// CompartmentDefinition: Observation.subject and Observation.performer, Patient.link).
describe('a patient-context token writes only into its own record, on every compartment link', () => {
  let t: TestApp;
  let a: string;
  let b: string;
  let tokenA: Record<string, string>;
  const obs = (subject: string, performer?: string[], extra: Record<string, unknown> = {}) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'probe' },
    subject: { reference: `Patient/${subject}` },
    ...(performer ? { performer: performer.map((p) => ({ reference: `Patient/${p}` })) } : {}),
    ...extra,
  });
  const countAll = async () => json(await t.app.inject({ method: 'GET', url: '/fhir/Observation?_summary=count' })).total;
  const asA = (headers: Record<string, string> = {}) => ({ ...tokenA, ...headers });

  beforeAll(async () => {
    t = await testApp();
    a = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Aaa' }] })).id;
    b = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Bbb' }] })).id;
    tokenA = { authorization: `Bearer ${await t.token({ sub: 'patient-a', patient: a, scope: 'patient/*.cruds' })}` };
  });

  it.each([
    ['subject A, performer B', () => obs(a, [b]), 'Observation.performer'],
    ['subject B, performer A', () => obs(b, [a]), 'Observation.subject'],
    ['subject A, performers A and B', () => obs(a, [a, b]), 'Observation.performer'],
  ])('POST with %s → 403 naming the link, nothing stored', async (_n, body, expression) => {
    const before = await countAll();
    const res = await post(t.app, '/fhir/Observation', body(), asA());
    expect(res.statusCode).toBe(403);
    expect(json(res).issue[0]).toMatchObject({ code: 'forbidden', expression: [expression] });
    expect(json(res).issue[0].diagnostics).toContain(`references Patient/${b}`);
    expect(await countAll()).toBe(before);
  });

  it('POST with subject and performer A → 201', async () => {
    expect((await post(t.app, '/fhir/Observation', obs(a, [a]), asA())).statusCode).toBe(201);
  });

  it('PUT of A\'s own Observation moving subject to B (performer A kept) → 403, the stored version unchanged', async () => {
    const mine = await create(t.app, obs(a, [a]));
    const res = await put(t.app, `/fhir/Observation/${mine.id}`, { ...obs(b, [a]), id: mine.id }, asA());
    expect(res.statusCode).toBe(403);
    expect(json(res).issue[0]).toMatchObject({ code: 'forbidden', expression: ['Observation.subject'] });
    const stored = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation/${mine.id}` }));
    expect(stored.meta.versionId).toBe('1');
    expect(stored.subject.reference).toBe(`Patient/${a}`);
  });

  it('PUT adding B as performer → 403', async () => {
    const mine = await create(t.app, obs(a));
    const res = await put(t.app, `/fhir/Observation/${mine.id}`, { ...obs(a, [b]), id: mine.id }, asA());
    expect(res.statusCode).toBe(403);
    expect(json(res).issue[0].expression).toEqual(['Observation.performer']);
  });

  it('PUT or DELETE of an Observation shared with B (performer B) → 403 without naming B, unchanged', async () => {
    const shared = await create(t.app, obs(a, [b]));
    const upd = await put(t.app, `/fhir/Observation/${shared.id}`, { ...obs(a), id: shared.id }, asA());
    expect(upd.statusCode).toBe(403);
    expect(json(upd).issue[0].code).toBe('forbidden');
    expect(upd.body).not.toContain(b);
    const del = await t.app.inject({ method: 'DELETE', url: `/fhir/Observation/${shared.id}`, headers: asA() });
    expect(del.statusCode).toBe(403);
    const stored = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation/${shared.id}` }));
    expect(stored.meta.versionId).toBe('1');
    expect(stored.performer).toEqual([{ reference: `Patient/${b}` }]);
  });

  it('conditional update: the match it would replace is checked too; a new one is created only inside A', async () => {
    const shared = await create(t.app, obs(a, [b], { identifier: [{ system: 'urn:x', value: 'shared-1' }] }));
    const res = await put(t.app, '/fhir/Observation?identifier=urn:x|shared-1', obs(a, undefined, { identifier: [{ system: 'urn:x', value: 'shared-1' }] }), asA());
    expect(res.statusCode).toBe(403);
    expect(json(await t.app.inject({ method: 'GET', url: `/fhir/Observation/${shared.id}` })).meta.versionId).toBe('1');
    const intoB = await put(t.app, '/fhir/Observation?identifier=urn:x|fresh-1', obs(a, [b], { identifier: [{ system: 'urn:x', value: 'fresh-1' }] }), asA());
    expect(intoB.statusCode).toBe(403);
    const fresh = await put(t.app, '/fhir/Observation?identifier=urn:x|fresh-2', obs(a, [a], { identifier: [{ system: 'urn:x', value: 'fresh-2' }] }), asA());
    expect(fresh.statusCode).toBe(201);
    const again = await put(t.app, '/fhir/Observation?identifier=urn:x|fresh-2', obs(a, undefined, { identifier: [{ system: 'urn:x', value: 'fresh-2' }], status: 'amended' }), asA());
    expect(again.statusCode).toBe(200);
    expect(json(again).meta.versionId).toBe('2');
  });

  it('Patient.link: A cannot link its own record to B', async () => {
    const res = await put(t.app, `/fhir/Patient/${a}`, { resourceType: 'Patient', id: a, link: [{ other: { reference: `Patient/${b}` }, type: 'seealso' }] }, asA());
    expect(res.statusCode).toBe(403);
    expect(json(res).issue[0].expression).toEqual(['Patient.link']);
  });

  it('an absolute reference to this server counts as the same link', async () => {
    const res = await post(t.app, '/fhir/Observation', { ...obs(a), performer: [{ reference: `http://127.0.0.1:8080/fhir/Patient/${b}` }] }, asA());
    expect(res.statusCode).toBe(403);
  });

  it('a system token may still write links between patients', async () => {
    expect((await post(t.app, '/fhir/Observation', obs(a, [b]))).statusCode).toBe(201);
  });
});

describe('a clinician under the relationship policy writes only for assigned patients, on every link', () => {
  it('refuses a performer or subject that is not assigned, accepts assigned ones', async () => {
    const t = await testApp({ HEARTH_AUTH_RELATIONSHIP: 'true' });
    const mine = (await create(t.app, { resourceType: 'Patient', generalPractitioner: [{ reference: 'Practitioner/dr1' }] })).id;
    const mine2 = (await create(t.app, { resourceType: 'Patient', generalPractitioner: [{ reference: 'Practitioner/dr1' }] })).id;
    const other = (await create(t.app, { resourceType: 'Patient', generalPractitioner: [{ reference: 'Practitioner/dr2' }] })).id;
    const h = { authorization: `Bearer ${await t.token({ scope: 'user/*.cruds', fhirUser: 'Practitioner/dr1' })}` };
    const o = (subject: string, performer: string) => ({
      resourceType: 'Observation', status: 'final', code: { text: 'x' },
      subject: { reference: `Patient/${subject}` }, performer: [{ reference: `Patient/${performer}` }],
    });
    const bad = await post(t.app, '/fhir/Observation', o(mine, other), h);
    expect(bad.statusCode).toBe(403);
    expect(json(bad).issue[0].expression).toEqual(['Observation.performer']);
    expect((await post(t.app, '/fhir/Observation', o(mine, 'no-such-patient'), h)).statusCode).toBe(403);
    expect((await post(t.app, '/fhir/Observation', o(mine, mine2), h)).statusCode).toBe(201);
    const shared = await create(t.app, o(mine, other));
    const upd = await put(t.app, `/fhir/Observation/${shared.id}`, { ...o(mine, mine), id: shared.id }, h);
    expect(upd.statusCode).toBe(403);
  });
});
