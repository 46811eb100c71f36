import type { SearchQuery, StoredVersion } from '../fhir/query.ts';
import { badRequest } from '../fhir/errors.ts';
import {
  atMostOne,
  type CommitOp,
  type HistoryPage,
  type HistoryQuery,
  type Prepare,
  type ResourceStore,
  type SearchPage,
  updateOutcome,
  versionConflict,
  type WriteResult,
  type WrittenVersion,
} from '../store/resource-store.ts';

/**
 * The store a transaction's interactions write to: every write is prepared in full against the
 * store as it is — id, version, time, the final resource and its index entries, with what it
 * expects to find (the version it replaces, or nothing; a conditional create's criteria still
 * matching nothing) — and kept; `apply` hands them all to the store's `commit`, which writes all
 * of them in one store transaction or none. Reads pass through, so the interactions' checks
 * (compartments, If-Match, conditional matches) see the store as it is.
 */
export class TransactionPlan implements ResourceStore {
  readonly #store: ResourceStore;
  readonly #lastUpdated: string;
  readonly #nextId: () => string;
  readonly #ops: CommitOp[] = [];
  readonly #written = new Set<string>();

  constructor(store: ResourceStore, now: Date, nextId: () => string) {
    this.#store = store;
    this.#lastUpdated = now.toISOString();
    this.#nextId = nextId;
  }

  get size(): number {
    return this.#ops.length;
  }

  /** Writes every prepared version, or none (a StoreError `changed` when the store moved on). */
  apply(): Promise<void> {
    return this.#store.commit(this.#ops);
  }

  async create(type: string, prepare: Prepare, ifNoneExist?: SearchQuery): Promise<WriteResult> {
    if (ifNoneExist) {
      const existing = await this.#atMostOne(ifNoneExist, 'If-None-Exist');
      if (existing) return { outcome: 'exists', version: existing };
    }
    return { outcome: 'created', version: this.#put(type, this.#nextId(), undefined, prepare, ifNoneExist) };
  }

  async update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
  ): Promise<WriteResult> {
    let id: string;
    if ('query' in target) {
      const match = await this.#atMostOne(target.query, 'conditional update');
      // See: https://hl7.org/fhir/R4/http.html#cond-update (no match: the server performs a create)
      if (!match) return { outcome: 'created', version: this.#put(type, this.#nextId(), undefined, prepare, target.query) };
      id = match.id;
    } else id = target.id;
    const current = await this.#store.read(type, id);
    const outcome = updateOutcome(type, id, current, options);
    return { outcome, version: this.#put(type, id, current, prepare) };
  }

  async delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined> {
    const current = await this.#store.read(type, id);
    if (ifMatch !== undefined && current?.versionId !== ifMatch) throw versionConflict(type, id, ifMatch);
    if (!current || current.deleted) return undefined;
    this.#once(type, id);
    const versionId = current.versionId + 1;
    this.#ops.push({ type, id, expect: current.versionId, versionId, lastUpdated: this.#lastUpdated, writeId });
    return { type, id, versionId, lastUpdated: this.#lastUpdated, deleted: true };
  }

  #put(type: string, id: string, current: StoredVersion | undefined, prepare: Prepare, absent?: SearchQuery): StoredVersion {
    this.#once(type, id);
    const versionId = (current?.versionId ?? 0) + 1;
    const { resource, index, writeId } = prepare({ id, versionId, lastUpdated: this.#lastUpdated });
    const lastUpdated = this.#lastUpdated;
    this.#ops.push({ type, id, expect: current?.versionId, absent, versionId, lastUpdated, content: { resource, index }, writeId });
    return { type, id, versionId, lastUpdated: this.#lastUpdated, deleted: false, resource };
  }

  /**
   * One resource, one write: two entries of a transaction that change the same resource would
   * depend on their order, which R4 leaves to the server; refused instead.
   */
  #once(type: string, id: string): void {
    const key = `${type}/${id}`;
    if (this.#written.has(key)) throw badRequest('HEARTH_INVALID_RESOURCE', `${key} is written by more than one entry of the transaction`, undefined, 'duplicate');
    this.#written.add(key);
  }

  async #atMostOne(query: SearchQuery, what: string): Promise<StoredVersion | undefined> {
    return atMostOne(await this.#store.search({ ...query, count: 2, cursor: undefined, total: 'none' }), query, what);
  }

  commit(): Promise<void> {
    throw new Error('a transaction plan is applied, not committed into');
  }

  writtenBy(writeId: string): Promise<WrittenVersion[]> {
    return this.#store.writtenBy(writeId);
  }

  read(type: string, id: string): Promise<StoredVersion | undefined> {
    return this.#store.read(type, id);
  }

  vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    return this.#store.vread(type, id, versionId);
  }

  history(query: HistoryQuery): Promise<HistoryPage> {
    return this.#store.history(query);
  }

  search(query: SearchQuery): Promise<SearchPage> {
    return this.#store.search(query);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
