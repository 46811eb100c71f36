import { beforeAll, describe, expect, it } from 'vitest';
import { BASE, create, ids, json, ON_MONGODB, PLAIN, type TestApp, testApp } from '../helpers/app.ts';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const SCT = 'http://snomed.info/sct';

/**
 * Searches through the app `t()` returns (`{key}` in a query stands for id[key]): the ids found,
 * sorted; and `names`, the ids of keys, sorted, to compare them with.
 */
function searcher(t: () => TestApp, id: Record<string, string>) {
  return {
    find: async (query: string): Promise<string[]> => {
      const res = await t().app.inject({ method: 'GET', url: `/fhir/${query.replace(/\{(\w+)\}/g, (_m, k: string) => id[k])}` });
      if (res.statusCode !== 200) throw new Error(`${query} → ${res.statusCode} ${res.body}`);
      return ids(json(res)).sort();
    },
    names: (...keys: string[]) => keys.map((k) => id[k]).sort(),
  };
}

describe('search', () => {
  let t: TestApp;
  const id: Record<string, string> = {};
  const { find, names } = searcher(() => t, id);

  beforeAll(async () => {
    // Search semantics on the plain store; the encrypted store is compared to it in test/crypto.
    t = await testApp(PLAIN);
    const p = async (key: string, r: Record<string, unknown>) => {
      id[key] = (await create(t.app, { resourceType: 'Patient', ...r })).id;
    };
    await p('A', {
      identifier: [{ system: 'urn:mrn', value: 'A1', type: { text: 'Medical record number' } }],
      active: true,
      name: [{ family: 'Chalmers', given: ['Peter', 'James'] }],
      telecom: [
        { system: 'phone', value: '555-0101' },
        { system: 'email', value: 'peter@example.org' },
      ],
      gender: 'male',
      birthDate: '1974-12-25',
      address: [{ line: ['534 Erewhon St'], city: 'Pleasantville', postalCode: '3999' }],
      generalPractitioner: [{ reference: 'Practitioner/dr1' }],
      meta: { tag: [{ system: 'urn:tags', code: 'vip' }] },
    });
    await p('B', {
      identifier: [{ system: 'urn:mrn', value: 'B2' }],
      name: [{ family: 'Müller', given: ['Anna'] }],
      gender: 'male',
      birthDate: '1985-06',
    });
    await p('C', {
      identifier: [{ value: 'C3' }],
      active: false,
      name: [{ family: 'Smith', given: ['John'] }],
      gender: 'female',
      birthDate: '1990-05-17',
      deceasedDateTime: '2020-01-01T00:00:00Z',
    });
    const o = async (key: string, r: Record<string, unknown>) => {
      id[key] = (await create(t.app, { resourceType: 'Observation', ...r })).id;
    };
    const hr = { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }] };
    await o('O1', {
      meta: { profile: ['http://hl7.org/fhir/StructureDefinition/vitalsigns'] },
      status: 'final',
      category: [
        { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] },
      ],
      code: hr,
      subject: { reference: `Patient/${id.A}` },
      effectiveDateTime: '2020-03-01T10:00:00Z',
      valueQuantity: { value: 80, unit: 'beats/minute', system: UCUM, code: '/min' },
    });
    await o('O2', {
      status: 'amended',
      code: { coding: [{ system: LOINC, code: '85354-9', display: 'Blood pressure panel' }] },
      subject: { reference: `${BASE}/Patient/${id.A}` },
      effectivePeriod: { start: '2020-01-01', end: '2020-01-31' },
      component: [
        {
          code: { coding: [{ system: LOINC, code: '8480-6' }] },
          valueQuantity: { value: 120, system: UCUM, code: 'mm[Hg]' },
        },
        {
          code: { coding: [{ system: LOINC, code: '8462-4' }] },
          valueQuantity: { value: 80, system: UCUM, code: 'mm[Hg]' },
        },
      ],
    });
    await o('O3', {
      status: 'final',
      code: hr,
      subject: { reference: `Patient/${id.C}`, identifier: { system: 'urn:mrn', value: 'C3' } },
      effectiveDateTime: '2021',
      valueQuantity: { value: 120, unit: 'beats/minute', system: UCUM, code: '/min' },
    });
    await o('O4', {
      status: 'preliminary',
      code: { coding: [{ system: SCT, code: '1234' }], text: 'Antibody screen' },
      subject: { reference: `Patient/${id.C}` },
      valueCodeableConcept: { coding: [{ system: SCT, code: 'positive' }] },
      hasMember: [{ reference: `Observation/${id.O1}` }],
    });
    await o('O5', { status: 'final', code: { text: 'Blood group' }, valueString: 'Blood group A Rh+' });
  });

  // Each row: query → the keys of the resources it must return, exactly.
  it.each<[string, string[]]>([
    // string: prefix, case- and accent-insensitive; :exact; :contains
    ['Patient?family=chal', ['A']],
    ['Patient?family=CHAL', ['A']],
    ['Patient?family:exact=Chalmers', ['A']],
    ['Patient?family:exact=chalmers', []],
    ['Patient?family:contains=alm', ['A']],
    ['Patient?name=muller', ['B']],
    ['Patient?name=müll', ['B']],
    ['Patient?given=pet', ['A']],
    ['Patient?address=erewhon', []],
    ['Patient?address=534', ['A']],
    ['Patient?address-city=pleasant', ['A']],
    ['Patient?address-postalcode=3999', ['A']],
    // OR within a parameter, AND across parameters
    ['Patient?family=chal,smi', ['A', 'C']],
    ['Patient?family=chal&given=john', []],
    ['Patient?family=smi&given=john', ['C']],
    // token: code, system|code, |code, system|, :not, :text
    ['Patient?gender=male', ['A', 'B']],
    ['Patient?gender:not=male', ['C']],
    ['Patient?identifier=urn:mrn|A1', ['A']],
    ['Patient?identifier=A1', ['A']],
    ['Patient?identifier=urn:other|A1', []],
    ['Patient?identifier=urn:mrn|', ['A', 'B']],
    ['Patient?identifier=|C3', ['C']],
    ['Patient?identifier=|A1', []],
    ['Patient?identifier:text=medical', ['A']],
    ['Patient?active=false', ['C']],
    ['Patient?active=true', ['A']],
    ['Patient?deceased=true', ['C']],
    ['Patient?email=peter@example.org', ['A']],
    ['Patient?phone=555-0101', ['A']],
    ['Patient?_tag=urn:tags|vip', ['A']],
    // date: every prefix, partial dates as ranges
    ['Patient?birthdate=1974', ['A']],
    ['Patient?birthdate=1974-12-25', ['A']],
    ['Patient?birthdate=1974-12-25T00:00:00Z', []],
    ['Patient?birthdate=1985', ['B']],
    ['Patient?birthdate=1985-06-10', []],
    ['Patient?birthdate=gt1980', ['B', 'C']],
    ['Patient?birthdate=lt1980', ['A']],
    ['Patient?birthdate=ge1990-05-17', ['C']],
    ['Patient?birthdate=le1985-06', ['A', 'B']],
    ['Patient?birthdate=sa1985', ['C']],
    ['Patient?birthdate=eb1985-06', ['A']],
    ['Patient?birthdate=ne1985', ['A', 'C']],
    ['Patient?birthdate=ap1985-06-15', ['B']],
    ['Patient?birthdate=gt1980&birthdate=lt1989', ['B']],
    ['Patient?death-date=2020', ['C']],
    ['Observation?date=2020-01', ['O2']],
    ['Observation?date=2020', ['O1', 'O2']],
    ['Observation?date=gt2020-02', ['O1', 'O3']],
    ['Observation?date=ge2020-03-01', ['O1', 'O3']],
    ['Observation?date=sa2020-06', ['O3']],
    ['Observation?date=eb2020-02', ['O2']],
    ['Observation?date=2020-03-01T10:00:00Z', ['O1']],
    ['Observation?date=2020-03-01T12:00:00%2B02:00', ['O1']],
    // :missing
    ['Patient?birthdate:missing=false', ['A', 'B', 'C']],
    ['Patient?active:missing=true', ['B']],
    ['Observation?subject:missing=true', ['O5']],
    // reference: Type/id, bare id, absolute URL, :Type, :identifier
    ['Patient?general-practitioner=Practitioner/dr1', ['A']],
    ['Patient?general-practitioner=dr1', ['A']],
    ['Patient?general-practitioner:Practitioner=dr1', ['A']],
    ['Observation?has-member=Observation/{O1}', ['O4']],
    ['Observation?subject=Patient/{A}', ['O1', 'O2']],
    ['Observation?subject={A}', ['O1', 'O2']],
    ['Observation?subject=http://127.0.0.1:8080/fhir/Patient/{A}', ['O1', 'O2']],
    ['Observation?patient={C}', ['O3', 'O4']],
    ['Observation?subject:identifier=urn:mrn|C3', ['O3']],
    // chains
    ['Observation?subject:Patient.family=smith', ['O3', 'O4']],
    ['Observation?patient.family=chal', ['O1', 'O2']],
    ['Observation?patient.gender=male&code=8867-4', ['O1']],
    ['Observation?subject:Patient.identifier=urn:mrn|A1', ['O1', 'O2']],
    // quantity: number, prefixes, system and code, unit
    ['Observation?value-quantity=80', ['O1']],
    ['Observation?value-quantity=gt100', ['O3']],
    ['Observation?value-quantity=le80', ['O1']],
    ['Observation?value-quantity=ne80', ['O3']],
    ['Observation?value-quantity=ap85', ['O1']],
    ['Observation?value-quantity=80|http://unitsofmeasure.org|/min', ['O1']],
    ['Observation?value-quantity=80||/min', ['O1']],
    ['Observation?value-quantity=80||beats/minute', ['O1']],
    ['Observation?value-quantity=80|http://unitsofmeasure.org|mg', []],
    ['Observation?value-quantity=8e1', ['O1']],
    ['Observation?component-value-quantity=120', ['O2']],
    ['Observation?combo-value-quantity=120', ['O2', 'O3']],
    // token on CodeableConcept and :text
    ['Observation?code=http://loinc.org|8867-4', ['O1', 'O3']],
    ['Observation?code=8867-4,1234', ['O1', 'O3', 'O4']],
    ['Observation?code:text=heart', ['O1', 'O3']],
    ['Observation?code:text=antibody', ['O4']],
    ['Observation?combo-code=8480-6', ['O2']],
    ['Observation?value-concept=http://snomed.info/sct|positive', ['O4']],
    ['Observation?status=final,amended', ['O1', 'O2', 'O3', 'O5']],
    ['Observation?status:not=final', ['O2', 'O4']],
    ['Observation?category=vital-signs', ['O1']],
    ['Observation?value-string=blood', ['O5']],
    ['Observation?value-string:contains=group a', ['O5']],
    // composite: both halves from the same component
    ['Observation?code-value-quantity=http://loinc.org|8867-4$gt100', ['O3']],
    ['Observation?code-value-quantity=http://loinc.org|8867-4$80', ['O1']],
    ['Observation?component-code-value-quantity=http://loinc.org|8480-6$120', ['O2']],
    ['Observation?component-code-value-quantity=http://loinc.org|8480-6$80', []],
    ['Observation?code-value-concept=1234$http://snomed.info/sct|positive', ['O4']],
    ['Observation?code-value-string=blood$blood group', []],
    // combo-: the union of the plain and the component parameter (their entries answer it)
    ['Observation?combo-code-value-quantity=http://loinc.org|8480-6$120', ['O2']],
    ['Observation?combo-code-value-quantity=http://loinc.org|8867-4$gt100', ['O3']],
    ['Observation?combo-code-value-quantity=http://loinc.org|8480-6$80', []],
    ['Observation?combo-code-value-concept=1234$positive', ['O4']],
    ['Observation?combo-code=8867-4,8462-4', ['O1', 'O2', 'O3']],
    ['Observation?combo-code:text=heart', ['O1', 'O3']],
    ['Observation?combo-code:not=8867-4', ['O2', 'O4', 'O5']],
    ['Observation?combo-value-concept=positive', ['O4']],
    ['Observation?combo-value-quantity:missing=true', ['O4', 'O5']],
    ['Observation?combo-value-quantity=80', ['O1', 'O2']],
    // uri: exact and :below / :above
    ['Observation?_profile=http://hl7.org/fhir/StructureDefinition/vitalsigns', ['O1']],
    ['Observation?_profile:below=http://hl7.org/fhir/StructureDefinition', ['O1']],
    ['Observation?_profile:above=http://hl7.org/fhir/StructureDefinition/vitalsigns/extra', ['O1']],
    ['Observation?_profile=http://hl7.org/fhir/StructureDefinition', []],
    // _id, _lastUpdated
    ['Patient?_id={A},{C}', ['A', 'C']],
    ['Patient?_lastUpdated=gt2000-01-01', ['A', 'B', 'C']],
    ['Patient?_lastUpdated=lt2000-01-01', []],
  ])('%s', async (query, expected) => {
    expect(await find(query)).toEqual(names(...expected));
  });

  it('sorts by several keys, descending, with missing values last', async () => {
    const bundle = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?_sort=-birthdate' }));
    expect(ids(bundle)).toEqual([id.C, id.B, id.A]);
    const byGender = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?_sort=gender,-family' }));
    expect(ids(byGender)).toEqual([id.C, id.B, id.A]);
    const obs = json(await t.app.inject({ method: 'GET', url: '/fhir/Observation?_sort=date' }));
    expect(ids(obs)).toEqual([id.O2, id.O1, id.O3, id.O4, id.O5].slice(0, 3).concat(ids(obs).slice(3)));
    expect(ids(obs).slice(3).sort()).toEqual([id.O4, id.O5].sort());
    // combo-code: the lowest code of the Observation's and its components': 1234; 8462-4; 8867-4 twice (then by id); none.
    const combo = ids(json(await t.app.inject({ method: 'GET', url: '/fhir/Observation?_sort=combo-code' })));
    expect([combo.slice(0, 2), combo.slice(2, 4), combo[4]]).toEqual([[id.O4, id.O2], [id.O1, id.O3].sort(), id.O5]);
  });

  it('reports totals per _total and answers _summary=count with the total only', async () => {
    const all = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?_count=1' }));
    expect(all.total).toBe(3);
    expect(all.entry).toHaveLength(1);
    const none = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?_total=none' }));
    expect(none.total).toBeUndefined();
    const count = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?gender=male&_summary=count' }));
    expect(count.total).toBe(2);
    expect(count.entry).toBeUndefined();
  });

  it('_include adds the referenced patients once, marked include', async () => {
    const b = json(
      await t.app.inject({ method: 'GET', url: '/fhir/Observation?code=8867-4&_include=Observation:subject' }),
    );
    const byMode = (mode: string) =>
      b.entry
        .filter((e: any) => e.search.mode === mode)
        .map((e: any) => e.resource.id)
        .sort();
    expect(byMode('match')).toEqual(names('O1', 'O3'));
    expect(byMode('include')).toEqual(names('A', 'C'));
    const typed = json(
      await t.app.inject({
        method: 'GET',
        url: '/fhir/Observation?_id={O4}&_include=Observation:has-member:Observation'.replace('{O4}', id.O4),
      }),
    );
    expect(typed.entry.map((e: any) => e.resource.id)).toEqual([id.O4, id.O1]);
  });

  it('_revinclude adds the observations that point at the patients', async () => {
    const b = json(
      await t.app.inject({ method: 'GET', url: `/fhir/Patient?_id=${id.A}&_revinclude=Observation:subject` }),
    );
    expect(
      b.entry
        .filter((e: any) => e.search.mode === 'include')
        .map((e: any) => e.resource.id)
        .sort(),
    ).toEqual(names('O1', 'O2'));
    expect(b.total).toBe(1);
  });

  it('_elements trims matches, keeps mandatory and modifier elements, adds SUBSETTED', async () => {
    const b = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation?_id=${id.O1}&_elements=subject` }));
    const r = b.entry[0].resource;
    expect(Object.keys(r).sort()).toEqual(['code', 'id', 'meta', 'resourceType', 'status', 'subject']);
    expect(r.meta.tag).toContainEqual({
      system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
      code: 'SUBSETTED',
      display: 'subsetted',
    });
  });

  it('_summary on read: true keeps summary elements, text keeps narrative, data drops it', async () => {
    const withText = await create(t.app, {
      resourceType: 'Patient',
      text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' },
      name: [{ family: 'Summary' }],
      contact: [{ name: { family: 'Next of kin' } }],
      maritalStatus: { text: 'single' },
    });
    const get = async (q: string) =>
      json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${withText.id}?${q}` }));
    const s = await get('_summary=true');
    expect(Object.keys(s).sort()).toEqual(['id', 'meta', 'name', 'resourceType']);
    const txt = await get('_summary=text');
    expect(Object.keys(txt).sort()).toEqual(['id', 'meta', 'resourceType', 'text']);
    const data = await get('_summary=data');
    expect(Object.keys(data).sort()).toEqual(['contact', 'id', 'maritalStatus', 'meta', 'name', 'resourceType']);
    const full = await get('_summary=false');
    expect(full.meta.tag).toBeUndefined();
    const el = await get('_elements=maritalStatus,name');
    expect(Object.keys(el).sort()).toEqual(['id', 'maritalStatus', 'meta', 'name', 'resourceType']);
    const hist = json(
      await t.app.inject({ method: 'GET', url: `/fhir/Patient/${withText.id}/_history?_elements=name` }),
    );
    expect(Object.keys(hist.entry[0].resource).sort()).toEqual(['id', 'meta', 'name', 'resourceType']);
    const vread = json(
      await t.app.inject({ method: 'GET', url: `/fhir/Patient/${withText.id}/_history/1?_summary=text` }),
    );
    expect(Object.keys(vread).sort()).toEqual(['id', 'meta', 'resourceType', 'text']);
    await t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${withText.id}` });
  });

  it('POST _search takes form parameters', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/fhir/Patient/_search',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'family=chal',
    });
    expect(res.statusCode).toBe(200);
    expect(ids(json(res))).toEqual([id.A]);
  });

  it('lenient handling ignores unknown parameters and says so in an outcome entry', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/fhir/Patient?family=chal&nonsense=1',
      headers: { prefer: 'handling=lenient' },
    });
    expect(res.statusCode).toBe(200);
    const b = json(res);
    expect(ids(b)).toEqual([id.A]);
    const outcome = b.entry.find((e: any) => e.search.mode === 'outcome').resource;
    expect(outcome.issue[0]).toMatchObject({ severity: 'warning', code: 'not-supported' });
    expect(outcome.issue[0].diagnostics).toContain('nonsense');
    expect(b.link[0].url).not.toContain('nonsense');
  });
});

describe('a reference parameter answered by another\'s entries: Observation\'s patient is its subject where that is a Patient', () => {
  let t: TestApp;
  const id: Record<string, string> = {};
  const { find, names } = searcher(() => t, id);

  beforeAll(async () => {
    t = await testApp(PLAIN);
    id.P = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Narrow' }] })).id;
    const o = async (key: string, subject?: Record<string, unknown>) => {
      id[key] = (await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'narrowing' }, ...(subject ? { subject } : {}) })).id;
    };
    await o('local', { reference: `Patient/${id.P}`, identifier: { system: 'urn:mrn', value: 'N1' } });
    await o('absolute', { reference: 'https://other.example/fhir/Patient/p9' });
    await o('group', { reference: 'Group/g1' });
    await o('identifierOnly', { identifier: { system: 'urn:mrn', value: 'N2' } });
    await o('none');
  });

  it.each<[string, string[]]>([
    ['Observation?code:text=narrowing&patient={P}', ['local']],
    ['Observation?code:text=narrowing&patient=Patient/{P}', ['local']],
    ['Observation?code:text=narrowing&patient=https://other.example/fhir/Patient/p9', ['absolute']],
    // R4: Observation.subject.where(resolve() is Patient) — a Group subject is not a patient.
    ['Observation?code:text=narrowing&patient=Group/g1', []],
    ['Observation?code:text=narrowing&subject=Group/g1', ['group']],
    ['Observation?code:text=narrowing&patient:missing=false', ['local', 'absolute']],
    ['Observation?code:text=narrowing&patient:missing=true', ['group', 'identifierOnly', 'none']],
    ['Observation?code:text=narrowing&subject:missing=true', ['none']],
    // :identifier entries stay the parameter's own: only a Patient reference's identifier.
    ['Observation?patient:identifier=urn:mrn|N1', ['local']],
    ['Observation?patient:identifier=urn:mrn|N2', []],
    ['Observation?subject:identifier=urn:mrn|N2', ['identifierOnly']],
    ['Observation?patient.family=narrow', ['local']],
  ])('%s', async (query, expected) => {
    expect(await find(query)).toEqual(names(...expected));
  });

  it('_include and _revinclude through it', async () => {
    const included = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation?_id=${id.local}&_include=Observation:patient` }));
    expect(included.entry.map((e: any) => [e.resource.id, e.search.mode])).toEqual([[id.local, 'match'], [id.P, 'include']]);
    const rev = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient?_id=${id.P}&_revinclude=Observation:patient` }));
    expect(rev.entry.map((e: any) => [e.resource.id, e.search.mode])).toEqual([[id.P, 'match'], [id.local, 'include']]);
  });

  it('_sort by it is refused, naming the parameter to sort by', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/fhir/Observation?_sort=patient' });
    expect(res.statusCode).toBe(400);
    expect(json(res).issue[0]).toMatchObject({ code: 'invalid', diagnostics: 'cannot sort Observation by "patient": sort by subject' });
  });
});

// R4: Patient `name` is `Patient.name`, `family` is `Patient.name.family`; `address` is
// `Patient.address`, `address-city` is `Patient.address.city`. A part that is a parameter of its
// own is stored once, as that parameter's entries, and answers the whole's searches too.
describe.each([
  ['plain', PLAIN],
  ['encrypted', { HEARTH_SEARCH_DECRYPT_BOUND: '0' }],
])('a string parameter answered by its parts\' entries: Patient name and address (%s store)', (store, env) => {
  let t: TestApp;
  const id: Record<string, string> = {};
  const { find, names } = searcher(() => t, id);

  beforeAll(async () => {
    t = await testApp(env);
    const p = async (key: string, r: Record<string, unknown>) => {
      id[key] = (await create(t.app, { resourceType: 'Patient', gender: 'other', ...r })).id;
    };
    await p('whole', {
      name: [{ text: 'Dr Quentin Partridge', prefix: ['Dr'], family: 'Partridge', given: ['Quentin'], suffix: ['Jr'] }],
      address: [{ line: ['Orchard Row 7'], city: 'Bramley', district: 'Kent', state: 'KT', postalCode: 'BR1', country: 'Elbonia' }],
    });
    await p('parts', { name: [{ family: 'Ashdown', given: ['Bea'] }], address: [{ city: 'Orchardton', postalCode: 'KT9' }] });
    await p('nameless', { address: [{ use: 'home' }] });
  });

  it.each<[string, string[]]>([
    ['gender=other&name=partr', ['whole']], // its family
    ['gender=other&name=quen', ['whole']], // its given, and its text
    ['gender=other&name=dr', ['whole']], // its prefix and text: the whole's own entries
    ['gender=other&name=jr', ['whole']], // its suffix
    ['gender=other&name=ash', ['parts']],
    ['gender=other&name=bea', ['parts']],
    ['gender=other&name:exact=Ashdown', ['parts']],
    ['gender=other&name:exact=ashdown', []],
    ['gender=other&name:exact=Dr Quentin Partridge', ['whole']],
    ['gender=other&phonetic=ash', ['parts']],
    ['gender=other&name=ash,dr', ['whole', 'parts']],
    ['gender=other&name:missing=true', ['nameless']],
    ['gender=other&name:missing=false', ['whole', 'parts']],
    ['gender=other&family=dr', []],
    ['gender=other&address=orchard', ['whole', 'parts']], // a line; a city
    ['gender=other&address=kent', ['whole']], // a district: no parameter of its own
    ['gender=other&address=kt', ['whole', 'parts']], // a state; a postal code
    ['gender=other&address=elbon', ['whole']],
    ['gender=other&address:exact=Bramley', ['whole']],
    ['gender=other&address-city=orchard', ['parts']],
    ['gender=other&address:missing=true', ['nameless']],
  ])('Patient?%s', async (query, expected) => {
    expect(await find(`Patient?${query}`)).toEqual(names(...expected));
  });

  it('_sort=name orders by the lowest of all its parts, its own and its parameters\'', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/fhir/Patient?gender=other&_sort=name' });
    if (store === 'encrypted') {
      expect(res.statusCode).toBe(400);
      expect(json(res).issue[0]).toMatchObject({ code: 'not-supported', diagnostics: 'cannot sort by name: it reads elements encrypted at rest' });
      return;
    }
    expect(res.statusCode, res.body).toBe(200);
    // "ashdown" < "bea"; "dr" (the whole's lowest, its own prefix) < "jr" < "partridge"; none last.
    expect(ids(json(res))).toEqual([id.parts, id.whole, id.nameless]);
    const down = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?gender=other&_sort=-name' }));
    // the highest: "quentin" (given) > "bea"
    expect(ids(down)).toEqual([id.whole, id.parts, id.nameless]);
  });
});

describe('paging', () => {
  // Small data on the MongoDB pass: the wire-protocol test server slows with every document.
  const N = ON_MONGODB ? 90 : 250;
  it(`walks ${N} resources forward and back through next/previous links while data changes`, async () => {
    const t = await testApp(PLAIN);
    const created: string[] = [];
    for (let i = 0; i < N; i++) {
      const r = await create(t.app, {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: LOINC, code: 'paging' }] },
        valueQuantity: { value: i % 17 },
      });
      created.push(r.id);
    }
    const seen: string[] = [];
    let url: string | undefined = '/fhir/Observation?code=paging&_sort=value-quantity&_count=40';
    let pages = 0;
    let lastUrl = '';
    while (url) {
      const b = json(await t.app.inject({ method: 'GET', url }));
      expect(b.total).toBe(N + (pages > 0 ? 1 : 0));
      seen.push(...ids(b));
      pages++;
      if (pages === 1) {
        // a resource created after paging began sorts before the cursor: it must not shift later pages
        await create(t.app, {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: LOINC, code: 'paging' }] },
          valueQuantity: { value: -1 },
        });
      }
      lastUrl = url;
      const next = b.link.find((l: any) => l.relation === 'next');
      url = next ? next.url.replace(BASE, '/fhir') : undefined;
    }
    expect(pages).toBe(Math.ceil(N / 40));
    expect(new Set(seen).size).toBe(N);
    expect([...seen].sort()).toEqual([...created].sort());
    const last = json(await t.app.inject({ method: 'GET', url: lastUrl }));
    const prev = json(
      await t.app.inject({
        method: 'GET',
        url: last.link.find((l: any) => l.relation === 'previous').url.replace(BASE, '/fhir'),
      }),
    );
    const lastPage = Math.ceil(N / 40) - 1;
    expect(ids(prev)).toEqual(seen.slice((lastPage - 1) * 40, lastPage * 40));
    // (on the wire-protocol test server this takes 20-30 s of its time, more on a busy machine)
  }, ON_MONGODB ? 90_000 : undefined);
});
