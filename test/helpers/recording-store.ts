import type { SearchQuery, StoredVersion } from '../../src/fhir/query.ts';
import type { CommitOp, HistoryPage, HistoryQuery, Prepare, ResourceStore, SearchPage, WriteResult, WrittenVersion } from '../../src/store/resource-store.ts';

type Method = 'create' | 'update' | 'delete' | 'read' | 'vread' | 'history' | 'search' | 'writtenBy' | 'commit';

/**
 * A ResourceStore decorator for tests: records which methods were called (so a test can assert
 * that a refusal never reached the store) and can make one fail (so a test can drive a server
 * fault) — instead of patching the adapter's methods.
 */
export class RecordingStore implements ResourceStore {
  readonly calls: Method[] = [];
  readonly #inner: ResourceStore;
  readonly #failures = new Map<Method, Error>();

  constructor(inner: ResourceStore) {
    this.#inner = inner;
  }

  /** From now on, `method` throws `error` (until `heal`). */
  failWith(method: Method, error: Error): void {
    this.#failures.set(method, error);
  }

  heal(): void {
    this.#failures.clear();
  }

  #enter(method: Method): void {
    this.calls.push(method);
    const failure = this.#failures.get(method);
    if (failure) throw failure;
  }

  async create(type: string, prepare: Prepare, ifNoneExist?: SearchQuery): Promise<WriteResult> {
    this.#enter('create');
    return this.#inner.create(type, prepare, ifNoneExist);
  }

  async update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
  ): Promise<WriteResult> {
    this.#enter('update');
    return this.#inner.update(type, target, prepare, options);
  }

  async delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined> {
    this.#enter('delete');
    return this.#inner.delete(type, id, ifMatch, writeId);
  }

  async commit(ops: readonly CommitOp[]): Promise<void> {
    this.#enter('commit');
    return this.#inner.commit(ops);
  }

  async writtenBy(writeId: string): Promise<WrittenVersion[]> {
    this.#enter('writtenBy');
    return this.#inner.writtenBy(writeId);
  }

  async read(type: string, id: string): Promise<StoredVersion | undefined> {
    this.#enter('read');
    return this.#inner.read(type, id);
  }

  async vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    this.#enter('vread');
    return this.#inner.vread(type, id, versionId);
  }

  async history(query: HistoryQuery): Promise<HistoryPage> {
    this.#enter('history');
    return this.#inner.history(query);
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    this.#enter('search');
    return this.#inner.search(query);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
