import type { Clause, Cursor, EntryPredicate, SearchQuery, SortKey } from '../store/resource-store.ts';
import type { FhirModel, SearchParamDef, SearchParamType, TypeModel } from './definitions.ts';
import { badRequest, type Issue } from './errors.ts';
import { dateRange, normalizeReference, normalizeString, numberRange } from './search-values.ts';

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
const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
type Prefix = (typeof PREFIXES)[number];
const MAX_CHAIN_DEPTH = 3;
const MAX_VALUES = 100;

type Alternatives = EntryPredicate[][];

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
      if (options.strict) throw err;
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
    const param = def.type === 'composite' ? `${def.code}$0` : def.code;
    const exists: Clause = { kind: 'exists', param, where: [] };
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
  const clause = anyOf(alts.map((where) => ({ kind: 'exists', param: code, where })));
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

function anyOf(clauses: Clause[]): Clause {
  return clauses.length === 1 ? clauses[0] : { kind: 'or', any: clauses };
}

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
  return {
    kind: 'chain',
    param: def.code,
    targetType,
    where: [parseCriterion(model, target, rest, value, options, depth + 1)],
  };
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
  if (out.length > MAX_VALUES) throw fail(`at most ${MAX_VALUES} values may be ORed in one parameter`);
  if (out.some((v) => v === '')) throw fail(`empty value in "${raw}"`);
  return out;
}

/** Splits on an unescaped separator and removes escapes. */
function splitEscaped(raw: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === '\\' && i + 1 < raw.length) {
      cur += raw[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

const unescapeValue = (v: string) => splitEscaped(v, '\u0000')[0];

function valuePredicates(
  def: SearchParamDef,
  type: SearchParamType,
  modifier: string | undefined,
  value: string,
  name: string,
  options: SearchOptions,
  typeModifier?: string,
): Alternatives {
  switch (type) {
    case 'token':
      if (modifier === 'text') return [[{ field: 'text', op: 'prefix', value: normalizeString(unescapeValue(value)) }]];
      return tokenPredicates(value, name);
    case 'string': {
      const v = unescapeValue(value);
      if (modifier === 'exact') return [[{ field: 'text', op: 'eq', value: v }]];
      const normalized = normalizeString(v);
      return [[{ field: 'code', op: modifier === 'contains' ? 'contains' : 'prefix', value: normalized }]];
    }
    case 'uri': {
      const v = unescapeValue(value);
      if (modifier === 'below') return [[{ field: 'code', op: 'below', value: v.replace(/\/+$/, '') }]];
      if (modifier === 'above') {
        const prefixes: string[] = [];
        const parts = v.split('/');
        for (let i = parts.length; i > 3; i--) prefixes.push(parts.slice(0, i).join('/'));
        return [[{ field: 'code', op: 'in', value: prefixes.length ? prefixes : [v] }]];
      }
      return [[{ field: 'code', op: 'eq', value: v }]];
    }
    case 'date':
      return datePredicates(value, name, options.clock());
    case 'number':
      return numberPredicates(value, name);
    case 'quantity':
      return quantityPredicates(value, name);
    case 'reference':
      return [
        [{ field: 'code', op: 'in', value: referenceValues(def, unescapeValue(value), options.baseUrl, typeModifier) }],
      ];
    default:
      throw fail(`parameter type ${type} cannot be searched here`);
  }
}

function tokenPredicates(value: string, name: string): Alternatives {
  const parts = splitEscaped(value, '|');
  if (parts.length > 2) throw fail(`${name}: a token is [system|]code, got "${value}"`);
  if (parts.length === 1) return [[{ field: 'code', op: 'eq', value: parts[0] }]];
  const [system, code] = parts;
  // See: https://hl7.org/fhir/R4/search.html#token ("|code" means no system; "system|" any code)
  if (system === '' && code === '') throw fail(`${name}: "|" alone is not a token`);
  if (system === '')
    return [
      [
        { field: 'sys', op: 'null' },
        { field: 'code', op: 'eq', value: code },
      ],
    ];
  if (code === '') return [[{ field: 'sys', op: 'eq', value: system }]];
  return [
    [
      { field: 'sys', op: 'eq', value: system },
      { field: 'code', op: 'eq', value: code },
    ],
  ];
}

function splitPrefix(value: string): [Prefix, string] {
  const p = value.slice(0, 2);
  if ((PREFIXES as readonly string[]).includes(p) && !/^\d/.test(p)) return [p as Prefix, value.slice(2)];
  return ['eq', value];
}

function datePredicates(value: string, name: string, now: Date): Alternatives {
  const [prefix, raw] = splitPrefix(value);
  const r = dateRange(raw);
  if (!r) throw fail(`${name}: "${raw}" is not a FHIR date, dateTime or instant`);
  // See: https://hl7.org/fhir/R4/search.html#prefix (ranges of the parameter and of the target)
  const eq: EntryPredicate[] = [
    { field: 'lo', op: 'ge', value: r.lo },
    { field: 'hi', op: 'le', value: r.hi },
  ];
  const gt: EntryPredicate[] = [{ field: 'hi', op: 'gt', value: r.hi }];
  const lt: EntryPredicate[] = [{ field: 'lo', op: 'lt', value: r.lo }];
  switch (prefix) {
    case 'eq':
      return [eq];
    case 'ne':
      return [[{ field: 'lo', op: 'lt', value: r.lo }], [{ field: 'hi', op: 'gt', value: r.hi }]];
    case 'gt':
      return [gt];
    case 'lt':
      return [lt];
    case 'ge':
      return [gt, eq];
    case 'le':
      return [lt, eq];
    case 'sa':
      return [[{ field: 'lo', op: 'ge', value: r.hi }]];
    case 'eb':
      return [[{ field: 'hi', op: 'le', value: r.lo }]];
    case 'ap': {
      // "approximately": within 10% of the distance between the value and now.
      const gap = Math.abs(now.getTime() - r.lo) * 0.1;
      return [
        [
          { field: 'lo', op: 'lt', value: r.hi + gap },
          { field: 'hi', op: 'gt', value: r.lo - gap },
        ],
      ];
    }
  }
}

function numberPredicates(value: string, name: string): Alternatives {
  const [prefix, raw] = splitPrefix(value);
  const n = numberRange(raw);
  if (!n) throw fail(`${name}: "${raw}" is not a number`);
  switch (prefix) {
    case 'eq':
      return [
        [
          { field: 'lo', op: 'ge', value: n.lo },
          { field: 'lo', op: 'lt', value: n.hi },
        ],
      ];
    case 'ne':
      return [[{ field: 'lo', op: 'lt', value: n.lo }], [{ field: 'lo', op: 'ge', value: n.hi }]];
    case 'gt':
    case 'sa':
      return [[{ field: 'lo', op: 'gt', value: n.value }]];
    case 'lt':
    case 'eb':
      return [[{ field: 'lo', op: 'lt', value: n.value }]];
    case 'ge':
      return [[{ field: 'lo', op: 'ge', value: n.value }]];
    case 'le':
      return [[{ field: 'lo', op: 'le', value: n.value }]];
    case 'ap': {
      const margin = Math.abs(n.value) * 0.1;
      return [
        [
          { field: 'lo', op: 'ge', value: n.value - margin },
          { field: 'lo', op: 'le', value: n.value + margin },
        ],
      ];
    }
  }
}

function quantityPredicates(value: string, name: string): Alternatives {
  // See: https://hl7.org/fhir/R4/search.html#quantity ([prefix]number|system|code)
  const parts = splitEscaped(value, '|');
  if (parts.length !== 1 && parts.length !== 3)
    throw fail(`${name}: a quantity is [prefix]number[|system|code], got "${value}"`);
  const alts = numberPredicates(parts[0], name);
  if (parts.length === 1) return alts;
  const [, system, code] = parts;
  const unit: EntryPredicate[][] = [];
  if (system !== '')
    unit.push([
      { field: 'sys', op: 'eq', value: system },
      ...(code ? [{ field: 'code', op: 'eq', value: code } as const] : []),
    ]);
  else if (code !== '')
    unit.push([{ field: 'code', op: 'eq', value: code }], [{ field: 'text', op: 'eq', value: code }]);
  else return alts;
  return alts.flatMap((a) => unit.map((u) => [...a, ...u]));
}

function referenceValues(def: SearchParamDef, value: string, baseUrl: string, typeModifier?: string): string[] {
  if (typeModifier) {
    if (value.includes('/')) throw fail(`${def.code}:${typeModifier} takes a bare id, got "${value}"`);
    return [`${typeModifier}/${value}`];
  }
  if (/^https?:\/\//.test(value)) return [normalizeReference(value, baseUrl)];
  if (value.includes('/')) {
    const [t, id, ...rest] = value.split('/');
    if (!/^[A-Z][A-Za-z]+$/.test(t) || !id || rest.length > 0) throw fail(`${def.code}: "${value}" is not a reference`);
    return [`${t}/${id}`];
  }
  const targets = def.targets.length > 0 ? def.targets : [];
  if (targets.length === 0) throw fail(`${def.code}: give the reference as Type/id`);
  return targets.map((t) => `${t}/${value}`);
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
  return { kind: 'composite', param: def.code, components: preds };
}

function parseSort(typeModel: TypeModel, value: string): SortKey[] {
  // See: https://hl7.org/fhir/R4/search.html#sort
  return value.split(',').map((raw) => {
    const descending = raw.startsWith('-');
    const code = descending ? raw.slice(1) : raw;
    const def = typeModel.params.get(code);
    if (!def || def.type === 'composite') throw fail(`cannot sort ${typeModel.type} by "${code}"`);
    const field = def.type === 'date' || def.type === 'number' || def.type === 'quantity' ? 'lo' : 'code';
    return { param: code, descending, field };
  });
}

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
