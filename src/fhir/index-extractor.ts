import type { IndexEntry } from './query.ts';
import type { SearchParamDef, SearchParamType, TypeModel } from './definitions.ts';
import { dateRange, MAX_TIME, MIN_TIME, normalizeReference, normalizeString, STRING_PARTS } from './search-values.ts';
import { numberValue } from './json.ts';

type Fields = Omit<IndexEntry, 'param' | 'grp'>;
type Node = Record<string, unknown>;

const isObject = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Per type model, the parameters extractIndex evaluates, in order: one array, walked without an iterator. */
const INDEXED = new WeakMap<TypeModel, readonly SearchParamDef[]>();

function indexedParams(model: TypeModel): readonly SearchParamDef[] {
  let defs = INDEXED.get(model);
  if (!defs) {
    defs = [...model.params.values()].filter((def) => !def.indexedAs && !def.unionOf);
    INDEXED.set(model, defs);
  }
  return defs;
}

/**
 * Evaluates every search parameter of the resource's type (HL7's FHIRPath expressions) into the
 * index entries the store persists. Runs once per write, never at search time.
 */
export function extractIndex(model: TypeModel, resource: object, baseUrl: string): IndexEntry[] {
  const entries: IndexEntry[] = [];
  for (const def of indexedParams(model)) {
    if (def.type === 'composite') {
      extractComposite(def, resource, baseUrl, entries);
      continue;
    }
    const start = entries.length;
    for (const node of safeEvaluate(def.evaluate, resource)) {
      // A narrowed reference parameter's values are its sources' entries (SearchParamDef.narrows),
      // and those of a part that is a parameter of its own are that parameter's (SearchParamDef.parts).
      const before = entries.length;
      if (!def.narrows) {
        if (def.parts) stringEntries(node, def.code, entries, def.parts);
        else entriesOf(def.type, node, baseUrl, def.code, entries);
      }
      if (def.type === 'reference') {
        // A reference with no searchable target (only an identifier or a display, or to a contained
        // resource) is still a value of the element: present for :missing, matching no target.
        // See: https://hl7.org/fhir/R4/search.html#missing
        const present = entries.length === before && !def.narrows && isObject(node) && Object.keys(node).length > 0;
        if (present) entries.push({ param: def.code, grp: 0 });
        // See: https://hl7.org/fhir/R4/search.html#reference (the :identifier modifier)
        const identifier = isObject(node) && isObject(node.identifier) ? node.identifier : undefined;
        if (identifier && typeof identifier.value === 'string') {
          entries.push({
            param: `${def.code}:identifier`,
            grp: 0,
            sys: str(identifier.system),
            code: identifier.value,
          });
        }
      }
    }
    if (entries.length - start > 1) dropRepeats(entries, start);
  }
  return entries;
}

function extractComposite(def: SearchParamDef, resource: object, baseUrl: string, out: IndexEntry[]): void {
  const components = def.components ?? [];
  let grp = 0;
  for (const base of safeEvaluate(def.evaluate, resource)) {
    const perComponent: IndexEntry[][] = [];
    for (const [i, c] of components.entries()) {
      const values: IndexEntry[] = [];
      for (const n of safeEvaluate(c.evaluate, base)) entriesOf(c.type, n, baseUrl, `${def.code}$${i}`, values);
      // a component without a value: no combination of this base
      if (values.length === 0) break;
      perComponent.push(values);
    }
    if (perComponent.length < components.length) continue;
    // One group per combination of component values, so that both halves must match together.
    for (const combo of cartesian(perComponent)) {
      grp++;
      for (const e of combo) out.push({ ...e, grp });
    }
  }
}

function cartesian<T>(lists: T[][]): T[][] {
  // (one value a component, the usual case: one combination)
  if (lists.every((l) => l.length === 1)) return [lists.map((l) => l[0])];
  return lists.reduce<T[][]>((acc, list) => acc.flatMap((prefix) => list.map((v) => [...prefix, v])), [[]]);
}

function safeEvaluate(evaluate: (r: unknown) => unknown[], node: unknown): unknown[] {
  try {
    return evaluate(node);
  } catch {
    // An expression that cannot evaluate on this instance indexes nothing for it.
    return [];
  }
}

/** The search values of `node` for a parameter of `type` (what a compartment's references are). */
export function valuesOf(type: SearchParamType, node: unknown, baseUrl: string): Fields[] {
  const out: IndexEntry[] = [];
  entriesOf(type, node, baseUrl, '', out);
  return out;
}

type Entry = { -readonly [K in keyof IndexEntry]: IndexEntry[K] };

/** Appends the index entries of `param` that `node` makes, for a parameter of `type`, to `out` (group 0). */
function entriesOf(type: SearchParamType, node: unknown, baseUrl: string, param: string, out: Entry[]): void {
  switch (type) {
    case 'token':
      return tokenEntries(node, param, out);
    case 'string':
      return stringEntries(node, param, out);
    case 'date':
      return dateEntries(node, param, out);
    case 'number': {
      const n = numberValue(node);
      if (n !== undefined) out.push({ param, grp: 0, lo: n, hi: n });
      return;
    }
    case 'quantity': {
      if (!isObject(node)) return;
      const n = numberValue(node.value);
      if (n !== undefined) out.push({ param, grp: 0, lo: n, hi: n, sys: str(node.system), code: str(node.code), text: str(node.unit) });
      return;
    }
    case 'reference': {
      // a canonical, or a reference (not to a contained resource)
      if (typeof node === 'string') out.push({ param, grp: 0, code: node });
      const ref = isObject(node) ? str(node.reference) : undefined;
      if (ref && !ref.startsWith('#')) out.push({ param, grp: 0, code: normalizeReference(ref, baseUrl) });
      return;
    }
    case 'uri':
      if (typeof node === 'string') out.push({ param, grp: 0, code: node });
      return;
    default:
  }
}

function tokenEntries(node: unknown, param: string, out: Entry[]): void {
  if (typeof node === 'string' || typeof node === 'boolean') {
    out.push({ param, grp: 0, code: String(node) });
    return;
  }
  if (!isObject(node)) return;
  if (Array.isArray(node.coding) || typeof node.text === 'string') {
    const text = str(node.text);
    if (Array.isArray(node.coding)) {
      for (const c of node.coding as unknown[]) {
        if (!isObject(c)) continue;
        out.push({ param, grp: 0, sys: str(c.system), code: str(c.code), text: normalizeOrUndefined(str(c.display) ?? text) });
      }
    }
    if (text !== undefined) out.push({ param, grp: 0, text: normalizeString(text) });
    return;
  }
  if ('code' in node || 'display' in node) {
    out.push({ param, grp: 0, sys: str(node.system), code: str(node.code), text: normalizeOrUndefined(str(node.display)) });
    return;
  }
  if ('value' in node && typeof node.value === 'string') {
    // Identifier and ContactPoint: system|value; the identifier type's text feeds :text.
    const type = isObject(node.type) ? str(node.type.text) : undefined;
    out.push({ param, grp: 0, sys: str(node.system), code: node.value, text: normalizeOrUndefined(type) });
  }
}

const normalizeOrUndefined = (s: string | undefined) => (s === undefined ? undefined : normalizeString(s));

/** A string's entries: the normalised form for prefix searches, the exact one for `:exact`; `skip`: parts left out. */
function stringEntries(node: unknown, param: string, out: Entry[], skip?: ReadonlyMap<string, string>): void {
  if (typeof node === 'string') {
    out.push({ param, grp: 0, code: normalizeString(node), text: node });
    return;
  }
  if (!isObject(node)) return;
  for (const key of STRING_PARTS) {
    if (skip?.has(key)) continue;
    const v = node[key];
    if (typeof v === 'string') out.push({ param, grp: 0, code: normalizeString(v), text: v });
    else if (Array.isArray(v)) for (const s of v) if (typeof s === 'string') out.push({ param, grp: 0, code: normalizeString(s), text: s });
  }
}

function dateEntries(node: unknown, param: string, out: Entry[]): void {
  if (typeof node === 'string') {
    const r = dateRange(node);
    if (r) out.push({ param, grp: 0, lo: r.lo, hi: r.hi });
    return;
  }
  if (!isObject(node)) return;
  if ('start' in node || 'end' in node) {
    const start = typeof node.start === 'string' ? dateRange(node.start) : undefined;
    const end = typeof node.end === 'string' ? dateRange(node.end) : undefined;
    out.push({ param, grp: 0, lo: start?.lo ?? MIN_TIME, hi: end?.hi ?? MAX_TIME });
    return;
  }
  if (Array.isArray(node.event)) for (const e of node.event) dateEntries(e, param, out);
}

/**
 * Drops repeated entries among one parameter's, `entries[start..]` (only a parameter's own entries
 * can repeat one another: every other parameter's name differs), keeping the first of each.
 */
function dropRepeats(entries: IndexEntry[], start: number): void {
  let kept = start;
  for (let i = start; i < entries.length; i++) {
    const e = entries[i];
    let repeated = false;
    for (let j = start; j < kept && !repeated; j++) repeated = same(entries[j], e);
    if (!repeated) entries[kept++] = e;
  }
  entries.length = kept;
}

const same = (a: IndexEntry, b: IndexEntry) =>
  a.param === b.param && a.grp === b.grp && a.sys === b.sys && a.code === b.code && a.text === b.text && a.lo === b.lo && a.hi === b.hi;
