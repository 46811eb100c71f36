// The ResourceStore port: what every storage adapter (SQLite now, MongoDB later) implements,
// and what the contract suite in test/store/ proves of each. Index values are computed by the
// FHIR layer; adapters persist and query them and never interpret FHIR themselves.
import type { IndexEntry, SearchQuery, StoredVersion } from '../fhir/query.ts';

/**
 * Called by the store inside its write transaction, once the id, version and time are fixed.
 * `writeId` names the request that writes the version (its write-ahead AuditEvent), stored
 * with it, so that after a crash the store can say what that request committed.
 */
export type Prepare = (version: { id: string; versionId: number; lastUpdated: string }) => {
  resource: Record<string, unknown>;
  index: IndexEntry[];
  writeId?: string;
};

/** A version by its address, as written by one request. */
export interface WrittenVersion {
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  readonly deleted: boolean;
  /** the request's id, or its entry's (`<request id>.<index>`) for an entry of a batch or transaction */
  readonly writeId: string;
}

/** Whether a version written by `writeId` was written by the request `requestId` or by one of its entries. */
export function writtenByRequest(writeId: string, requestId: string): boolean {
  return writeId === requestId || (writeId.startsWith(requestId) && writeId[requestId.length] === '.' && /^\d+$/.test(writeId.slice(requestId.length + 1)));
}

export type WriteOutcome = 'created' | 'updated' | 'exists';

export interface WriteResult {
  readonly outcome: WriteOutcome;
  readonly version: StoredVersion;
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

/**
 * One version of a transaction, prepared in full before it commits (rest/transaction.ts): it is
 * written only if what it was prepared against still holds — `expect` is still the current version
 * (none at all when undefined), and `absent` (a conditional create's criteria) still matches nothing.
 */
export interface CommitOp {
  readonly type: string;
  readonly id: string;
  readonly expect: number | undefined;
  readonly absent?: SearchQuery;
  readonly versionId: number;
  readonly lastUpdated: string;
  /** absent for a deletion (a tombstone) */
  readonly content?: { readonly resource: Record<string, unknown>; readonly index: IndexEntry[] };
  readonly writeId?: string;
}

export interface ResourceStore {
  /**
   * Writes every version of a transaction in one store transaction, or none: a StoreError
   * `version-conflict` when an expectation no longer holds (another write came in between).
   * See: https://hl7.org/fhir/R4/http.html#transaction (all or nothing)
   */
  commit(ops: readonly CommitOp[]): Promise<void>;
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
   * `ifMatch` guards the current version (412 when it moved on); `writeId` as in Prepare.
   */
  delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined>;
  /**
   * The versions the request `writeId` committed, its entries' included (write ids
   * `<writeId>.<index>`, a batch or transaction); none when its transaction never committed.
   */
  writtenBy(writeId: string): Promise<WrittenVersion[]>;
  /** The newest version, which may be a tombstone. */
  read(type: string, id: string): Promise<StoredVersion | undefined>;
  vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined>;
  history(query: HistoryQuery): Promise<HistoryPage>;
  search(query: SearchQuery): Promise<SearchPage>;
  close(): Promise<void>;
}

/**
 * What an adapter reports when a write cannot be done as asked. Adapters throw these, never HTTP
 * statuses; the interaction layer's mapper (rest/store-errors.ts) turns them into the catalogue.
 */
export type StoreFailure =
  /** `ifMatch` named a version that is not the current one */
  | { readonly kind: 'version-conflict'; readonly type: string; readonly id: string; readonly ifMatch: number }
  /** an update of an id that does not exist, where creating it was not allowed */
  | { readonly kind: 'not-found'; readonly type: string; readonly id: string }
  /** conditional criteria matched more than one resource */
  | { readonly kind: 'multiple-matches'; readonly type: string; readonly what: string }
  /** a transaction's version was prepared against a state another write has since changed */
  | { readonly kind: 'changed'; readonly type: string; readonly id: string }
  /** the search would have the adapter order or resolve more than `limit` candidates in memory */
  | { readonly kind: 'too-costly'; readonly type: string; readonly limit: number };

/**
 * The checks every write of a given id makes of the current version (none, a tombstone, or live):
 * If-Match names the live current version, and an id that does not exist is created only where
 * allowed. Whether the write creates or updates.
 */
export function updateOutcome(
  type: string,
  id: string,
  current: { readonly versionId: number; readonly deleted: boolean } | undefined,
  options: { readonly ifMatch?: number; readonly allowCreate: boolean },
): 'created' | 'updated' {
  if (options.ifMatch !== undefined && (!current || current.deleted || current.versionId !== options.ifMatch)) {
    throw versionConflict(type, id, options.ifMatch);
  }
  if (!current && !options.allowCreate) throw new StoreError({ kind: 'not-found', type, id });
  return current && !current.deleted ? 'updated' : 'created';
}

/** The one match of conditional criteria (a page of at most two), none, or 412 for several. */
export function atMostOne(page: SearchPage, query: SearchQuery, what: string): StoredVersion | undefined {
  // See: https://hl7.org/fhir/R4/http.html#ccreate (multiple matches: 412 Precondition Failed)
  if (page.matches.length > 1) throw new StoreError({ kind: 'multiple-matches', type: query.type, what });
  return page.matches[0];
}

/** A transaction's expectation no longer holds (CommitOp). */
export function changed(type: string, id: string): StoreError {
  return new StoreError({ kind: 'changed', type, id });
}

export class StoreError extends Error {
  readonly failure: StoreFailure;
  constructor(failure: StoreFailure) {
    super(`store: ${failure.kind} on ${failure.type}`);
    this.name = 'StoreError';
    this.failure = failure;
  }
}

/** AuditEvents are written by the audit sink only, and never changed: adapters refuse them as resources. */
export function refuseAudit(type: string): void {
  if (type === 'AuditEvent') throw new Error('AuditEvents are written only through the AuditStore');
}

// See: https://hl7.org/fhir/R4/http.html#concurrency
export function versionConflict(type: string, id: string, ifMatch: number): StoreError {
  return new StoreError({ kind: 'version-conflict', type, id, ifMatch });
}
