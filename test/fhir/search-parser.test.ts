import { describe, expect, it } from 'vitest';
import { loadFhirModel } from '../../src/fhir/definitions.ts';
import { parseSearch } from '../../src/fhir/search-parser.ts';

const model = loadFhirModel({ updateCreate: false });
const options = { defaultCount: 10, maxCount: 100, strict: true, baseUrl: 'http://x/fhir', clock: () => new Date('2026-01-15T00:00:00Z') };
const Y1970 = 0;
const Y1971 = Date.UTC(1971, 0, 1);
const eq = (param: string, field: 'code' | 'text' | 'sys', value: string) => ({ kind: 'exists', param, where: [{ field, op: 'eq', value }] });

// The search grammar, one row a form: what each becomes in the store-agnostic query model.
// See: https://hl7.org/fhir/R4/search.html
describe('search grammar → query model', () => {
  it.each<[string, string, [string, string], unknown]>([
    ['string: prefix, case-folded', 'Patient', ['family', 'Smith'], [{ kind: 'exists', param: 'family', where: [{ field: 'code', op: 'prefix', value: 'smith' }] }]],
    // :exact: the normalised code's equality too, which an index looks up (a whole string: selective)
    ['string :exact', 'Patient', ['family:exact', 'Smith'], [{ kind: 'exists', param: 'family', where: [
      { field: 'code', op: 'eq', value: 'smith' }, { field: 'text', op: 'eq', value: 'Smith' },
    ], selective: true }]],
    ['token system|code', 'Patient', ['identifier', 'urn:x|1'], [{ kind: 'exists', param: 'identifier', where: [{ field: 'sys', op: 'eq', value: 'urn:x' }, { field: 'code', op: 'eq', value: '1' }] }]],
    ['OR by comma', 'Patient', ['_id', 'a,b'], [{ kind: 'or', any: [eq('_id', 'code', 'a'), eq('_id', 'code', 'b')] }]],
    ['token :not', 'Patient', ['gender:not', 'male'], [{ kind: 'not', clause: eq('gender', 'code', 'male') }]],
    ['reference', 'Patient', ['general-practitioner', 'Practitioner/1'], [{ kind: 'exists', param: 'general-practitioner', where: [{ field: 'code', op: 'in', value: ['Practitioner/1'] }] }]],
    [':missing=true', 'Patient', ['family:missing', 'true'], [{ kind: 'not', clause: { kind: 'exists', param: 'family', where: [] } }]],
    // R4's Patient `name` is `Patient.name`; its parts `family` and `given` are parameters of their
    // own, whose entries answer it too (SearchParamDef.parts): one alternative each.
    ['a string over its parts', 'Patient', ['name', 'Ab'], [{ kind: 'or', any: [
      { kind: 'exists', param: 'name', where: [{ field: 'code', op: 'prefix', value: 'ab' }] },
      { kind: 'exists', param: 'family', where: [{ field: 'code', op: 'prefix', value: 'ab' }], asked: 'name' },
      { kind: 'exists', param: 'given', where: [{ field: 'code', op: 'prefix', value: 'ab' }], asked: 'name' },
    ] }]],
    ['a string over its parts :missing', 'Patient', ['name:missing', 'true'], [{ kind: 'not', clause: { kind: 'or', any: [
      { kind: 'exists', param: 'name', where: [] },
      { kind: 'exists', param: 'family', where: [], asked: 'name' },
      { kind: 'exists', param: 'given', where: [], asked: 'name' },
    ] } }]],
    ['a string over its parts, answered by another\'s entries', 'Patient', ['phonetic:exact', 'Ab'], [{ kind: 'or', any: ['name', 'family', 'given'].map((param) => (
      { kind: 'exists', param, where: [{ field: 'code', op: 'eq', value: 'ab' }, { field: 'text', op: 'eq', value: 'Ab' }], asked: 'phonetic', selective: true }
    )) }]],
    // R4's combo-code is `Observation.code | Observation.component.code`: code's and component-code's entries.
    ['a union of parameters', 'Observation', ['combo-code', '8480-6'], [{ kind: 'or', any: ['code', 'component-code'].map((param) => (
      { kind: 'exists', param, where: [{ field: 'code', op: 'eq', value: '8480-6' }], asked: 'combo-code' }
    )) }]],
    ['a union of composites', 'Observation', ['combo-code-value-quantity', '8480-6$gt1'], [{ kind: 'or', any: ['code-value-quantity', 'component-code-value-quantity'].map((param) => (
      { kind: 'composite', param, components: [[{ field: 'code', op: 'eq', value: '8480-6' }], [{ field: 'lo', op: 'gt', value: 1 }]], asked: 'combo-code-value-quantity' }
    )) }]],
    ['a union of composites :missing', 'Observation', ['combo-code-value-quantity:missing', 'false'], [{ kind: 'or', any: ['code-value-quantity', 'component-code-value-quantity'].map((param) => (
      { kind: 'exists', param: `${param}$0`, where: [], asked: 'combo-code-value-quantity' }
    )) }]],
    ['an address over its parts', 'Patient', ['address', 'x'], [{ kind: 'or', any: ['address', 'address-city', 'address-state', 'address-postalcode', 'address-country'].map((param) => (
      { kind: 'exists', param, where: [{ field: 'code', op: 'prefix', value: 'x' }], ...(param === 'address' ? {} : { asked: 'address' }) }
    )) }]],
    // ge: the target range overlaps what lies above the value, or lies within the value's range.
    ['date ge a year', 'Patient', ['birthdate', 'ge1970'], [{ kind: 'or', any: [
      { kind: 'exists', param: 'birthdate', where: [{ field: 'hi', op: 'gt', value: Y1971 }] },
      { kind: 'exists', param: 'birthdate', where: [{ field: 'lo', op: 'ge', value: Y1970 }, { field: 'hi', op: 'le', value: Y1971 }] },
    ] }]],
    ['date eq a month: within it', 'Observation', ['date', '2026-01'], [{ kind: 'exists', param: 'date', where: [{ field: 'lo', op: 'ge', value: Date.UTC(2026, 0, 1) }, { field: 'hi', op: 'le', value: Date.UTC(2026, 1, 1) }] }]],
    ['quantity gt', 'Observation', ['value-quantity', 'gt7'], [{ kind: 'exists', param: 'value-quantity', where: [{ field: 'lo', op: 'gt', value: 7 }] }]],
    // eq on a number is the range of its precision: 5 means [4.5, 5.5).
    ['composite token$quantity', 'Observation', ['code-value-quantity', 'http://loinc.org|1$5'], [{ kind: 'composite', param: 'code-value-quantity', components: [
      [{ field: 'sys', op: 'eq', value: 'http://loinc.org' }, { field: 'code', op: 'eq', value: '1' }],
      [{ field: 'lo', op: 'ge', value: 4.5 }, { field: 'lo', op: 'lt', value: 5.5 }],
    ] }]],
    ['chain', 'Observation', ['subject:Patient.family', 'x'], [{ kind: 'chain', param: 'subject', targetType: 'Patient', where: [{ kind: 'exists', param: 'family', where: [{ field: 'code', op: 'prefix', value: 'x' }] }] }]],
    // R4's AuditEvent `patient` is `agent.who` and `entity.what` where they are Patient references:
    // answered by those two parameters' entries, kept to Patient references (search-clauses.ts).
    ['a narrowed reference: its sources\' entries', 'AuditEvent', ['patient', 'p1'], [{ kind: 'or', any: [
      { kind: 'exists', param: 'agent', where: [{ field: 'code', op: 'in', value: ['Patient/p1'] }], asked: 'patient' },
      { kind: 'exists', param: 'entity', where: [{ field: 'code', op: 'in', value: ['Patient/p1'] }], asked: 'patient' },
    ] }]],
    ['a narrowed reference given another type: nothing', 'Observation', ['patient', 'Group/g1'], [{ kind: 'or', any: [] }]],
    ['a narrowed reference, absolute', 'Observation', ['patient', 'https://other.example/fhir/Patient/p9'], [
      { kind: 'exists', param: 'subject', where: [{ field: 'code', op: 'in', value: ['https://other.example/fhir/Patient/p9'] }], asked: 'patient' },
    ]],
    ['a narrowed reference :missing', 'Observation', ['patient:missing', 'true'], [{ kind: 'not', clause: { kind: 'or', any: [
      { kind: 'exists', param: 'subject', where: [{ field: 'code', op: 'prefix', value: 'Patient/' }], asked: 'patient' },
      { kind: 'exists', param: 'subject', where: [{ field: 'code', op: 'contains', value: '/Patient/' }], asked: 'patient' },
    ] } }]],
    ['a narrowed reference :identifier: its own entries', 'Observation', ['patient:identifier', 'urn:mrn|1'], [
      { kind: 'exists', param: 'patient:identifier', where: [{ field: 'sys', op: 'eq', value: 'urn:mrn' }, { field: 'code', op: 'eq', value: '1' }] },
    ]],
    ['a narrowed reference chained', 'AuditEvent', ['patient.family', 'x'], [{ kind: 'or', any: ['agent', 'entity'].map((param) => (
      { kind: 'chain', param, targetType: 'Patient', where: [{ kind: 'exists', param: 'family', where: [{ field: 'code', op: 'prefix', value: 'x' }] }] }
    )) }]],
  ])('%s', (_name, type, pair, where) => {
    expect(parseSearch(model, type, [pair], options).query.where).toEqual(where);
  });

  it('reads _sort keys, _count capped, _total', () => {
    const q = parseSearch(model, 'Patient', [['_sort', '-birthdate,family'], ['_count', '500'], ['_total', 'none']], options).query;
    expect(q.sort).toEqual([{ param: 'birthdate', descending: true, field: 'lo' }, { param: 'family', descending: false, field: 'code' }]);
    expect(q.count).toBe(100);
    expect(q.total).toBe('none');
    // A string over its parts is ordered by its own entries and theirs.
    expect(parseSearch(model, 'Patient', [['_sort', 'phonetic']], options).query.sort).toEqual([
      { param: 'name', also: ['family', 'given'], descending: false, field: 'code', asked: 'phonetic' },
    ]);
  });

  it.each<[string, [string, string][], string]>([
    ['unknown parameter', [['shoe', '1']], 'unknown search parameter "shoe" for Observation'],
    ['bad _count', [['_count', 'x']], '_count must be a non-negative whole number, got "x"'],
    ['_count twice', [['_count', '1'], ['_count', '2']], '_count may appear only once'],
    ['chain on a token', [['status.x', '1']], 'Observation.status is not a reference and cannot be chained'],
    ['_sort by a narrowed reference', [['_sort', 'patient']], 'cannot sort Observation by "patient": sort by subject'],
  ])('refuses %s under strict handling', (_name, pairs, message) => {
    expect(() => parseSearch(model, 'Observation', pairs, options)).toThrow(message);
  });

  it('ignores what it cannot read under lenient handling, and says so', () => {
    const s = parseSearch(model, 'Observation', [['shoe', '1'], ['status', 'final']], { ...options, strict: false });
    expect(s.query.where).toEqual([eq('status', 'code', 'final')]);
    expect(s.ignored).toEqual([{ code: 'not-supported', severity: 'warning', diagnostics: 'ignored search parameter shoe: unknown search parameter "shoe" for Observation' }]);
  });
});
