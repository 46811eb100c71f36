// The store-agnostic model of what is stored and how it is searched: index entries computed by
// the FHIR layer from the official SearchParameter expressions, stored versions, and search
// queries (clauses, sort keys, cursors). Store adapters translate queries into their own query
// language; nothing here knows any of them.

/** One search index value of one resource version. Which fields are used depends on the parameter type. */
export interface IndexEntry {
  /** Search parameter code; composite components are `code$0`, `code$1`, reference identifiers `code:identifier`. */
  readonly param: string;
  /** Composite group: entries of one composite value share it; 0 otherwise. */
  readonly grp: number;
  /** token/identifier system, quantity unit system */
  readonly sys?: string;
  /** token code, normalised string, reference `Type/id`, uri, quantity unit code */
  readonly code?: string;
  /** display/text for :text, the exact string for :exact, quantity unit */
  readonly text?: string;
  /** dates: [lo, hi) in epoch ms; numbers and quantities: lo = hi = value */
  readonly lo?: number;
  readonly hi?: number;
}

export interface StoredVersion {
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  /** ISO 8601 instant with milliseconds */
  readonly lastUpdated: string;
  readonly deleted: boolean;
  /** The resource as stored, meta included; absent for a delete tombstone. */
  readonly resource?: Record<string, unknown>;
}

export type TextOp = 'eq' | 'prefix' | 'contains' | 'in' | 'below';
export type NumOp = 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne';

export type EntryPredicate =
  | { readonly field: 'sys' | 'code' | 'text'; readonly op: TextOp; readonly value: string | readonly string[] }
  | { readonly field: 'sys' | 'code' | 'text'; readonly op: 'null' }
  | { readonly field: 'lo' | 'hi'; readonly op: NumOp; readonly value: number };

export type Clause =
  /** some index entry of `param` satisfies every predicate */
  | {
    readonly kind: 'exists';
    readonly param: string;
    readonly where: readonly EntryPredicate[];
    /** the parameter as the request named it, when another's entries answer it (SearchParamDef.indexedAs) */
    readonly asked?: string;
    /** its code equality names few resources (a whole string, `:exact`): it may drive a search */
    readonly selective?: true;
  }
  /** some composite group has, for each component i, an entry `param$i` satisfying components[i] */
  | {
    readonly kind: 'composite';
    readonly param: string;
    readonly components: readonly (readonly EntryPredicate[])[];
    /** as on an `exists` clause */
    readonly asked?: string;
  }
  /** some reference of `param` points at a `targetType` resource that satisfies `where` */
  | { readonly kind: 'chain'; readonly param: string; readonly targetType: string; readonly where: readonly Clause[] }
  | { readonly kind: 'or'; readonly any: readonly Clause[] }
  | { readonly kind: 'and'; readonly all: readonly Clause[] }
  | { readonly kind: 'not'; readonly clause: Clause };

export interface SortKey {
  readonly param: string;
  /** other parameters whose entries order it too (SearchParamDef.parts, .unionOf) */
  readonly also?: readonly string[];
  /** as on an `exists` clause */
  readonly asked?: string;
  readonly descending: boolean;
  /** which index field orders this parameter: dates and numbers by lo, the rest by code */
  readonly field: 'code' | 'lo';
}

/** Every parameter whose entries a sort key reads: its own and those of `also`. */
export const sortParams = (k: SortKey): readonly string[] => (k.also?.length ? [k.param, ...k.also] : [k.param]);

/** Keyset position: the sort values and id of the last (or, going back, first) row seen. */
export interface Cursor {
  readonly values: readonly (string | number | null)[];
  readonly id: string;
  readonly direction: 'next' | 'previous';
}

export interface SearchQuery {
  readonly type: string;
  readonly where: readonly Clause[];
  readonly sort: readonly SortKey[];
  readonly count: number;
  readonly cursor?: Cursor;
  readonly total: 'none' | 'estimate' | 'accurate';
}

/** A row being ordered by sort keys: its id and its value for each key (null: none). */
export interface SortRow {
  readonly id: string;
  readonly keys: readonly (string | number | null)[];
}

/** A resource's value for one sort key: the lowest (ascending) or highest (descending) of its entries. */
export function sortValue(entries: readonly Pick<IndexEntry, 'param' | 'code' | 'lo'>[], k: SortKey): string | number | null {
  let best: string | number | null = null;
  for (const e of entries) {
    if (e.param !== k.param && !k.also?.includes(e.param)) continue;
    const v = e[k.field];
    if (v === undefined || v === null) continue;
    if (best === null || (k.descending ? v > best : v < best)) best = v;
  }
  return best;
}

/**
 * One page of rows ordered in memory (where no index can order them): sorted as every store
 * sorts, those after the cursor (or, going back, before it), at most `count`, in page order;
 * `more` when rows are left beyond the page in the direction of travel.
 */
export function pageInMemory<R extends SortRow>(rows: R[], query: Pick<SearchQuery, 'sort' | 'count' | 'cursor'>): { page: R[]; more: boolean } {
  rows.sort((a, b) => compareSorted(query.sort, a, b));
  const cursor = query.cursor;
  const backwards = cursor?.direction === 'previous';
  let ordered = rows;
  if (cursor) {
    const at: SortRow = { id: cursor.id, keys: cursor.values.map((v) => v ?? null) };
    const after = (r: SortRow) => compareSorted(query.sort, r, at);
    ordered = backwards ? rows.filter((r) => after(r) < 0).reverse() : rows.filter((r) => after(r) > 0);
  }
  const page = ordered.slice(0, query.count);
  return { page: backwards ? page.reverse() : page, more: ordered.length > query.count };
}

/**
 * The search order every store keeps: per key, present values before missing ones (in both
 * directions), then by value; then by id.
 */
export function compareSorted(sort: readonly SortKey[], a: SortRow, b: SortRow): number {
  for (const [n, k] of sort.entries()) {
    const x = a.keys[n];
    const y = b.keys[n];
    if (x === null || y === null) {
      if (x !== y) return x === null ? 1 : -1;
      continue;
    }
    if (x !== y) return (x < y ? -1 : 1) * (k.descending ? -1 : 1);
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
