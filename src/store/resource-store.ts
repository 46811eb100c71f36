// The ResourceStore port: what every storage adapter (SQLite now, MongoDB later) implements,
// and what the contract suite in test/store/ proves of each. Index values are computed by the
// FHIR layer; adapters persist and query them and never interpret FHIR themselves.

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

/** Called by the store inside its write transaction, once the id, version and time are fixed. */
export type Prepare = (version: { id: string; versionId: number; lastUpdated: string }) => {
  resource: Record<string, unknown>;
  index: IndexEntry[];
};

export type WriteOutcome = 'created' | 'updated' | 'exists';

export interface WriteResult {
  readonly outcome: WriteOutcome;
  readonly version: StoredVersion;
}

// ---- store-agnostic search query ----

export type TextOp = 'eq' | 'prefix' | 'contains' | 'in' | 'below';
export type NumOp = 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne';

export type EntryPredicate =
  | { readonly field: 'sys' | 'code' | 'text'; readonly op: TextOp; readonly value: string | readonly string[] }
  | { readonly field: 'sys' | 'code' | 'text'; readonly op: 'null' }
  | { readonly field: 'lo' | 'hi'; readonly op: NumOp; readonly value: number };

export type Clause =
  /** some index entry of `param` satisfies every predicate */
  | { readonly kind: 'exists'; readonly param: string; readonly where: readonly EntryPredicate[] }
  /** some composite group has, for each component i, an entry `param$i` satisfying components[i] */
  | { readonly kind: 'composite'; readonly param: string; readonly components: readonly (readonly EntryPredicate[])[] }
  /** some reference of `param` points at a `targetType` resource that satisfies `where` */
  | { readonly kind: 'chain'; readonly param: string; readonly targetType: string; readonly where: readonly Clause[] }
  | { readonly kind: 'or'; readonly any: readonly Clause[] }
  | { readonly kind: 'and'; readonly all: readonly Clause[] }
  | { readonly kind: 'not'; readonly clause: Clause };

export interface SortKey {
  readonly param: string;
  readonly descending: boolean;
  /** which index field orders this parameter: dates and numbers by lo, the rest by code */
  readonly field: 'code' | 'lo';
}

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

export interface SearchPage {
  readonly matches: readonly StoredVersion[];
  /** sort values of each match, in order, for building cursors */
  readonly keys: readonly (readonly (string | number | null)[])[];
  readonly hasNext: boolean;
  readonly hasPrevious: boolean;
  readonly total?: number;
}

export interface HistoryQuery {
  readonly type: string;
  readonly id?: string;
  /** ISO instant: versions updated at or after it */
  readonly since?: string;
  readonly count: number;
  /** position after which to continue (an opaque adapter number) */
  readonly after?: number;
}

export interface HistoryPage {
  readonly versions: readonly StoredVersion[];
  readonly next?: number;
  /** absent when the page was filtered after reading (no honest total exists) */
  readonly total?: number;
}

export interface ResourceStore {
  /** Creates a new resource with a server-assigned id; with `ifNoneExist`, only when nothing matches. */
  create(type: string, prepare: Prepare, ifNoneExist?: SearchQuery): Promise<WriteResult>;
  /**
   * Writes a new version of `target`: an id, or a conditional-update query that matches zero or one
   * resources. `ifMatch` guards the current version; `allowCreate` permits a client-chosen id.
   */
  update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
  ): Promise<WriteResult>;
  /**
   * Records a deletion as a new tombstone version; undefined when there is nothing current to delete.
   * `ifMatch` guards the current version (412 when it moved on).
   */
  delete(type: string, id: string, ifMatch?: number): Promise<StoredVersion | undefined>;
  /** The newest version, which may be a tombstone. */
  read(type: string, id: string): Promise<StoredVersion | undefined>;
  vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined>;
  history(query: HistoryQuery): Promise<HistoryPage>;
  search(query: SearchQuery): Promise<SearchPage>;
  close(): Promise<void>;
}
