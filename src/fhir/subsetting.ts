import type { TypeModel } from './definitions.ts';
import { badRequest } from './errors.ts';

export type Summary = 'true' | 'text' | 'data' | 'count' | 'false';

/** How a response is trimmed: nothing, to a list of elements, or to a summary form. */
export type Subset =
  | { kind: 'none' }
  | { kind: 'elements'; names: ReadonlySet<string> }
  | { kind: 'summary'; mode: Summary };

// See: https://hl7.org/fhir/R4/search.html#summary (SUBSETTED marks a partial resource)
export const SUBSETTED = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'SUBSETTED',
  display: 'subsetted',
} as const;

const ALWAYS = new Set(['resourceType', 'id', 'meta']);
const SUMMARIES: readonly Summary[] = ['true', 'text', 'data', 'count', 'false'];

/** Reads `_elements` and `_summary` from the query; unknown element names and summary modes are 400. */
export function parseSubset(model: TypeModel, params: readonly (readonly [string, string])[]): Subset {
  const elements = params.filter(([k]) => k === '_elements');
  const summaries = params.filter(([k]) => k === '_summary');
  if (elements.length > 1 || summaries.length > 1) {
    throw badRequest('HEARTH_SUBSET', '_elements and _summary may each appear only once');
  }
  if (elements.length && summaries.length) {
    throw badRequest('HEARTH_SUBSET', '_elements and _summary cannot be combined');
  }
  if (summaries.length) {
    const mode = summaries[0][1] as Summary;
    if (!SUMMARIES.includes(mode)) {
      throw badRequest('HEARTH_SUBSET', `_summary must be one of ${SUMMARIES.join(', ')}, got "${summaries[0][1]}"`);
    }
    return mode === 'false' ? { kind: 'none' } : { kind: 'summary', mode };
  }
  if (elements.length) {
    const names = new Set<string>();
    for (const raw of elements[0][1].split(',')) {
      const name = raw.trim();
      // See: https://hl7.org/fhir/R4/search.html#elements (base elements only)
      if (!model.elements.has(name) && !stemOf(model, name)) {
        throw badRequest('HEARTH_SUBSET', `_elements: "${name}" is not an element of ${model.type}`);
      }
      names.add(stemOf(model, name) ?? name);
    }
    return { kind: 'elements', names };
  }
  return { kind: 'none' };
}

/** `valueQuantity` → `value`; a plain element name → itself; unknown → undefined. */
function stemOf(model: TypeModel, key: string): string | undefined {
  const bare = key.startsWith('_') ? key.slice(1) : key;
  if (model.elements.has(bare)) return bare;
  for (const [stem, info] of model.elements) {
    if (info.types.length > 1 && bare.startsWith(stem)) {
      const suffix = bare.slice(stem.length);
      if (info.types.some((t) => t[0].toUpperCase() + t.slice(1) === suffix)) return stem;
    }
  }
  return undefined;
}

/**
 * Returns the resource trimmed per `subset`; mandatory and modifier elements are always kept, and a
 * trimmed resource carries the SUBSETTED tag. The input is never modified.
 */
export function applySubset(
  model: TypeModel,
  resource: Record<string, unknown>,
  subset: Subset,
): Record<string, unknown> {
  if (subset.kind === 'none') return resource;
  const keep = (stem: string): boolean => {
    const info = model.elements.get(stem);
    if (ALWAYS.has(stem)) return true;
    if (!info) return false;
    if (info.min > 0 || info.modifier) return true;
    if (subset.kind === 'elements') return subset.names.has(stem);
    switch (subset.mode) {
      case 'true':
      case 'count':
        return info.summary;
      case 'text':
        return stem === 'text';
      case 'data':
        return stem !== 'text';
      default:
        return true;
    }
  };
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    const stem = ALWAYS.has(key) ? key : stemOf(model, key);
    if (stem !== undefined && keep(stem)) out[key] = value;
  }
  const meta = { ...((out.meta as Record<string, unknown> | undefined) ?? {}) };
  const tags = Array.isArray(meta.tag) ? [...(meta.tag as unknown[])] : [];
  const tagged = tags.some((t) => {
    const tag = t as { code?: string; system?: string };
    return tag.code === SUBSETTED.code && tag.system === SUBSETTED.system;
  });
  if (!tagged) tags.push({ ...SUBSETTED });
  meta.tag = tags;
  out.meta = meta;
  return out;
}
