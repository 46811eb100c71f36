import { createHmac, type KeyObject } from 'node:crypto';
import type { SearchParamType } from '../fhir/definitions.ts';
import { FhirError } from '../fhir/errors.ts';
import { type Clause, type EntryPredicate, type IndexEntry, type SearchQuery, sortParams } from '../fhir/query.ts';
import { normalizeString } from '../fhir/search-values.ts';
import type { ProtectionPolicy } from './protection.ts';

// Prefixes of protected strings are indexed from the keyring's `indexPrefixFrom()` (1; 3 in
// keyrings made before short values were) to MAX_PREFIX characters: a shorter or longer search
// goes to bounded decryption (a longer one narrowed by its first MAX_PREFIX characters). Every
// indexed prefix is one more keyed hash per write.
export const MAX_PREFIX = 24;

/** The forms of a search the blind index of `kind` answers. */
function formsOf(kind: SearchParamType | undefined, prefixFrom: number): string {
  switch (kind) {
    case 'token':
      return 'code, system|code, |code, system|, :not, :missing';
    case 'string':
      return `a prefix of ${prefixFrom} to ${MAX_PREFIX} characters or a whole value, :exact, :missing`;
    case 'date':
      return 'a whole year, month or day without prefix (birthdate=1974-12), :missing';
    case 'reference':
      return 'Type/id, :missing';
    case 'uri':
      return 'the exact URI, :missing';
    default:
      return ':missing only';
  }
}

/**
 * What the CapabilityStatement says of a search parameter over encrypted elements: the forms the
 * blind index answers, and that every other form is refused.
 */
export function protectedSearchDocumentation(
  policy: ProtectionPolicy,
  type: string,
  param: string,
  decryptBound: number,
  prefixFrom: number,
): string | undefined {
  const blinded = policy.blinded.get(type);
  // (a composite is blinded by its components: `code-value-quantity$1`)
  const kind = blinded?.get(param) ?? [...(blinded?.entries() ?? [])].find(([k]) => k.startsWith(`${param}$`))?.[1];
  if (!kind) return undefined;
  const indexed = `Reads elements encrypted at rest; searched through keyed blind indexes. Answered by index: ${formsOf(kind, prefixFrom)}. `;
  return decryptBound > 0
    ? `${indexed}Every other form (ranges, other prefixes, :contains, _sort by it) is answered by decrypting the resources the search's other ` +
    `parameters leave, when they are at most ${decryptBound}; otherwise refused with 400 naming the limit: never answered by scanning.`
    : `${indexed}Every other form (ranges, other prefixes, :contains, _sort by it) is refused with 400 naming the supported forms: never answered by scanning.`;
}

/**
 * Keyed blind indexes (HMAC-SHA256 under the keyring's index key, truncated to 128 bits) for
 * search parameters over encrypted elements: the same normalisation as plain search, then a
 * keyed hash, so equality still works and the values do not rest in the clear.
 */
export class BlindIndex {
  readonly #key: KeyObject;
  readonly #policy: ProtectionPolicy;
  readonly #prefixFrom: number;

  constructor(key: KeyObject, policy: ProtectionPolicy, prefixFrom: number) {
    this.#key = key;
    this.#policy = policy;
    this.#prefixFrom = prefixFrom;
  }

  #h(kind: string, param: string, value: string): string {
    return createHmac('sha256', this.#key).update(`${kind}\u0000${param}\u0000${value}`).digest().subarray(0, 16).toString('base64url');
  }

  /** Write side: blinds the entries of protected parameters; the rest pass unchanged. */
  entries(type: string, entries: readonly IndexEntry[]): IndexEntry[] {
    const blinded = this.#policy.blinded.get(type);
    if (!blinded || blinded.size === 0) return [...entries];
    const out: IndexEntry[] = [];
    for (const e of entries) {
      const kind = blinded.get(e.param);
      if (!kind) {
        out.push(e);
        continue;
      }
      const base = { param: e.param, grp: e.grp };
      switch (kind) {
        case 'token':
          // sys stays in clear (a code system, not a value); display text is not indexed.
          if (e.code !== undefined) out.push({ ...base, sys: e.sys, code: this.#h('t', e.param, e.code) });
          break;
        case 'string': {
          const norm = e.code ?? '';
          for (let n = this.#prefixFrom; n <= Math.min(norm.length, MAX_PREFIX); n++) out.push({ ...base, code: this.#h('p', e.param, norm.slice(0, n)) });
          if (norm.length < this.#prefixFrom) out.push({ ...base, code: this.#h('p', e.param, norm) });
          if (e.text !== undefined) out.push({ ...base, text: this.#h('x', e.param, e.text) });
          break;
        }
        case 'date':
          for (const s of dateStrings(e.lo, e.hi)) out.push({ ...base, code: this.#h('d', e.param, s) });
          break;
        case 'reference':
        case 'uri':
          // (no code: a reference present with no searchable target, kept for :missing)
          out.push(e.code === undefined ? base : { ...base, code: this.#h('r', e.param, e.code) });
          break;
        default:
          // Numbers and quantities: presence only (for :missing), no value, no unit, not even a
          // keyed hash of them — no search of one is answered by the index (ranges need the
          // value: bounded decryption), so a hash would only tell which records hold equal values.
          out.push(base);
      }
    }
    return out;
  }

  /** Read side: rewrites a query onto the blind indexes, or refuses what they cannot answer (400). */
  query(q: SearchQuery): SearchQuery {
    const blinded = this.#policy.blinded.get(q.type);
    for (const k of q.sort) {
      const asked = k.asked ?? k.param;
      if (sortParams(k).some((p) => blinded?.has(p))) throw refuse(q.type, asked, undefined, this.#prefixFrom, `cannot sort by ${asked}: it reads elements encrypted at rest`);
    }
    return { ...q, where: q.where.map((c) => this.#clause(q.type, c)) };
  }

  /**
   * A clause the index can answer that every match of `c` also matches (a prefix past
   * MAX_PREFIX cut to it), to narrow the candidates of a decrypting search; undefined when none.
   */
  narrowing(type: string, c: Clause): Clause | undefined {
    if (c.kind !== 'exists' || this.#policy.blinded.get(type)?.get(c.param) !== 'string') return undefined;
    const cut = c.where.map((p) => (p.field === 'code' && p.op === 'prefix' && (p.value as string).length > MAX_PREFIX ? { ...p, value: (p.value as string).slice(0, MAX_PREFIX) } : p));
    if (cut.every((p, i) => p === c.where[i])) return undefined;
    try {
      return this.#clause(type, { ...c, where: cut });
    } catch {
      return undefined;
    }
  }

  #clause(type: string, c: Clause): Clause {
    const blinded = this.#policy.blinded.get(type);
    switch (c.kind) {
      case 'exists': {
        const kind = blinded?.get(c.param);
        const exact = kind === 'string' ? c.where.find((p) => p.field === 'text' && p.op === 'eq') : undefined;
        if (exact && 'value' in exact && typeof exact.value === 'string') return this.#exact(c, exact.value);
        return kind ? { ...c, where: this.#predicates(type, c.param, kind, c.where, c.asked) } : c;
      }
      case 'composite':
        return {
          ...c,
          components: c.components.map((preds, i) => {
            const kind = blinded?.get(`${c.param}$${i}`);
            return kind ? this.#predicates(type, `${c.param}$${i}`, kind, preds, `${c.asked ?? c.param}$${i}`) : preds;
          }),
        };
      case 'chain':
        return { ...c, where: c.where.map((w) => this.#clause(c.targetType, w)) };
      case 'or':
        return { ...c, any: c.any.map((w) => this.#clause(type, w)) };
      case 'and':
        return { ...c, all: c.all.map((w) => this.#clause(type, w)) };
      case 'not':
        return { ...c, clause: this.#clause(type, c.clause) };
    }
  }

  /**
   * `:exact` over a protected string: its exact keyed hash is an entry of its own, without a code
   * for search_code to look up; the same value's longest indexed prefix (the whole normalised
   * value up to MAX_PREFIX characters, indexed whatever its length) is one, so both are asked
   * for: the prefix drives the search through the index, the exact hash is probed per candidate
   * (sqlite-query.ts).
   */
  #exact(c: Extract<Clause, { kind: 'exists' }>, text: string): Clause {
    const prefix = normalizeString(text).slice(0, MAX_PREFIX);
    return {
      kind: 'and',
      all: [
        { ...c, where: [{ field: 'code', op: 'eq', value: this.#h('p', c.param, prefix) }], selective: true },
        { kind: 'exists', param: c.param, where: [{ field: 'text', op: 'eq', value: this.#h('x', c.param, text) }], ...(c.asked ? { asked: c.asked } : {}) },
      ],
    };
  }

  /** `asked`: the parameter as the request named it (messages), where `param`'s entries answer it. */
  #predicates(type: string, param: string, kind: SearchParamType, preds: readonly EntryPredicate[], asked = param): EntryPredicate[] {
    if (preds.length === 0) return []; // :missing
    const no = () => refuse(type, asked, kind, this.#prefixFrom);
    if (kind === 'date') {
      const lo = preds.find((p) => p.field === 'lo' && p.op === 'ge');
      const hi = preds.find((p) => p.field === 'hi' && p.op === 'le');
      const s = preds.length === 2 && lo && hi ? dateStrings((lo as { value: number }).value, (hi as { value: number }).value) : [];
      if (s.length === 0) throw no();
      return [{ field: 'code', op: 'eq', value: this.#h('d', param, s[s.length - 1]) }];
    }
    return preds.map((p): EntryPredicate => {
      if (p.field === 'sys' && (kind === 'token' || p.op === 'null')) return p;
      if (p.op === 'null') return p;
      const h = (k: string, v: string) => this.#h(k, param, v);
      if (kind === 'token' && p.field === 'code') {
        if (p.op === 'eq') return { field: 'code', op: 'eq', value: h('t', p.value as string) };
        if (p.op === 'in') return { field: 'code', op: 'in', value: (p.value as string[]).map((v) => h('t', v)) };
      }
      if (kind === 'string') {
        if (p.field === 'code' && p.op === 'prefix') {
          const v = p.value as string;
          if (v.length < this.#prefixFrom) {
            throw refuse(type, asked, kind, this.#prefixFrom, `${asked}: a search of an encrypted element needs at least ${this.#prefixFrom} characters`);
          }
          if (v.length > MAX_PREFIX) {
            throw refuse(type, asked, kind, this.#prefixFrom, `${asked}: a search of an encrypted element is indexed up to ${MAX_PREFIX} characters`);
          }
          return { field: 'code', op: 'eq', value: h('p', v) };
        }
        if (p.field === 'text' && p.op === 'eq') return { field: 'text', op: 'eq', value: h('x', p.value as string) };
      }
      if ((kind === 'reference' || kind === 'uri') && p.field === 'code') {
        if (p.op === 'eq') return { field: 'code', op: 'eq', value: h('r', p.value as string) };
        if (p.op === 'in') return { field: 'code', op: 'in', value: (p.value as string[]).map((v) => h('r', v)) };
      }
      throw no();
    });
  }
}

function refuse(type: string, param: string, kind: SearchParamType | undefined, prefixFrom: number, message?: string): FhirError {
  const forms = kind ? formsOf(kind, prefixFrom) : '';
  return new FhirError('HEARTH_PROTECTED_SEARCH', {
    code: 'not-supported',
    diagnostics:
      message ??
      `${param} reads ${type} elements that are encrypted at rest; this form of search cannot be answered without decrypting every record. Supported: ${forms}`,
  });
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/**
 * The calendar strings a date range stands for when it is a whole day, month or year: the
 * write side indexes each enclosing precision ('1974', '1974-12', '1974-12-25'); a query names
 * one. Ranges finer than a day (times, periods) yield none: they are not searchable when protected.
 */
export function dateStrings(lo: number | undefined, hi: number | undefined): string[] {
  if (lo === undefined || hi === undefined) return [];
  const d = new Date(lo);
  if (d.getUTCHours() || d.getUTCMinutes() || d.getUTCSeconds() || d.getUTCMilliseconds()) return [];
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const day = d.getUTCDate();
  const year = `${pad(y, 4)}`;
  const month = `${year}-${pad(m + 1)}`;
  if (hi === Date.UTC(y + 1, 0, 1) && m === 0 && day === 1) return [year];
  if (hi === Date.UTC(y, m + 1, 1) && day === 1) return [year, month];
  if (hi === Date.UTC(y, m, day + 1)) return [year, month, `${month}-${pad(day)}`];
  return [];
}
