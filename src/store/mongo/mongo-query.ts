// Translates the store-agnostic search query (fhir/query.ts) into MongoDB filters over the
// `resources` collection: an `exists` clause is an $elemMatch over the multikey `ix` array (so
// one entry must satisfy all of its predicates, as one search_index row does in SQLite), a
// composite an $elemMatch over `cx` (one element per combination of a group's components), a
// chain a sub-query whose ids feed an $in, and or/and/not are $or/$and/$nor. The same
// semantics as sqlite-query.ts; the contract suite (test/store/contract.ts) holds both to it.
import type { Filter } from 'mongodb';
import type { Clause, EntryPredicate, IndexEntry } from '../../fhir/query.ts';

// The largest code point: `prefix + MAX_CHAR` bounds every string that starts with `prefix`.
const MAX_CHAR = '\u{10FFFF}';

/** One element of a document's `cx` array: a composite group's components, one entry each. */
export interface CompositeElement {
  readonly param: string;
  readonly [component: `c${number}`]: Omit<IndexEntry, 'param' | 'grp'>;
}

export type ResourceDoc = {
  _id: string;
  type: string;
  id: string;
  v: number;
  at: string;
  deleted: boolean;
  body: string | null;
  ix: Omit<IndexEntry, 'grp'>[];
  cx: CompositeElement[];
};

const COMPONENT = /^(.*)\$(\d+)$/;

/**
 * The index entries as stored: plain entries in `ix`, and composite components (`param$i`,
 * grouped by `grp`) as the cross product of each group's components in `cx`, so that one
 * element holds one value of every component of the same group.
 */
export function storedIndex(entries: readonly IndexEntry[]): { ix: ResourceDoc['ix']; cx: CompositeElement[] } {
  const ix: ResourceDoc['ix'] = [];
  const groups = new Map<string, { param: string; parts: Map<number, Omit<IndexEntry, 'param' | 'grp'>[]> }>();
  for (const e of entries) {
    const m = COMPONENT.exec(e.param);
    const { param, grp, ...value } = e;
    if (!m) {
      ix.push(clean({ param, ...value }));
      continue;
    }
    const key = `${m[1]}\u0000${grp}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { param: m[1], parts: new Map() }));
    const i = Number(m[2]);
    g.parts.set(i, [...(g.parts.get(i) ?? []), clean(value)]);
  }
  const cx: CompositeElement[] = [];
  for (const g of groups.values()) {
    const n = Math.max(...g.parts.keys()) + 1;
    let combos: Record<string, unknown>[] = [{ param: g.param }];
    for (let i = 0; i < n; i++) {
      const options = g.parts.get(i) ?? [];
      combos = combos.flatMap((c) => options.map((o) => ({ ...c, [`c${i}`]: o })));
    }
    cx.push(...(combos as unknown as CompositeElement[]));
  }
  return { ix, cx };
}

/** Undefined fields left out: a missing field is what `null` predicates look for. */
function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Resolves a chained parameter's target clauses to the references (`Type/id`) they match. */
export type ChainResolver = (targetType: string, where: Filter<ResourceDoc>) => Promise<string[]>;

/** The filter over `resources` for the clauses of a search of `type` (current, not deleted). */
export async function searchFilter(type: string, clauses: readonly Clause[], chain: ChainResolver): Promise<Filter<ResourceDoc>> {
  const parts: Filter<ResourceDoc>[] = [{ type, deleted: false }];
  for (const c of clauses) parts.push(await clauseFilter(c, chain));
  return parts.length === 1 ? parts[0] : { $and: parts };
}

async function clauseFilter(clause: Clause, chain: ChainResolver): Promise<Filter<ResourceDoc>> {
  switch (clause.kind) {
    case 'exists':
      return { ix: { $elemMatch: { param: clause.param, ...predicates(clause.where, '') } } };
    case 'composite': {
      const match: Record<string, unknown> = { param: clause.param };
      const and: unknown[] = [];
      clause.components.forEach((preds, i) => {
        const p = predicates(preds, `c${i}.`);
        if (p.$and) and.push(...(p.$and as unknown[]));
        delete p.$and;
        Object.assign(match, p);
      });
      if (and.length) match.$and = and;
      return { cx: { $elemMatch: match } };
    }
    case 'chain': {
      const targets = await chain(clause.targetType, await searchFilter(clause.targetType, clause.where, chain));
      return { ix: { $elemMatch: { param: clause.param, code: { $in: targets } } } };
    }
    case 'or':
      // An empty disjunction matches nothing.
      if (clause.any.length === 0) return { _id: { $in: [] } };
      return { $or: await Promise.all(clause.any.map((c) => clauseFilter(c, chain))) };
    case 'and':
      if (clause.all.length === 0) return {};
      return { $and: await Promise.all(clause.all.map((c) => clauseFilter(c, chain))) };
    case 'not':
      return { $nor: [await clauseFilter(clause.clause, chain)] };
  }
}

/**
 * The predicates on one entry as the body of an $elemMatch. Each condition is its own member of
 * an $and, so that two bounds on one field never overwrite each other.
 */
function predicates(preds: readonly EntryPredicate[], prefix: string): Record<string, unknown> {
  const and: Record<string, unknown>[] = [];
  for (const p of preds) {
    const f = `${prefix}${p.field}`;
    switch (p.op) {
      case 'null':
        and.push({ [f]: { $eq: null } });
        break;
      case 'eq':
        and.push({ [f]: { $eq: p.value } });
        break;
      case 'ne':
        // As SQL's `<>`: an entry without the field does not qualify.
        and.push({ [f]: { $exists: true, $ne: p.value } });
        break;
      case 'lt':
      case 'le':
      case 'gt':
      case 'ge':
        and.push({ [f]: { [`$${{ lt: 'lt', le: 'lte', gt: 'gt', ge: 'gte' }[p.op]}`]: p.value } });
        break;
      case 'prefix':
        and.push({ [f]: { $gte: p.value, $lt: `${p.value as string}${MAX_CHAR}` } });
        break;
      case 'contains':
        and.push({ [f]: { $regex: escapeRegex(p.value as string) } });
        break;
      case 'in':
        and.push({ [f]: { $in: p.value as readonly string[] } });
        break;
      case 'below': {
        const v = p.value as string;
        and.push({ $or: [{ [f]: { $eq: v } }, { [f]: { $gte: `${v}/`, $lt: `${v}/${MAX_CHAR}` } }] });
        break;
      }
    }
  }
  return and.length ? { $and: and } : {};
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
