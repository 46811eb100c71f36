import type { Clause, EntryPredicate, TextOp } from './query.ts';
import type { SearchParamDef } from './definitions.ts';

// Every clause over a parameter's index entries is made here, whoever makes it (the search
// parser, a compartment restriction, a _revinclude), because a parameter's entries are not always
// its own: SearchParamDef.indexedAs, .narrows, .parts and .unionOf name the parameters whose entries
// answer it, and a clause that named the parameter itself would find nothing (or only some).

/**
 * "Some entry of `def` satisfies `where`", over the entries that answer it. `selective`: `where`
 * is the equality of a whole string (`:exact`), which names few resources (Clause.selective).
 */
export function answerClause(def: SearchParamDef, where: readonly EntryPredicate[], selective = false): Clause {
  const exists = (param: string, w = where): Clause => ({ kind: 'exists', param, where: w, ...askedOf(def, param), ...(selective ? { selective } : {}) });
  if (def.type === 'composite' && where.length === 0) {
    // :missing of a composite: whether it has a group, which its first component's entry tells.
    return anyOf((def.unionOf ?? [def.code]).map((param): Clause => ({ kind: 'exists', param: `${param}$0`, where, ...askedOf(def, param) })));
  }
  if (def.unionOf) return anyOf(def.unionOf.map((param) => exists(param)));
  if (def.parts) return anyOf([def.indexedAs ?? def.code, ...def.parts.values()].map((param) => exists(param)));
  if (!def.narrows) return exists(def.indexedAs ?? def.code);
  const { params, targetType } = def.narrows;
  const alternatives = toTargetType(where, targetType);
  return anyOf(params.flatMap((param) => alternatives.map((w) => exists(param, w))));
}

/** "Some group of the composite `def` has, for each component i, an entry satisfying `components[i]`", over the groups that answer it. */
export function compositeClause(def: SearchParamDef, components: readonly (readonly EntryPredicate[])[]): Clause {
  return anyOf((def.unionOf ?? [def.code]).map((param): Clause => ({ kind: 'composite', param, components, ...askedOf(def, param) })));
}

const askedOf = (def: SearchParamDef, param: string) => (param === def.code ? {} : { asked: def.code });

/** "Some reference of `def` points at a `targetType` resource satisfying `where`", over the entries that answer it. */
export function chainClause(def: SearchParamDef, targetType: string, where: readonly Clause[]): Clause {
  // A chain follows only references to its target type, which is the narrowing's own.
  const params = def.narrows && def.narrows.targetType === targetType ? def.narrows.params : [def.code];
  return anyOf(params.map((param): Clause => ({ kind: 'chain', param, targetType, where })));
}

export function anyOf(clauses: readonly Clause[]): Clause {
  return clauses.length === 1 ? clauses[0] : { kind: 'or', any: clauses };
}

/**
 * `where` over another parameter's entries, kept to references to `type` — what R4's
 * `.where(resolve() is Type)` keeps, a relative `Type/id` or an absolute `…/Type/id` (references
 * are stored normalised: relative to this server, without `_history`). An equality keeps the
 * values that are such references (none left: no alternative, which matches nothing); otherwise
 * (`:missing`) each form of such a reference is one alternative.
 */
function toTargetType(where: readonly EntryPredicate[], type: string): (readonly EntryPredicate[])[] {
  const pinned = where.find((p): p is Extract<EntryPredicate, { op: TextOp }> => p.field === 'code' && (p.op === 'eq' || p.op === 'in'));
  if (pinned) {
    const values = [pinned.value].flat().filter((v): v is string => typeof v === 'string' && isReferenceTo(v, type));
    if (values.length === 0) return [];
    if (pinned.op === 'eq') return [where];
    return [where.map((p) => (p === pinned ? { ...pinned, value: values } : p))];
  }
  return [
    [...where, { field: 'code', op: 'prefix', value: `${type}/` }],
    [...where, { field: 'code', op: 'contains', value: `/${type}/` }],
  ];
}

function isReferenceTo(reference: string, type: string): boolean {
  const at = reference.lastIndexOf(`${type}/`);
  return at !== -1 && (at === 0 || reference[at - 1] === '/') && !reference.slice(at + type.length + 1).includes('/');
}
