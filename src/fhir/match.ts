import type { Clause, EntryPredicate, IndexEntry } from './query.ts';
import type { FhirModel } from './definitions.ts';
import { extractIndex } from './index-extractor.ts';

/** Loads the current version of `Type/id` for chained clauses; undefined when absent or deleted. */
export type Resolver = (reference: string) => Promise<Record<string, unknown> | undefined>;

/**
 * Does `resource` satisfy `clause`? The in-memory twin of what a store adapter answers in its query
 * language, over the same index entries; used where a single resource must be checked (reads,
 * writes, includes) rather than searched for.
 */
export async function matches(
  model: FhirModel,
  type: string,
  resource: Record<string, unknown>,
  clause: Clause,
  baseUrl: string,
  resolve: Resolver,
): Promise<boolean> {
  const typeModel = model.types.get(type);
  if (!typeModel) return false;
  const entries = extractIndex(typeModel, resource, baseUrl);
  return evaluate(model, entries, clause, baseUrl, resolve);
}

async function evaluate(model: FhirModel, entries: IndexEntry[], clause: Clause, baseUrl: string, resolve: Resolver): Promise<boolean> {
  switch (clause.kind) {
    case 'exists':
      return entries.some((e) => e.param === clause.param && clause.where.every((p) => test(e, p)));
    case 'composite': {
      const first = entries.filter((e) => e.param === `${clause.param}$0` && clause.components[0].every((p) => test(e, p)));
      return first.some((f) =>
        clause.components.every((preds, i) =>
          entries.some((e) => e.param === `${clause.param}$${i}` && e.grp === f.grp && preds.every((p) => test(e, p))),
        ),
      );
    }
    case 'chain': {
      const refs = entries.filter((e) => e.param === clause.param && e.code?.startsWith(`${clause.targetType}/`));
      for (const ref of refs) {
        const target = await resolve(ref.code as string);
        if (!target) continue;
        const targetEntries = extractIndex(model.types.get(clause.targetType)!, target, baseUrl);
        let all = true;
        for (const c of clause.where) {
          if (!(await evaluate(model, targetEntries, c, baseUrl, resolve))) {
            all = false;
            break;
          }
        }
        if (all) return true;
      }
      return false;
    }
    case 'or':
      for (const c of clause.any) if (await evaluate(model, entries, c, baseUrl, resolve)) return true;
      return false;
    case 'and':
      for (const c of clause.all) if (!(await evaluate(model, entries, c, baseUrl, resolve))) return false;
      return true;
    case 'not':
      return !(await evaluate(model, entries, clause.clause, baseUrl, resolve));
  }
}

function test(e: IndexEntry, p: EntryPredicate): boolean {
  const v = e[p.field];
  switch (p.op) {
    case 'null':
      return v === undefined;
    case 'eq':
      return v === p.value;
    case 'ne':
      return v !== undefined && v !== p.value;
    case 'lt':
      return typeof v === 'number' && v < p.value;
    case 'le':
      return typeof v === 'number' && v <= p.value;
    case 'gt':
      return typeof v === 'number' && v > p.value;
    case 'ge':
      return typeof v === 'number' && v >= p.value;
    case 'prefix':
      return typeof v === 'string' && v.startsWith(p.value as string);
    case 'contains':
      return typeof v === 'string' && v.includes(p.value as string);
    case 'in':
      return typeof v === 'string' && (p.value as readonly string[]).includes(v);
    case 'below':
      return typeof v === 'string' && (v === p.value || v.startsWith(`${p.value as string}/`));
  }
}
