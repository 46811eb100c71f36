import type { EntryPredicate } from './query.ts';
import type { SearchParamDef, SearchParamType } from './definitions.ts';
import { badRequest } from './errors.ts';
import { dateRange, normalizeReference, normalizeString, numberRange } from './search-values.ts';

// The value grammar of each search parameter type: one search value → alternatives (OR) of
// predicate lists (AND) over index entries. See: https://hl7.org/fhir/R4/search.html

const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
type Prefix = (typeof PREFIXES)[number];
export type Alternatives = EntryPredicate[][];

const fail = (diagnostics: string, expression?: string) => badRequest('HEARTH_SEARCH_PARAM', diagnostics, expression);

export interface ValueContext {
  readonly baseUrl: string;
  readonly clock: () => Date;
}

/** Splits on an unescaped separator and removes escapes. */
export function splitEscaped(raw: string, sep: string): string[] {
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

export const unescapeValue = (v: string) => splitEscaped(v, '\u0000')[0];

export function valuePredicates(
  def: SearchParamDef,
  type: SearchParamType,
  modifier: string | undefined,
  value: string,
  name: string,
  options: ValueContext,
  typeModifier?: string,
): Alternatives {
  switch (type) {
    case 'token':
      if (modifier === 'text') return [[{ field: 'text', op: 'prefix', value: normalizeString(unescapeValue(value)) }]];
      return tokenPredicates(value, name);
    case 'string': {
      const v = unescapeValue(value);
      const normalized = normalizeString(v);
      // An entry's code is its text normalised: the code's equality, implied, is what an index can look up.
      if (modifier === 'exact') return [[{ field: 'code', op: 'eq', value: normalized }, { field: 'text', op: 'eq', value: v }]];
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

export function tokenPredicates(value: string, name: string): Alternatives {
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
