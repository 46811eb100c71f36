import { describe, expect, it } from 'vitest';
import { loadFhirModel } from '../../src/fhir/definitions.ts';
import { applySubset, parseSubset, SUBSETTED } from '../../src/fhir/subsetting.ts';

const patient = loadFhirModel({ updateCreate: false }).types.get('Patient')!;
const resource = { resourceType: 'Patient', id: 'p1', meta: { versionId: '1' }, name: [{ family: 'S' }], gender: 'female', birthDate: '1970', text: { status: 'generated', div: '<div/>' }, contact: [{ gender: 'male' }] };
const tagged = { versionId: '1', tag: [SUBSETTED] };

// See: https://hl7.org/fhir/R4/search.html#elements and #summary
describe('_elements and _summary', () => {
  it.each<[string, [string, string][], Record<string, unknown>]>([
    ['_elements keeps the named and the mandatory', [['_elements', 'name,birthDate']], { resourceType: 'Patient', id: 'p1', meta: tagged, name: [{ family: 'S' }], birthDate: '1970' }],
    ['_summary=true keeps summary elements', [['_summary', 'true']], { resourceType: 'Patient', id: 'p1', meta: tagged, name: [{ family: 'S' }], gender: 'female', birthDate: '1970' }],
    ['_summary=text keeps the narrative', [['_summary', 'text']], { resourceType: 'Patient', id: 'p1', meta: tagged, text: { status: 'generated', div: '<div/>' } }],
    ['_summary=false is the whole resource', [['_summary', 'false']], resource],
    ['nothing asked is the whole resource', [], resource],
  ])('%s', (_name, params, expected) => {
    expect(applySubset(patient, resource, parseSubset(patient, params))).toEqual(expected);
  });

  it.each<[[string, string][], string]>([
    [[['_elements', 'shoe']], '_elements: "shoe" is not an element of Patient'],
    [[['_summary', 'maybe']], '_summary must be one of true, text, data, count, false, got "maybe"'],
    [[['_summary', 'true'], ['_elements', 'name']], '_elements and _summary cannot be combined'],
    [[['_elements', 'name'], ['_elements', 'gender']], '_elements and _summary may each appear only once'],
  ])('refuses %j', (params, message) => {
    expect(() => parseSubset(patient, params)).toThrow(message);
  });
});
