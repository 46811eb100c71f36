import type { IndexEntry } from './query.ts';
import type { SearchParamDef, SearchParamType, TypeModel } from './definitions.ts';
import { dateRange, MAX_TIME, MIN_TIME, normalizeReference, normalizeString, STRING_PARTS } from './search-values.ts';
import { numberValue } from './json.ts';

type Fields = Omit<IndexEntry, 'param' | 'grp'>;
type Node = Record<string, unknown>;

const isObject = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Evaluates every search parameter of the resource's type (HL7's FHIRPath expressions) into the
 * index entries the store persists. Runs once per write, never at search time.
 */
export function extractIndex(model: TypeModel, resource: object, baseUrl: string): IndexEntry[] {
  const entries: IndexEntry[] = [];
  for (const def of model.params.values()) {
    if (def.indexedAs || def.unionOf) continue;
    if (def.type === 'composite') {
      extractComposite(def, resource, baseUrl, entries);
      continue;
    }
    for (const node of safeEvaluate(def.evaluate, resource)) {
      // A narrowed reference parameter's values are its sources' entries (SearchParamDef.narrows),
      // and those of a part that is a parameter of its own are that parameter's (SearchParamDef.parts).
      const values = def.narrows ? [] : def.parts ? stringFields(node, def.parts) : valuesOf(def.type, node, baseUrl);
      for (const f of values) entries.push({ param: def.code, grp: 0, ...f });
      if (def.type === 'reference') {
        // A reference with no searchable target (only an identifier or a display, or to a contained
        // resource) is still a value of the element: present for :missing, matching no target.
        // See: https://hl7.org/fhir/R4/search.html#missing
        const present = values.length === 0 && !def.narrows && isObject(node) && Object.keys(node).length > 0;
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
  }
  return dedupe(entries);
}

function extractComposite(def: SearchParamDef, resource: object, baseUrl: string, out: IndexEntry[]): void {
  const components = def.components ?? [];
  let grp = 0;
  for (const base of safeEvaluate(def.evaluate, resource)) {
    const perComponent = components.map((c) =>
      safeEvaluate(c.evaluate, base).flatMap((n) => valuesOf(c.type, n, baseUrl)),
    );
    if (perComponent.some((v) => v.length === 0)) continue;
    // One group per combination of component values, so that both halves must match together.
    for (const combo of cartesian(perComponent)) {
      grp++;
      combo.forEach((f, i) => {
        out.push({ param: `${def.code}$${i}`, grp, ...f });
      });
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

export function valuesOf(type: SearchParamType, node: unknown, baseUrl: string): Fields[] {
  switch (type) {
    case 'token':
      return tokenValues(node);
    case 'string':
      return stringFields(node);
    case 'date':
      return dateValues(node);
    case 'number':
    {
      const n = numberValue(node);
      return n === undefined ? [] : [{ lo: n, hi: n }];
    }
    case 'quantity': {
      const n = isObject(node) ? numberValue(node.value) : undefined;
      if (!isObject(node) || n === undefined) return [];
      return [{ lo: n, hi: n, sys: str(node.system), code: str(node.code), text: str(node.unit) }];
    }
    case 'reference':
      return referenceValues(node, baseUrl);
    case 'uri':
      return typeof node === 'string' ? [{ code: node }] : [];
    default:
      return [];
  }
}

function tokenValues(node: unknown): Fields[] {
  if (typeof node === 'string') return [{ code: node }];
  if (typeof node === 'boolean') return [{ code: String(node) }];
  if (!isObject(node)) return [];
  if (Array.isArray(node.coding) || typeof node.text === 'string') {
    const text = str(node.text);
    const codings = Array.isArray(node.coding) ? (node.coding as Node[]) : [];
    const out: Fields[] = codings
      .filter(isObject)
      .map((c) => ({ sys: str(c.system), code: str(c.code), text: normalizeOrUndefined(str(c.display) ?? text) }));
    if (text !== undefined) out.push({ text: normalizeString(text) });
    return out;
  }
  if ('code' in node || 'display' in node) {
    return [{ sys: str(node.system), code: str(node.code), text: normalizeOrUndefined(str(node.display)) }];
  }
  if ('value' in node && typeof node.value === 'string') {
    // Identifier and ContactPoint: system|value; the identifier type's text feeds :text.
    const type = isObject(node.type) ? str(node.type.text) : undefined;
    return [{ sys: str(node.system), code: node.value, text: normalizeOrUndefined(type) }];
  }
  return [];
}

const normalizeOrUndefined = (s: string | undefined) => (s === undefined ? undefined : normalizeString(s));

/** A string's entries: the normalised form for prefix searches, the exact one for `:exact`; `skip`: parts left out. */
function stringFields(node: unknown, skip?: ReadonlyMap<string, string>): Fields[] {
  return stringValues(node, skip).map((s) => ({ code: normalizeString(s), text: s }));
}

function stringValues(node: unknown, skip?: ReadonlyMap<string, string>): string[] {
  if (typeof node === 'string') return [node];
  if (!isObject(node)) return [];
  const out: string[] = [];
  for (const key of STRING_PARTS) {
    if (skip?.has(key)) continue;
    const v = node[key];
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) for (const s of v) if (typeof s === 'string') out.push(s);
  }
  return out;
}

function dateValues(node: unknown): Fields[] {
  if (typeof node === 'string') {
    const r = dateRange(node);
    return r ? [r] : [];
  }
  if (!isObject(node)) return [];
  if ('start' in node || 'end' in node) {
    const start = typeof node.start === 'string' ? dateRange(node.start) : undefined;
    const end = typeof node.end === 'string' ? dateRange(node.end) : undefined;
    return [{ lo: start?.lo ?? MIN_TIME, hi: end?.hi ?? MAX_TIME }];
  }
  if (Array.isArray(node.event)) return node.event.flatMap((e) => dateValues(e));
  return [];
}

function referenceValues(node: unknown, baseUrl: string): Fields[] {
  if (typeof node === 'string') return [{ code: node }]; // canonical
  if (!isObject(node)) return [];
  const ref = str(node.reference);
  return ref && !ref.startsWith('#') ? [{ code: normalizeReference(ref, baseUrl) }] : [];
}

/** Drops repeated entries; only a parameter with several entries can repeat one, so only those are keyed. */
function dedupe(entries: IndexEntry[]): IndexEntry[] {
  const counts = new Map<string, number>();
  for (const e of entries) counts.set(e.param, (counts.get(e.param) ?? 0) + 1);
  const seen = new Set<string>();
  return entries.filter((e) => {
    if (counts.get(e.param) === 1) return true;
    const key = `${e.param}\u0000${e.grp}\u0000${e.sys}\u0000${e.code}\u0000${e.text}\u0000${e.lo}\u0000${e.hi}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
