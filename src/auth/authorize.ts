import { readFileSync } from 'node:fs';
import type { FhirModel, Interaction } from '../fhir/definitions.ts';
import { parseCriterion } from '../fhir/search-parser.ts';
import type { Clause } from '../store/resource-store.ts';
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
 * What a request may touch. `restriction` is undefined when the permission is not granted for the
 * type, null when every resource of the type is reachable, and otherwise the clause each
 * reachable resource satisfies (compartment, relationship, granular filters).
 */
export interface Access {
  readonly principal: Principal;
  restriction(type: string, permission: Permission): Clause | null | undefined;
  /** the only top-level elements of `type` the role may see; undefined = unmasked */
  mask(type: string): ReadonlySet<string> | undefined;
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
        scopeNeeded: `${principal.patient ? 'patient' : 'user'}/${type}.${p}`,
      };
    }
  }
  return { allowed: true, access };
}

export function accessFor(principal: Principal, policy: Policy): Access {
  let grants: readonly Grant[] = principal.grants;
  let mask: ReadonlyMap<string, ReadonlySet<string>> = new Map();
  if (principal.role !== undefined) {
    const role = policy.roles.get(principal.role);
    // An unknown role grants nothing: fail closed.
    grants = role ? applyCeiling(grants, role) : [];
    mask = role?.elements ?? mask;
  }
  const cache = new Map<string, Clause | null | undefined>();
  return {
    principal,
    mask: (type) => mask.get(type),
    restriction(type, permission) {
      const key = `${type}.${permission}`;
      if (!cache.has(key)) cache.set(key, restrictionFor(principal, grants, type, permission, policy));
      return cache.get(key);
    },
  };
}

function restrictionFor(
  principal: Principal,
  grants: readonly Grant[],
  type: string,
  permission: Permission,
  policy: Policy,
): Clause | null | undefined {
  const typeModel = policy.model.types.get(type);
  if (!typeModel) return undefined;
  const alternatives: Clause[] = [];
  for (const g of grants) {
    if ((g.type !== type && g.type !== '*') || !g.permissions.has(permission)) continue;
    const all: Clause[] = [];
    if (g.context === 'patient') {
      // See: scopes-and-launch-context.html (patient/ scopes: only the current patient's compartment)
      if (!principal.patient) continue;
      const c = compartmentClause(type, principal.patient, policy);
      if (!c) continue;
      all.push(c);
    } else if (g.context === 'user' && policy.relationship && type !== 'AuditEvent') {
      const practitioner = principal.fhirUser;
      if (!practitioner || !/^Practitioner\/[A-Za-z0-9\-.]{1,64}$/.test(practitioner)) continue;
      const c = relationshipClause(type, practitioner, policy);
      if (!c) continue;
      all.push(c);
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
    if (all.length === 0) return null;
    alternatives.push(all.length === 1 ? all[0] : { kind: 'and', all });
  }
  if (alternatives.length === 0) return undefined;
  return alternatives.length === 1 ? alternatives[0] : { kind: 'or', any: alternatives };
}

/** Resources of `type` in the compartment of Patient/`patient` (R4 CompartmentDefinition). */
export function compartmentClause(type: string, patient: string, policy: Policy): Clause | undefined {
  const params = policy.compartments.get(type);
  if (!params) return undefined;
  const ref = `Patient/${patient}`;
  const any: Clause[] = params.map((param) => ({ kind: 'exists', param, where: [{ field: 'code', op: 'eq', value: ref }] }));
  // See: https://hl7.org/fhir/R4/compartmentdefinition-patient.html (the patient is in its own compartment)
  if (type === 'Patient') any.push({ kind: 'exists', param: '_id', where: [{ field: 'code', op: 'eq', value: patient }] });
  return any.length === 1 ? any[0] : { kind: 'or', any };
}

function relationshipClause(type: string, practitioner: string, policy: Policy): Clause | undefined {
  const rel = policy.relationship!;
  const assigned: Clause = { kind: 'exists', param: rel.param, where: [{ field: 'code', op: 'eq', value: practitioner }] };
  if (type === 'Patient') return assigned;
  const params = policy.compartments.get(type);
  if (!params || params.length === 0) return undefined;
  const any: Clause[] = params.map((param) => ({ kind: 'chain', param, targetType: 'Patient', where: [assigned] }));
  return any.length === 1 ? any[0] : { kind: 'or', any };
}
