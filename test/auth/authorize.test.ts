import { describe, expect, it } from 'vitest';
import { type Access, authorize, authorizeOperation, loadCompartments, type Policy, type Principal } from '../../src/auth/authorize.ts';
import { loadRoles } from '../../src/auth/roles.ts';
import { parseScopes } from '../../src/auth/scopes.ts';
import { loadFhirModel } from '../../src/fhir/definitions.ts';

const model = loadFhirModel({ updateCreate: false });
const policy: Policy = { model, roles: loadRoles(), baseUrl: 'http://x/fhir', compartments: loadCompartments() };
const withRelationship: Policy = { ...policy, relationship: { param: 'general-practitioner' } };

const principal = (scope: string, extra: Partial<Principal> = {}): Principal => ({
  issuer: 'https://issuer',
  grants: parseScopes(scope),
  scopes: scope.split(' '),
  expiresAt: 2_000_000_000,
  ...extra,
});

const access = (p: Principal, interaction: Parameters<typeof authorize>[1], type: string, pol = policy): Access => {
  const d = authorize(p, interaction, type, pol);
  if (!d.allowed) throw new Error(`denied: ${d.reason}`);
  return d.access;
};

describe('authorize (pure)', () => {
  it.each<[string, Partial<Principal>, Parameters<typeof authorize>[1], string, boolean]>([
    ['system/*.cruds', {}, 'read', 'Patient', true],
    ['system/*.cruds', {}, 'delete', 'AuditEvent', true],
    ['system/*.rs', {}, 'create', 'Patient', false],
    ['user/Patient.r', {}, 'read', 'Patient', true],
    ['user/Patient.r', {}, 'vread', 'Patient', true],
    ['user/Patient.r', {}, 'history-instance', 'Patient', true],
    ['user/Patient.r', {}, 'search-type', 'Patient', false],
    ['user/Patient.r', {}, 'history-type', 'Patient', false],
    ['user/Patient.r', {}, 'read', 'Observation', false],
    ['user/Patient.c', {}, 'create', 'Patient', true],
    ['user/Patient.c', {}, 'conditional-create', 'Patient', false],
    ['user/Patient.cs', {}, 'conditional-create', 'Patient', true],
    ['user/Patient.u', {}, 'update', 'Patient', true],
    ['user/Patient.u', {}, 'conditional-update', 'Patient', false],
    ['user/Patient.us', {}, 'conditional-update', 'Patient', true],
    ['user/Patient.d', {}, 'delete', 'Patient', true],
    ['user/*.read', {}, 'search-type', 'Observation', true],
    ['user/*.write', {}, 'search-type', 'Observation', false],
    ['user/Patient.sr', {}, 'read', 'Patient', false],
    ['patient/Observation.rs', { patient: 'a' }, 'read', 'Observation', true],
    ['patient/Observation.rs', {}, 'read', 'Observation', false],
    ['patient/Observation.rs', { patient: 'a' }, 'create', 'Observation', false],
    ['openid fhirUser launch/patient', { patient: 'a' }, 'read', 'Patient', false],
    // roles as ceilings
    ['user/*.cruds', { role: 'billing' }, 'read', 'Patient', true],
    ['user/*.cruds', { role: 'billing' }, 'create', 'Patient', false],
    ['user/*.cruds', { role: 'billing' }, 'read', 'AuditEvent', false],
    ['user/*.cruds', { role: 'auditor' }, 'search-type', 'AuditEvent', true],
    ['user/*.cruds', { role: 'auditor' }, 'read', 'Patient', false],
    ['system/*.cruds', { role: 'nurse' }, 'read', 'Patient', false],
    ['user/*.cruds', { role: 'nurse' }, 'update', 'Observation', true],
    ['user/*.cruds', { role: 'nurse' }, 'delete', 'Observation', false],
    ['patient/*.cruds', { role: 'patient', patient: 'a' }, 'read', 'Observation', true],
    ['patient/*.cruds', { role: 'patient', patient: 'a' }, 'update', 'Patient', false],
    ['patient/*.cruds', { role: 'patient' }, 'read', 'Patient', false],
    ['system/*.cruds', { role: 'no-such-role' }, 'read', 'Patient', false],
    ['system/*.cruds', { role: 'administrator' }, 'delete', 'Observation', true],
  ])('%s %o: %s %s → %s', (scope, extra, interaction, type, allowed) => {
    expect(authorize(principal(scope, extra), interaction, type, policy).allowed).toBe(allowed);
  });

  it('says which scope was missing', () => {
    const d = authorize(principal('patient/Patient.rs', { patient: 'a' }), 'read', 'Observation', policy);
    expect(d).toEqual({ allowed: false, reason: 'the token does not grant read on Observation', scopeNeeded: 'patient/Observation.r' });
  });

  it('restricts patient-context grants to the compartment', () => {
    const a = access(principal('patient/*.rs', { patient: 'p1' }), 'search-type', 'Observation');
    expect(a.restriction('Observation', 's')).toEqual({
      kind: 'or',
      any: [
        { kind: 'exists', param: 'subject', where: [{ field: 'code', op: 'eq', value: 'Patient/p1' }] },
        { kind: 'exists', param: 'performer', where: [{ field: 'code', op: 'eq', value: 'Patient/p1' }] },
      ],
    });
    expect(a.restriction('Patient', 'r')).toEqual({
      kind: 'or',
      any: [
        { kind: 'exists', param: 'link', where: [{ field: 'code', op: 'eq', value: 'Patient/p1' }] },
        { kind: 'exists', param: '_id', where: [{ field: 'code', op: 'eq', value: 'p1' }] },
      ],
    });
    expect(a.restriction('Observation', 'c')).toBeUndefined();
  });

  it('unions grants: an unrestricted grant wins over a compartment', () => {
    const a = access(principal('patient/Observation.rs user/Observation.rs', { patient: 'p1' }), 'read', 'Observation');
    expect(a.restriction('Observation', 'r')).toBeNull();
  });

  it('turns granular scopes into mandatory filters', () => {
    const a = access(principal('user/Observation.rs?category=laboratory'), 'search-type', 'Observation');
    expect(a.restriction('Observation', 's')).toEqual({
      kind: 'exists',
      param: 'category',
      where: [{ field: 'code', op: 'eq', value: 'laboratory' }],
    });
    const both = access(principal('patient/Observation.rs?category=laboratory', { patient: 'p1' }), 'read', 'Observation');
    expect((both.restriction('Observation', 'r') as { kind: string }).kind).toBe('and');
  });

  it('ignores a granular scope it cannot read rather than widening it', () => {
    const d = authorize(principal('user/Observation.rs?shoe=9'), 'search-type', 'Observation', policy);
    expect(d.allowed).toBe(false);
  });

  it('masks elements by role', () => {
    const a = access(principal('user/*.rs', { role: 'billing' }), 'read', 'Observation');
    expect(a.mask('Observation')?.has('value')).toBe(false);
    expect(a.mask('Observation')?.has('code')).toBe(true);
    expect(a.mask('AuditEvent')).toBeUndefined();
    expect(access(principal('user/*.rs'), 'read', 'Observation').mask('Observation')).toBeUndefined();
  });

  it('limits clinicians to assigned patients when the relationship policy is on', () => {
    const p = principal('user/*.rs', { fhirUser: 'Practitioner/dr1' });
    const a = access(p, 'search-type', 'Patient', withRelationship);
    expect(a.restriction('Patient', 's')).toEqual({
      kind: 'exists',
      param: 'general-practitioner',
      where: [{ field: 'code', op: 'eq', value: 'Practitioner/dr1' }],
    });
    expect((a.restriction('Observation', 's') as { kind: string }).kind).toBe('or');
    // A clinician limited to assigned patients reads the whole trail only in a role that audits.
    expect(a.restriction('AuditEvent', 's')).toBeUndefined();
    const auditor = access(principal('user/*.rs', { fhirUser: 'Practitioner/dr1', role: 'auditor' }), 'search-type', 'AuditEvent', withRelationship);
    expect(auditor.restriction('AuditEvent', 's')).toBeNull();
    expect(authorize(principal('user/*.rs'), 'read', 'Patient', withRelationship).allowed).toBe(false);
    expect(authorize(principal('user/*.rs', { fhirUser: 'Patient/x' }), 'read', 'Patient', withRelationship).allowed).toBe(false);
    expect(authorize(principal('system/*.rs'), 'read', 'Patient', withRelationship).allowed).toBe(true);
  });
});

describe('the policy beyond the scope decision (pure)', () => {
  it.each<[string, string, Partial<Principal>, Policy, boolean, string | undefined]>([
    ['system token', 'system/*.cruds', {}, policy, true, undefined],
    ['unrestricted user token', 'user/AuditEvent.rs', {}, policy, true, undefined],
    ['auditor role', 'user/AuditEvent.rs', { role: 'auditor' }, policy, true, undefined],
    ['administrator role under the relationship policy', 'user/*.cruds', { role: 'administrator', fhirUser: 'Practitioner/a' }, withRelationship, true, undefined],
    ['auditor under the relationship policy', 'user/AuditEvent.rs', { role: 'auditor', fhirUser: 'Practitioner/a' }, withRelationship, true, undefined],
    ['clinician under the relationship policy', 'user/*.cruds', { fhirUser: 'Practitioner/a' }, withRelationship, false, 'the token does not grant $report on AuditEvent'],
    ['patient token', 'patient/*.cruds', { patient: 'p1' }, policy, false, '$report covers every patient and user'],
    ['patient token with AuditEvent search alone', 'patient/AuditEvent.s', { patient: 'p1' }, policy, false, '$report covers every patient and user'],
    ['granular AuditEvent scope', 'user/AuditEvent.rs?action=R', {}, policy, false, '$report covers every patient and user'],
    ['no AuditEvent scope', 'user/Patient.rs', {}, policy, false, 'the token does not grant $report on AuditEvent'],
    ['nurse role', 'user/*.cruds', { role: 'nurse' }, policy, false, 'the token does not grant $report on AuditEvent'],
  ])('$report for a %s', (_name, scope, extra, pol, allowed, reason) => {
    const d = authorizeOperation(principal(scope, extra), '$report', 'AuditEvent', pol);
    expect(d.allowed).toBe(allowed);
    if (!d.allowed) {
      expect(d.reason.startsWith(reason!)).toBe(true);
      expect(d.scopeNeeded).toBe('system/AuditEvent.s');
    }
  });

  it('refuses an operation it does not know, or on another type', () => {
    expect(authorizeOperation(principal('system/*.cruds'), '$purge', 'AuditEvent', policy).allowed).toBe(false);
    expect(authorizeOperation(principal('system/*.cruds'), '$report', 'Patient', policy).allowed).toBe(false);
  });

  it('shows a patient its AuditEvents as an accounting of disclosures: events naming it as an entity', () => {
    const a = access(principal('patient/*.rs', { patient: 'p1' }), 'search-type', 'AuditEvent');
    expect(a.restriction('AuditEvent', 's')).toEqual({ kind: 'exists', param: 'entity', where: [{ field: 'code', op: 'eq', value: 'Patient/p1' }] });
    expect(a.disclosureFor('AuditEvent')).toBe('Patient/p1');
    expect(a.disclosureFor('Observation')).toBeUndefined();
    for (const ok of ['date', 'action', 'outcome', 'agent', 'agent-name', 'subtype', '_id']) expect(a.searchable('AuditEvent', ok), ok).toBe(true);
    for (const no of ['address', 'policy', 'entity', 'patient', 'entity-name', 'entity-type', 'altid', 'site']) {
      expect(a.searchable('AuditEvent', no), no).toBe(false);
    }
    expect(access(principal('system/*.rs', { patient: 'p1' }), 'read', 'AuditEvent').disclosureFor('AuditEvent')).toBeUndefined();
  });

  it('says which patients a write may link to', () => {
    const pat = access(principal('patient/*.cruds', { patient: 'p1' }), 'create', 'Observation');
    expect(pat.links('Observation', 'c')).toEqual({ patient: 'p1', assigned: undefined });
    const clin = access(principal('user/*.cruds', { fhirUser: 'Practitioner/dr1' }), 'create', 'Observation', withRelationship);
    expect(clin.links('Observation', 'c')).toEqual({
      patient: undefined,
      assigned: { kind: 'exists', param: 'general-practitioner', where: [{ field: 'code', op: 'eq', value: 'Practitioner/dr1' }] },
    });
    // Any grant without a compartment leaves links free: the token reaches every patient anyway.
    expect(access(principal('system/*.cruds'), 'create', 'Observation').links('Observation', 'c')).toBeUndefined();
    expect(access(principal('patient/*.cruds user/Observation.c', { patient: 'p1' }), 'create', 'Observation').links('Observation', 'c')).toBeUndefined();
    expect(access(principal('user/Observation.c?category=laboratory'), 'create', 'Observation').links('Observation', 'c')).toBeUndefined();
  });
});
