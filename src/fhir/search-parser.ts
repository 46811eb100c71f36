import type { Clause, Cursor, SearchQuery, SortKey } from './query.ts';
import type { FhirModel, SearchParamDef, SearchParamType, TypeModel } from './definitions.ts';
import { badRequest, type Issue } from './errors.ts';
import { splitEscaped, tokenPredicates, valuePredicates } from './search-predicates.ts';
import { answerClause, anyOf, chainClause, compositeClause } from './search-clauses.ts';

export interface IncludeSpec {
  readonly sourceType: string;
  readonly param: string;
  readonly targetType?: string;
}

export interface ParsedSearch {
  readonly query: SearchQuery;
  readonly includes: readonly IncludeSpec[];
  readonly revIncludes: readonly IncludeSpec[];
  /** parameters that shape the result, kept for paging links */
  readonly linkParams: readonly (readonly [string, string])[];
  /** lenient handling: what was ignored, reported back as an OperationOutcome entry */
  readonly ignored: readonly Issue[];
}

export interface SearchOptions {
  readonly defaultCount: number;
  readonly maxCount: number;
  readonly strict: boolean;
  readonly baseUrl: string;
  readonly clock: () => Date;
}

// Result parameters handled here or by the response shaper.
// See: https://hl7.org/fhir/R4/search.html#Summary (search result parameters)
const SHAPING = new Set(['_elements', '_summary', '_format', '_pretty']);
const MAX_CHAIN_DEPTH = 3;

/**
 * What one search may ask for, checked before anything is parsed or reaches a store, whatever the
 * `Prefer: handling`. Within these, no search costs the store more than a bounded query.
 */
export const SEARCH_LIMITS = {
  /** search parameters (criteria, `_sort`, `_include`, ...; not `_format`, `_elements`, `_summary`) */
  parameters: 40,
  /** values ORed in one parameter (`code=a,b,c`) */
  values: 100,
  /** `_sort` keys */
  sortKeys: 8,
  /** `_include` and `_revinclude` entries together */
  includes: 16,
  /** characters of one parameter value */
  valueLength: 4096,
  /** bytes of a POST `_search` form body */
  formBytes: 64 * 1024,
} as const;
const MAX_VALUES = SEARCH_LIMITS.values;

const tooMany = (diagnostics: string, expression?: string) => badRequest('HEARTH_SEARCH_LIMIT', diagnostics, expression, 'too-costly');

/** Refuses a search over the limits before any of it is parsed. */
export function checkSearchLimits(params: readonly (readonly [string, string])[]): void {
  let parameters = 0;
  let includes = 0;
  for (const [name, value] of params) {
    if (SHAPING.has(name)) continue;
    parameters++;
    if (name === '_include' || name === '_revinclude') includes++;
    if (value.length > SEARCH_LIMITS.valueLength) {
      throw tooMany(`the value of ${name.slice(0, 64)} is ${value.length} characters; the limit is ${SEARCH_LIMITS.valueLength}`);
    }
    if (name === '_sort' && value.split(',').length > SEARCH_LIMITS.sortKeys) {
      throw tooMany(`_sort has ${value.split(',').length} keys; the limit is ${SEARCH_LIMITS.sortKeys}`);
    }
  }
  if (parameters > SEARCH_LIMITS.parameters) {
    throw tooMany(`the search has ${parameters} parameters; the limit is ${SEARCH_LIMITS.parameters}`);
  }
  if (includes > SEARCH_LIMITS.includes) {
    throw tooMany(`the search has ${includes} _include and _revinclude entries; the limit is ${SEARCH_LIMITS.includes}`);
  }
}

const fail = (diagnostics: string, expression?: string) => badRequest('HEARTH_SEARCH_PARAM', diagnostics, expression);

/** Turns the query string of a search into a store query; unknown or malformed parameters are errors under strict handling. */
export function parseSearch(
  model: FhirModel,
  type: string,
  params: readonly (readonly [string, string])[],
  options: SearchOptions,
): ParsedSearch {
  const typeModel = model.types.get(type);
  if (!typeModel) throw fail(`unknown resource type ${type}`);
  checkSearchLimits(params);
  const where: Clause[] = [];
  const includes: IncludeSpec[] = [];
  const revIncludes: IncludeSpec[] = [];
  const linkParams: (readonly [string, string])[] = [];
  const ignored: Issue[] = [];
  let count = options.defaultCount;
  let sort: SortKey[] = [];
  let total: SearchQuery['total'] = 'accurate';
  let cursor: Cursor | undefined;
  const seenSingle = new Set<string>();

  const once = (name: string) => {
    if (seenSingle.has(name)) throw fail(`${name} may appear only once`);
    seenSingle.add(name);
  };

  for (const [name, value] of params) {
    try {
      if (SHAPING.has(name)) {
        linkParams.push([name, value]);
        continue;
      }
      switch (name) {
        case '_count': {
          once(name);
          if (!/^[0-9]{1,9}$/.test(value)) throw fail(`_count must be a non-negative whole number, got "${value}"`);
          count = Math.min(Number(value), options.maxCount);
          continue;
        }
        case '_sort':
          once(name);
          sort = parseSort(typeModel, value);
          linkParams.push([name, value]);
          continue;
        case '_total':
          once(name);
          if (value !== 'none' && value !== 'estimate' && value !== 'accurate') {
            throw fail(`_total must be none, estimate or accurate, got "${value}"`);
          }
          total = value;
          linkParams.push([name, value]);
          continue;
        case '_include':
          includes.push(parseInclude(model, typeModel, value, 'include'));
          linkParams.push([name, value]);
          continue;
        case '_revinclude':
          revIncludes.push(parseInclude(model, typeModel, value, 'revinclude'));
          linkParams.push([name, value]);
          continue;
        case '_cursor':
          once(name);
          cursor = decodeCursor(value);
          continue;
      }
      where.push(parseCriterion(model, typeModel, name, value, options, 0));
      linkParams.push([name, value]);
    } catch (err) {
      if (options.strict || (err as { code?: string }).code === 'HEARTH_SEARCH_LIMIT') throw err;
      ignored.push({
        code: 'not-supported',
        severity: 'warning',
        diagnostics: `ignored search parameter ${name}: ${(err as Error).message}`,
      });
    }
  }
  if (cursor && cursor.values.length !== sort.length) throw fail('_cursor does not belong to this search');
  return {
    query: { type, where, sort, count, cursor, total },
    includes,
    revIncludes,
    linkParams,
    ignored,
  };
}

/** One criterion (`name[:modifier][.chain]=value`) as a clause; repeated parameters are ANDed by the caller. */
export function parseCriterion(
  model: FhirModel,
  typeModel: TypeModel,
  rawName: string,
  rawValue: string,
  options: SearchOptions,
  depth: number,
): Clause {
  const dot = rawName.indexOf('.');
  const head = dot === -1 ? rawName : rawName.slice(0, dot);
  const [code, modifier, ...extra] = head.split(':');
  if (extra.length > 0) throw fail(`malformed search parameter name "${rawName}"`);
  const def = typeModel.params.get(code);
  if (!def) throw fail(`unknown search parameter "${code}" for ${typeModel.type}`);
  if (rawValue === '' && modifier !== 'missing') throw fail(`search parameter ${rawName} has an empty value`);

  if (dot !== -1) return parseChain(model, typeModel, def, modifier, rawName.slice(dot + 1), rawValue, options, depth);

  if (modifier === 'missing') {
    if (rawValue !== 'true' && rawValue !== 'false') throw fail(`${rawName} must be true or false`);
    const exists = answerClause(def, []);
    return rawValue === 'true' ? { kind: 'not', clause: exists } : exists;
  }

  const values = splitValues(rawValue);
  if (def.type === 'composite') {
    if (modifier) throw fail(`modifier :${modifier} is not supported on composite parameter ${code}`);
    return anyOf(values.map((v) => parseComposite(def, v, options)));
  }
  if (def.type === 'reference' && modifier === 'identifier') {
    const alts = values.flatMap((v) => tokenPredicates(v, rawName));
    return anyOf(alts.map((where) => ({ kind: 'exists', param: `${code}:identifier`, where })));
  }
  const allowed = MODIFIERS[def.type];
  const typeModifier = def.type === 'reference' && modifier && /^[A-Z][A-Za-z]+$/.test(modifier) ? modifier : undefined;
  if (modifier && !typeModifier && !allowed.includes(modifier)) {
    throw fail(`modifier :${modifier} is not supported on ${def.type} parameter ${code}`);
  }
  if (typeModifier && !def.targets.includes(typeModifier)) {
    throw fail(`${typeModifier} is not a target type of ${typeModel.type}.${code}`);
  }
  const negate = modifier === 'not';
  const alts = values.flatMap((v) =>
    valuePredicates(def, def.type, negate ? undefined : modifier, v, rawName, options, typeModifier),
  );
  const clause = anyOf(alts.map((where) => answerClause(def, where, def.type === 'string' && modifier === 'exact')));
  return negate ? { kind: 'not', clause } : clause;
}

const MODIFIERS: Record<SearchParamType, readonly string[]> = {
  token: ['not', 'text'],
  string: ['exact', 'contains'],
  date: [],
  number: [],
  quantity: [],
  reference: [],
  uri: ['below', 'above'],
  composite: [],
};

function parseChain(
  model: FhirModel,
  typeModel: TypeModel,
  def: SearchParamDef,
  modifier: string | undefined,
  rest: string,
  value: string,
  options: SearchOptions,
  depth: number,
): Clause {
  // See: https://hl7.org/fhir/R4/search.html#chaining
  if (def.type !== 'reference') throw fail(`${typeModel.type}.${def.code} is not a reference and cannot be chained`);
  if (depth >= MAX_CHAIN_DEPTH) throw fail(`chains are limited to ${MAX_CHAIN_DEPTH} links`);
  const served = def.targets.filter((t) => model.types.has(t));
  let targetType = modifier;
  if (targetType) {
    if (!def.targets.includes(targetType))
      throw fail(`${targetType} is not a target type of ${typeModel.type}.${def.code}`);
    if (!model.types.has(targetType)) throw fail(`chained target type ${targetType} is not served here`);
  } else {
    const candidates = served.filter((t) => model.types.get(t)?.params.has(rest.split(/[.:]/)[0]));
    if (candidates.length !== 1) {
      throw fail(
        `chain ${def.code}.${rest} is ambiguous or impossible: name the target type, e.g. ${def.code}:Patient.${rest}`,
      );
    }
    targetType = candidates[0];
  }
  const target = model.types.get(targetType) as TypeModel;
  return chainClause(def, targetType, [parseCriterion(model, target, rest, value, options, depth + 1)]);
}

/** Splits on unescaped commas (OR) and unescapes `\,` `\$` `\|` `\\`. */
export function splitValues(raw: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === '\\' && i + 1 < raw.length) {
      cur += c + raw[i + 1];
      i++;
    } else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  if (out.length > MAX_VALUES) throw tooMany(`at most ${MAX_VALUES} values may be ORed in one parameter`);
  if (out.some((v) => v === '')) throw fail(`empty value in "${raw}"`);
  return out;
}

function parseComposite(def: SearchParamDef, value: string, options: SearchOptions): Clause {
  // See: https://hl7.org/fhir/R4/search.html#composite (components joined by $)
  const parts = splitEscaped(value.replace(/\\\$/g, '\u0001'), '$').map((p) => p.replace(/\u0001/g, '$'));
  const components = def.components ?? [];
  if (parts.length !== components.length) {
    throw fail(`${def.code} takes ${components.length} values joined by $, got "${value}"`);
  }
  const preds = parts.map((part, i) => {
    const alts = valuePredicates(def, components[i].type, undefined, part, def.code, options);
    if (alts.length !== 1) throw fail(`${def.code}: the comparison in "${part}" is not supported inside a composite`);
    return alts[0];
  });
  return compositeClause(def, preds);
}

function parseSort(typeModel: TypeModel, value: string): SortKey[] {
  // See: https://hl7.org/fhir/R4/search.html#sort
  return value.split(',').map((raw) => {
    const descending = raw.startsWith('-');
    const code = descending ? raw.slice(1) : raw;
    const def = typeModel.params.get(code);
    if (!def || def.type === 'composite') throw fail(`cannot sort ${typeModel.type} by "${code}"`);
    // Its entries are another parameter's, of references of every type: they cannot order it.
    if (def.narrows) throw fail(`cannot sort ${typeModel.type} by "${code}": sort by ${def.narrows.params.join(' or ')}`);
    const field = def.type === 'date' || def.type === 'number' || def.type === 'quantity' ? 'lo' : 'code';
    if (def.unionOf) return { param: def.unionOf[0], also: def.unionOf.slice(1), descending, field, asked: code };
    return { param: def.indexedAs ?? code, ...(def.parts ? { also: [...def.parts.values()] } : {}), descending, field, ...askedAs(def) };
  });
}

/** A parameter answered by another's entries keeps its own name for messages. */
const askedAs = (def: SearchParamDef) => (def.indexedAs ? { asked: def.code } : {});

function parseInclude(
  model: FhirModel,
  typeModel: TypeModel,
  value: string,
  kind: 'include' | 'revinclude',
): IncludeSpec {
  // See: https://hl7.org/fhir/R4/search.html#include
  const [sourceType, param, targetType, ...rest] = value.split(':');
  const offered = kind === 'include' ? typeModel.includes : typeModel.revIncludes;
  const key = `${sourceType}:${param}`;
  if (rest.length > 0 || !param || !offered.has(key)) {
    throw fail(
      `_${kind}=${value} is not supported for ${typeModel.type}; supported: ${[...offered].join(', ') || 'none'}`,
    );
  }
  if (kind === 'include' && sourceType !== typeModel.type) throw fail(`_include must start with ${typeModel.type}:`);
  if (targetType && !model.types.has(targetType)) throw fail(`_${kind} target type ${targetType} is not served`);
  return { sourceType, param, targetType };
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.direction === 'next' ? 'n' : 'p', cursor.id, ...cursor.values])).toString(
    'base64url',
  );
}

function decodeCursor(value: string): Cursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw fail('_cursor is not a cursor issued by this server');
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length < 2 ||
    (parsed[0] !== 'n' && parsed[0] !== 'p') ||
    typeof parsed[1] !== 'string' ||
    !parsed.slice(2).every((v) => v === null || typeof v === 'string' || typeof v === 'number')
  ) {
    throw fail('_cursor is not a cursor issued by this server');
  }
  return { direction: parsed[0] === 'n' ? 'next' : 'previous', id: parsed[1], values: parsed.slice(2) };
}
