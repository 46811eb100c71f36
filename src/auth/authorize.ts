import { readFileSync } from 'node:fs';
import type { FhirModel, Interaction, SearchParamDef } from '../fhir/definitions.ts';
import { answerClause, anyOf, chainClause } from '../fhir/search-clauses.ts';
import { parseCriterion } from '../fhir/search-parser.ts';
import type { Clause } from '../fhir/query.ts';
import { applyCeiling, type Roles } from './roles.ts';
import type { Grant, Permission } from './scopes.ts';

/** Who is asking, as established from a verified access token. */
export interface Principal {
  readonly issuer: string;
  readonly subject?: string;
  readonly clientId?: string;
  /** `Practitioner/123`, `Patient/456`, ... (relative) */
  readonly fhirUser?: string;
  /** patient launch context: a Patient id */
  readonly patient?: string;
  readonly role?: string;
  readonly grants: readonly Grant[];
  readonly scopes: readonly string[];
  readonly tokenId?: string;
  readonly purposeOfUse?: readonly string[];
  readonly expiresAt: number;
}

export interface Policy {
  readonly model: FhirModel;
  readonly roles: Roles;
  readonly baseUrl: string;
  /** clinician access limited to patients whose `param` references the practitioner */
  readonly relationship?: { readonly param: string };
  readonly compartments: ReadonlyMap<string, readonly string[]>;
}

/**
 * Which patients a write may link its resource to, through the references that place it in a
 * Patient compartment: the patient of the launch context, or patients that satisfy `assigned`
 * (the clinician relationship). Undefined: the token may link to any patient.
 */
export interface LinkRule {
  readonly patient?: string;
  readonly assigned?: Clause;
}

/**
 * What a request may touch. `restriction` is undefined when the permission is not granted for the
 * type, null when every resource of the type is reachable, and otherwise the clause each
 * reachable resource satisfies (compartment, relationship, granular filters).
 */
export interface Access {
  readonly principal: Principal;
  restriction(type: string, permission: Permission): Clause | null | undefined;
  /** the only top-level elements of `type` the role may see; undefined = unmasked */
  mask(type: string): ReadonlySet<string> | undefined;
  /** for writes of `type` with `permission`: the patients its compartment links may name */
  links(type: string, permission: Permission): LinkRule | undefined;
  /**
   * `Patient/id` when resources of `type` reach this token only as that patient's accounting of
   * disclosures (AuditEvents about the patient, reduced to who, when, what and why).
   */
  disclosureFor(type: string): string | undefined;
  /** whether `param` may be searched, sorted or included on for `type` (masks and views hide elements) */
  searchable(type: string, param: string): boolean;
}

export type Decision =
  | { readonly allowed: true; readonly access: Access }
  | { readonly allowed: false; readonly reason: string; readonly scopeNeeded: string };

// See: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-fhir-resources
// (c create, r read/vread/history-instance, u update, d delete, s search/history-type)
const PERMISSIONS: Record<Interaction | 'conditional-create' | 'conditional-update', readonly Permission[]> = {
  create: ['c'],
  'conditional-create': ['c', 's'],
  read: ['r'],
  vread: ['r'],
  'history-instance': ['r'],
  update: ['u'],
  'conditional-update': ['u', 's'],
  delete: ['d'],
  'search-type': ['s'],
  'history-type': ['s'],
};

export function permissionsFor(interaction: keyof typeof PERMISSIONS): readonly Permission[] {
  return PERMISSIONS[interaction];
}

/** The R4 Patient CompartmentDefinition: for each type, the parameters that place it in a patient's compartment. */
export function loadCompartments(): ReadonlyMap<string, readonly string[]> {
  const cd = JSON.parse(readFileSync(new URL('../../profiles/compartment-patient.json', import.meta.url), 'utf8')) as {
    resource: { code: string; param?: string[] }[];
  };
  return new Map(cd.resource.map((r) => [r.code, r.param ?? []]));
}

/**
 * The scope context a missing scope is named in: the token's own — patient with a patient in
 * context, system for a token of system/ scopes only, user otherwise.
 */
function contextOf(principal: Principal): 'patient' | 'user' | 'system' {
  if (principal.patient) return 'patient';
  const contexts = new Set(principal.grants.map((g) => g.context));
  return contexts.has('system') && !contexts.has('user') ? 'system' : 'user';
}

/**
 * The authorization decision: pure, no I/O. A request is allowed when, for every permission its
 * interaction needs, some grant (after the role's ceiling) covers the type.
 */
export function authorize(
  principal: Principal,
  interaction: keyof typeof PERMISSIONS,
  type: string,
  policy: Policy,
): Decision {
  const access = accessFor(principal, policy);
  for (const p of PERMISSIONS[interaction]) {
    if (access.restriction(type, p) === undefined) {
      return {
        allowed: false,
        reason: `the token does not grant ${interaction} on ${type}`,
        scopeNeeded: `${contextOf(principal)}/${type}.${p}`,
      };
    }
  }
  return { allowed: true, access };
}

// What a patient may search its accounting of disclosures by: only elements the view keeps, so
// that a filter cannot reveal what the view leaves out (an address, a token id, another patient).
const DISCLOSURE_PARAMS: ReadonlySet<string> = new Set([
  '_id', '_lastUpdated', 'date', 'type', 'subtype', 'action', 'outcome', 'agent', 'agent-name', 'agent-role',
]);

interface Restriction {
  readonly clause: Clause | null | undefined;
  readonly links: LinkRule | undefined;
  /** some alternative reaches the type only through the patient's accounting of disclosures */
  readonly disclosure: boolean;
}

/**
 * Operations: what each needs. A report over the whole trail (`$report`) needs unrestricted
 * search on AuditEvent: no compartment, relationship or granular filter may apply, since the
 * report counts every patient and user. An operation not listed here is refused.
 */
const OPERATIONS: Record<string, { readonly type: string; readonly permissions: readonly Permission[]; readonly unrestricted: boolean }> = {
  $report: { type: 'AuditEvent', permissions: ['s'], unrestricted: true },
};

/** The decision for an operation: the same access as an interaction, plus what the operation demands of it. */
export function authorizeOperation(principal: Principal, operation: string, type: string, policy: Policy): Decision {
  const op = OPERATIONS[operation];
  if (!op || op.type !== type) {
    return { allowed: false, reason: `${type}/${operation} is not an operation this server authorizes`, scopeNeeded: `system/${type}.s` };
  }
  const access = accessFor(principal, policy);
  for (const p of op.permissions) {
    const r = access.restriction(type, p);
    if (r === undefined || (op.unrestricted && r !== null)) {
      return {
        allowed: false,
        reason:
          r === undefined
            ? `the token does not grant ${operation} on ${type}`
            : `${operation} covers every patient and user, so it needs unrestricted ${p} on ${type} (a system/ scope or an auditing role); ` +
              'a patient sees who accessed their record through AuditEvent search',
        scopeNeeded: `system/${type}.${p}`,
      };
    }
  }
  return { allowed: true, access };
}

export function accessFor(principal: Principal, policy: Policy): Access {
  let grants: readonly Grant[] = principal.grants;
  let mask: ReadonlyMap<string, ReadonlySet<string>> = new Map();
  let audits = false;
  if (principal.role !== undefined) {
    const role = policy.roles.get(principal.role);
    // An unknown role grants nothing: fail closed.
    grants = role ? applyCeiling(grants, role) : [];
    mask = role?.elements ?? mask;
    audits = role?.audit ?? false;
  }
  const cache = new Map<string, Restriction>();
  const of = (type: string, permission: Permission): Restriction => {
    const key = `${type}.${permission}`;
    let r = cache.get(key);
    if (!r) {
      r = restrictionFor(principal, grants, type, permission, policy, audits);
      cache.set(key, r);
    }
    return r;
  };
  const disclosureFor = (type: string): string | undefined => {
    if (type !== 'AuditEvent' || !principal.patient) return undefined;
    const r = of(type, 'r');
    const s = of(type, 's');
    return (r.clause && r.disclosure) || (s.clause && s.disclosure) ? `Patient/${principal.patient}` : undefined;
  };
  return {
    principal,
    mask: (type) => mask.get(type),
    restriction: (type, permission) => of(type, permission).clause,
    links: (type, permission) => of(type, permission).links,
    disclosureFor,
    searchable(type, param) {
      const code = param.split(/[:$.]/)[0];
      if (disclosureFor(type) && !DISCLOSURE_PARAMS.has(code)) return false;
      const m = mask.get(type);
      if (!m) return true;
      const def = policy.model.types.get(type)?.params.get(code);
      return (def?.elements ?? []).every((e) => e === 'id' || e === 'meta' || m.has(e));
    },
  };
}

function restrictionFor(
  principal: Principal,
  grants: readonly Grant[],
  type: string,
  permission: Permission,
  policy: Policy,
  audits: boolean,
): Restriction {
  const none: Restriction = { clause: undefined, links: undefined, disclosure: false };
  const typeModel = policy.model.types.get(type);
  if (!typeModel) return none;
  const alternatives: Clause[] = [];
  let patientLinks: string | undefined;
  let assignedLinks: Clause | undefined;
  let disclosure = false;
  let anyLinksFree = false;
  for (const g of grants) {
    if ((g.type !== type && g.type !== '*') || !g.permissions.has(permission)) continue;
    const all: Clause[] = [];
    let linksFree = true;
    if (g.context === 'patient') {
      // See: scopes-and-launch-context.html (patient/ scopes: only the current patient's compartment)
      if (!principal.patient) continue;
      const c = type === 'AuditEvent' ? disclosureClause(principal.patient) : compartmentClause(type, principal.patient, policy);
      if (!c) continue;
      all.push(c);
      patientLinks = principal.patient;
      linksFree = false;
      if (type === 'AuditEvent') disclosure = true;
    } else if (g.context === 'user' && policy.relationship && type === 'AuditEvent') {
      // A clinician limited to assigned patients reads the trail of everyone only in a role that audits.
      if (!audits) continue;
    } else if (g.context === 'user' && policy.relationship) {
      const practitioner = principal.fhirUser;
      if (!practitioner || !/^Practitioner\/[A-Za-z0-9\-.]{1,64}$/.test(practitioner)) continue;
      const c = relationshipClause(type, practitioner, policy);
      if (!c) continue;
      all.push(c);
      assignedLinks = assignedClause(practitioner, policy);
      linksFree = false;
    }
    if (g.filter) {
      try {
        for (const [name, value] of g.filter) {
          all.push(
            parseCriterion(policy.model, typeModel, name, value, {
              defaultCount: 1,
              maxCount: 1,
              strict: true,
              baseUrl: policy.baseUrl,
              clock: () => new Date(principal.expiresAt * 1000),
            }, 0),
          );
        }
      } catch {
        continue; // a granular scope this server cannot read grants nothing
      }
    }
    if (all.length === 0) return { clause: null, links: undefined, disclosure: false };
    alternatives.push(all.length === 1 ? all[0] : { kind: 'and', all });
    anyLinksFree ||= linksFree;
  }
  if (alternatives.length === 0) return none;
  const clause = alternatives.length === 1 ? alternatives[0] : { kind: 'or' as const, any: alternatives };
  return { clause, links: anyLinksFree ? undefined : { patient: patientLinks, assigned: assignedLinks }, disclosure };
}

/** Resources of `type` in the compartment of Patient/`patient` (R4 CompartmentDefinition). */
export function compartmentClause(type: string, patient: string, policy: Policy): Clause | undefined {
  const params = policy.compartments.get(type);
  if (!params) return undefined;
  const ref = `Patient/${patient}`;
  const any: Clause[] = params.map((param) => answerClause(paramOf(policy, type, param), [{ field: 'code', op: 'eq', value: ref }]));
  // See: https://hl7.org/fhir/R4/compartmentdefinition-patient.html (the patient is in its own compartment)
  if (type === 'Patient') any.push({ kind: 'exists', param: '_id', where: [{ field: 'code', op: 'eq', value: patient }] });
  return anyOf(any);
}

/**
 * The AuditEvents a patient may see: those that name the patient as an entity (whose data was
 * touched), not those where the patient merely acted — the R4 compartment's `patient` parameter
 * would include both.
 */
function disclosureClause(patient: string): Clause {
  return { kind: 'exists', param: 'entity', where: [{ field: 'code', op: 'eq', value: `Patient/${patient}` }] };
}

/** Patients assigned to the practitioner under the relationship policy. */
function assignedClause(practitioner: string, policy: Policy): Clause {
  return answerClause(paramOf(policy, 'Patient', policy.relationship!.param), [{ field: 'code', op: 'eq', value: practitioner }]);
}

/** A search parameter the policy names; the policy's loading checked that the type has it. */
function paramOf(policy: Policy, type: string, code: string): SearchParamDef {
  const def = policy.model.types.get(type)?.params.get(code);
  if (!def) throw new Error(`${type} has no search parameter ${code}`);
  return def;
}

function relationshipClause(type: string, practitioner: string, policy: Policy): Clause | undefined {
  const assigned = assignedClause(practitioner, policy);
  if (type === 'Patient') return assigned;
  const params = policy.compartments.get(type);
  if (!params || params.length === 0) return undefined;
  const any: Clause[] = params.map((param) => chainClause(paramOf(policy, type, param), 'Patient', [assigned]));
  return anyOf(any);
}
