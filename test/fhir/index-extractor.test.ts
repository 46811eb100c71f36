import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildAuditEvent } from '../../src/audit/audit-event.ts';
import { loadFhirModel } from '../../src/fhir/definitions.ts';
import { extractIndex } from '../../src/fhir/index-extractor.ts';
import { bundledExamples, examples } from '../helpers/app.ts';

const model = loadFhirModel({ updateCreate: false });
const entries = (type: string, resource: Record<string, unknown>, params: string[]) =>
  extractIndex(model.types.get(type)!, resource, 'http://x/fhir').filter((e) => params.includes(e.param));

// What the official SearchParameter expressions index, one row a parameter type.
describe('index extraction', () => {
  it.each<[string, string, Record<string, unknown>, string[], unknown[]]>([
    ['string: folded code, exact text', 'Patient', { name: [{ family: 'Smith', given: ['Ann'] }] }, ['family', 'given'], [
      { param: 'family', grp: 0, code: 'smith', text: 'Smith' },
      { param: 'given', grp: 0, code: 'ann', text: 'Ann' },
    ]],
    ['token with system', 'Patient', { identifier: [{ system: 'urn:x', value: '1' }] }, ['identifier'], [{ param: 'identifier', grp: 0, sys: 'urn:x', code: '1' }]],
    ['a partial date as its range', 'Patient', { birthDate: '1970-03' }, ['birthdate'], [{ param: 'birthdate', grp: 0, lo: Date.UTC(1970, 2, 1), hi: Date.UTC(1970, 3, 1) }]],
    ['an absolute reference to this server, version dropped', 'Patient', { generalPractitioner: [{ reference: 'http://x/fhir/Practitioner/9/_history/2' }] }, ['general-practitioner'], [
      { param: 'general-practitioner', grp: 0, code: 'Practitioner/9' },
    ]],
    ['quantity with unit', 'Observation', { status: 'final', code: { text: 'x' }, valueQuantity: { value: 7.5, system: 'http://unitsofmeasure.org', code: 'mg' } }, ['value-quantity'], [
      { param: 'value-quantity', grp: 0, lo: 7.5, hi: 7.5, sys: 'http://unitsofmeasure.org', code: 'mg' },
    ]],
    ['a value repeated is one entry, distinct values each their own', 'Patient', { identifier: [{ system: 'urn:x', value: '1' }, { system: 'urn:x', value: '1' }, { system: 'urn:x', value: '2' }] }, ['identifier'], [
      { param: 'identifier', grp: 0, sys: 'urn:x', code: '1' },
      { param: 'identifier', grp: 0, sys: 'urn:x', code: '2' },
    ]],
    ['composite combinations: one a pair of component values', 'Observation', {
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '1' }, { system: 'http://loinc.org', code: '2' }] },
      valueQuantity: { value: 2 },
    }, ['code-value-quantity$0', 'code-value-quantity$1'], [
      { param: 'code-value-quantity$0', grp: 1, sys: 'http://loinc.org', code: '1' },
      { param: 'code-value-quantity$1', grp: 1, lo: 2, hi: 2 },
      { param: 'code-value-quantity$0', grp: 2, sys: 'http://loinc.org', code: '2' },
      { param: 'code-value-quantity$1', grp: 2, lo: 2, hi: 2 },
    ]],
    ['composite components share a group', 'Observation', { status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '1' }] }, valueQuantity: { value: 2 } }, ['code-value-quantity$0', 'code-value-quantity$1'], [
      { param: 'code-value-quantity$0', grp: 1, sys: 'http://loinc.org', code: '1' },
      { param: 'code-value-quantity$1', grp: 1, lo: 2, hi: 2 },
    ]],
  ])('%s', (_name, type, resource, params, expected) => {
    expect(entries(type, { resourceType: type, id: 'r1', ...resource }, params)).toEqual(expected);
  });
});

// A parameter with the type and expression of an earlier one is answered by that one's entries.
describe('parameters with one definition', () => {
  it.each([
    ['Patient', 'phonetic', 'name'],
    ['Observation', 'gene-amino-acid-change', 'amino-acid-change'],
    ['Observation', 'gene-dnavariant', 'dna-variant'],
  ])('%s %s is answered by %s, and not indexed on its own', (type, param, owner) => {
    expect(model.types.get(type)!.params.get(param)!.indexedAs).toBe(owner);
  });

  it('no other parameter shares another\'s entries, and a Patient\'s name is indexed once', () => {
    const shared = [...model.types.values()].flatMap((t) => [...t.params.values()].filter((p) => p.indexedAs).map((p) => `${t.type}.${p.code}`));
    expect(shared.sort()).toEqual(['AuditEvent._lastUpdated', 'Observation.gene-amino-acid-change', 'Observation.gene-dnavariant', 'Patient.phonetic']);
    const params = extractIndex(model.types.get('Patient')!, { resourceType: 'Patient', id: 'r1', name: [{ text: 'Dr Smith' }] }, 'http://x/fhir').map((e) => e.param);
    expect(params.filter((p) => p === 'name' || p === 'phonetic')).toEqual(['name']);
  });
});

// A string parameter over HumanName or Address is answered by its parts' parameters too.
describe('parameters over parts that are parameters of their own', () => {
  it('are exactly Patient name (family, given), phonetic (as name) and address (city, state, postal code, country)', () => {
    const withParts = [...model.types.values()].flatMap((t) =>
      [...t.params.values()].filter((p) => p.parts).map((p) => [`${t.type}.${p.code}`, Object.fromEntries(p.parts!)]),
    );
    expect(withParts).toEqual([
      ['Patient.name', { family: 'family', given: 'given' }],
      ['Patient.address', { city: 'address-city', state: 'address-state', postalCode: 'address-postalcode', country: 'address-country' }],
      ['Patient.phonetic', { family: 'family', given: 'given' }],
    ]);
  });

  it('store each value once: the whole keeps the parts that are no parameter of their own', () => {
    const patient = {
      resourceType: 'Patient',
      name: [{ text: 'Dr Ann Lee', prefix: ['Dr'], family: 'Lee', given: ['Ann', 'Marie'], suffix: ['III'] }],
      address: [{ line: ['1 Elm St'], city: 'Oak', district: 'Vale', state: 'OR', postalCode: '97000', country: 'US', text: '1 Elm St, Oak' }],
    };
    const entries = extractIndex(model.types.get('Patient')!, patient, 'http://x/fhir');
    const of = (param: string) => entries.filter((e) => e.param === param).map((e) => e.text);
    expect(of('name')).toEqual(['Dr', 'III', 'Dr Ann Lee']);
    expect(of('family')).toEqual(['Lee']);
    expect(of('given')).toEqual(['Ann', 'Marie']);
    expect(of('address')).toEqual(['1 Elm St, Oak', '1 Elm St', 'Vale']);
    expect([of('address-city'), of('address-state'), of('address-postalcode'), of('address-country')]).toEqual([['Oak'], ['OR'], ['97000'], ['US']]);
    expect(of('phonetic')).toEqual([]);
  });
});

// A reference parameter defined as others restricted to one target type is answered by their
// entries (search-clauses.ts), and stores only its :identifier entries.
describe('reference parameters narrowed to a target type', () => {
  it('are exactly AuditEvent.patient (agent, entity) and Observation.patient (subject)', () => {
    const narrowed = [...model.types.values()].flatMap((t) => [...t.params.values()].filter((p) => p.narrows).map((p) => [`${t.type}.${p.code}`, p.narrows]));
    expect(narrowed).toEqual([
      ['Observation.patient', { params: ['subject'], targetType: 'Patient' }],
      ['AuditEvent.patient', { params: ['agent', 'entity'], targetType: 'Patient' }],
    ]);
  });

  it('store no entries of their own but the identifiers of their references', () => {
    const observation = { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/p1', identifier: { system: 'urn:mrn', value: '7' } } };
    expect(extractIndex(model.types.get('Observation')!, observation, 'http://x/fhir').filter((e) => /^(subject|patient)/.test(e.param))).toEqual([
      { param: 'subject', grp: 0, code: 'Patient/p1' },
      { param: 'subject:identifier', grp: 0, sys: 'urn:mrn', code: '7' },
      { param: 'patient:identifier', grp: 0, sys: 'urn:mrn', code: '7' },
    ]);
    const event = {
      resourceType: 'AuditEvent',
      id: 'a1',
      type: { code: 'rest' },
      recorded: '2026-01-01T00:00:00Z',
      agent: [{ who: { reference: 'Patient/p2' }, requestor: true }],
      source: { observer: { display: 'x' } },
      entity: [{ what: { reference: 'Patient/p1' } }, { what: { reference: 'Observation/o1' } }],
    };
    expect(extractIndex(model.types.get('AuditEvent')!, event, 'http://x/fhir').filter((e) => /^(agent|entity|patient)$/.test(e.param))).toEqual([
      { param: 'agent', grp: 0, code: 'Patient/p2' },
      { param: 'entity', grp: 0, code: 'Patient/p1' },
      { param: 'entity', grp: 0, code: 'Observation/o1' },
    ]);
  });
});

// A parameter defined as the union of others' whole expressions is answered by their entries.
describe('parameters defined as the union of others', () => {
  it('are exactly Observation\'s combo- parameters, each over the plain and the component one', () => {
    const unions = [...model.types.values()].flatMap((t) => [...t.params.values()].filter((p) => p.unionOf).map((p) => [`${t.type}.${p.code}`, p.unionOf]));
    expect(Object.fromEntries(unions)).toEqual({
      'Observation.combo-code': ['code', 'component-code'],
      'Observation.combo-code-value-concept': ['code-value-concept', 'component-code-value-concept'],
      'Observation.combo-code-value-quantity': ['code-value-quantity', 'component-code-value-quantity'],
      'Observation.combo-data-absent-reason': ['data-absent-reason', 'component-data-absent-reason'],
      'Observation.combo-value-concept': ['value-concept', 'component-value-concept'],
      'Observation.combo-value-quantity': ['value-quantity', 'component-value-quantity'],
    });
  });

  it('store no entries of their own', () => {
    const observation = {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
      valueQuantity: { value: 1 },
      component: [{ code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: { value: 120 } }],
    };
    const params = new Set(extractIndex(model.types.get('Observation')!, observation, 'http://x/fhir').map((e) => e.param));
    expect([...params].filter((p) => p.startsWith('combo-'))).toEqual([]);
    for (const p of ['code', 'component-code', 'value-quantity', 'component-value-quantity', 'code-value-quantity$1', 'component-code-value-quantity$1']) expect(params).toContain(p);
  });
});

// Pinned as the extractor indexed them on 2026-12-02 (before it was made to allocate less): the
// entries of every official Patient and Observation example, standalone and inside the example
// Bundles, and of an AuditEvent, in order. What a store holds was indexed this way; a change to
// what is indexed must change this digest on purpose.
describe('what every example indexes', () => {
  it('is exactly what it was', () => {
    const audit = buildAuditEvent({
      requestId: 'a1',
      recorded: new Date('2026-01-01T10:00:00Z'),
      interaction: 'create',
      resourceType: 'Observation',
      status: 201,
      principal: { issuer: 'https://i', subject: 's', clientId: 'c', fhirUser: 'Practitioner/1', grants: [], scopes: ['user/*.cruds'], tokenId: 'j', expiresAt: 1 },
      address: '10.0.0.1',
      entities: [{ reference: 'Observation/o/_history/1', role: 'domain' }],
      patients: ['Patient/p'],
      server: { baseUrl: 'http://x/fhir', name: 'Hearth' },
      partOf: 'b1',
    });
    const resources = [...examples('Patient'), ...examples('Observation'), ...bundledExamples()].map((e) => e.resource).concat([audit]);
    const digest = createHash('sha256');
    let count = 0;
    for (const r of resources) {
      const entries = extractIndex(model.types.get(r.resourceType)!, r, 'http://x/fhir');
      count += entries.length;
      digest.update(JSON.stringify(entries));
    }
    expect({ resources: resources.length, count, digest: digest.digest('hex') }).toEqual({ resources: 260, count: 3696, digest: '50629e3b7f0aaa9d16e8ea12c3e790389876b29ed59e6249a5b7102ff97f46af' });
  });
});
