import { describe, expect, it } from 'vitest';
import { parseScope, parseScopes } from '../../src/auth/scopes.ts';

const perms = (scope: string) => {
  const g = parseScope(scope);
  return g ? [g.context, g.type, [...g.permissions].join(''), g.filter ?? null] : null;
};

describe('SMART scope grammar', () => {
  it.each<[string, ReturnType<typeof perms>]>([
    // v2 permission letters, in order
    ['patient/Observation.rs', ['patient', 'Observation', 'rs', null]],
    ['user/Patient.cruds', ['user', 'Patient', 'cruds', null]],
    ['system/*.rs', ['system', '*', 'rs', null]],
    ['patient/*.r', ['patient', '*', 'r', null]],
    ['user/Observation.c', ['user', 'Observation', 'c', null]],
    ['user/Observation.u', ['user', 'Observation', 'u', null]],
    ['user/Observation.d', ['user', 'Observation', 'd', null]],
    ['user/Observation.s', ['user', 'Observation', 's', null]],
    ['user/Observation.cu', ['user', 'Observation', 'cu', null]],
    ['user/Observation.crud', ['user', 'Observation', 'crud', null]],
    ['user/Observation.rud', ['user', 'Observation', 'rud', null]],
    ['system/AuditEvent.rs', ['system', 'AuditEvent', 'rs', null]],
    // v1 equivalents
    ['patient/Observation.read', ['patient', 'Observation', 'rs', null]],
    ['user/*.write', ['user', '*', 'cud', null]],
    ['system/*.*', ['system', '*', 'cruds', null]],
    ['user/Patient.*', ['user', 'Patient', 'cruds', null]],
    ['patient/*.read', ['patient', '*', 'rs', null]],
    // granular v2 scopes
    [
      'patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory',
      ['patient', 'Observation', 'rs', [['category', 'http://terminology.hl7.org/CodeSystem/observation-category|laboratory']]],
    ],
    ['user/Observation.rs?code=1234&status=final', ['user', 'Observation', 'rs', [['code', '1234'], ['status', 'final']]]],
    ['patient/Observation.s?category=vital-signs', ['patient', 'Observation', 's', [['category', 'vital-signs']]]],
    ['user/Observation.rs?code=a%7Cb', ['user', 'Observation', 'rs', [['code', 'a|b']]]],
    // out of order, repeated or unknown letters never widen a grant: the scope is not read at all
    ['patient/Observation.sr', null],
    ['user/Patient.dc', null],
    ['user/Patient.rr', null],
    ['user/Patient.crudss', null],
    ['user/Patient.x', null],
    ['user/Patient.rx', null],
    ['user/Patient.R', null],
    ['user/Patient.scrud', null],
    ['user/Patient.', null],
    ['user/Patient', null],
    // malformed contexts, types and structure
    ['admin/Patient.rs', null],
    ['Patient/Observation.rs', null],
    ['patient/observation.rs', null],
    ['patient/Observation.rs ', null],
    [' patient/Observation.rs', null],
    ['patient//Observation.rs', null],
    ['patient/Observation.rs.x', null],
    ['xpatient/Observation.rs', null],
    ['patient/Obs-ervation.rs', null],
    ['patient/*.', null],
    ['patient/**.rs', null],
    // granular rules: v2 only, one type only, well-formed query
    ['patient/Observation.read?category=laboratory', null],
    ['patient/*.rs?category=laboratory', null],
    ['patient/Observation.rs?', null],
    ['patient/Observation.rs?category', null],
    ['patient/Observation.rs?=x', null],
    ['patient/Observation.rs?category=a&&b=c', null],
    ['patient/Observation.rs?category=%E0%A4%A', null],
    // identity and launch scopes grant no data
    ['openid', null],
    ['fhirUser', null],
    ['launch', null],
    ['launch/patient', null],
    ['offline_access', null],
    ['online_access', null],
    ['', null],
  ])('%s', (scope, expected) => {
    expect(perms(scope)).toEqual(expected);
  });

  it('v1 and v2 spellings of the same access are equal', () => {
    expect(perms('patient/Observation.read')).toEqual(perms('patient/Observation.rs'));
    expect(perms('user/*.*')).toEqual(perms('user/*.cruds'));
  });

  it('reads the scope claim as a space-separated string or a list, skipping what grants nothing', () => {
    expect(parseScopes('openid fhirUser patient/Observation.rs user/Patient.sr').map((g) => g.scope)).toEqual([
      'patient/Observation.rs',
    ]);
    expect(parseScopes(['system/*.rs', 42, 'launch']).map((g) => g.scope)).toEqual(['system/*.rs']);
    expect(parseScopes(undefined)).toEqual([]);
    expect(parseScopes({ scope: 'system/*.rs' })).toEqual([]);
    expect(parseScopes(`system/Observation.rs?code=${'x'.repeat(2000)}`)).toEqual([]);
  });
});
