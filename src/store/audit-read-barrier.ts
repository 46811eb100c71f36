import type { AuditProgress } from '../audit/progress.ts';
import { FhirError } from '../fhir/errors.ts';
import type { SearchQuery, StoredVersion } from '../fhir/query.ts';
import type { CommitOp, HistoryPage, HistoryQuery, Prepare, ResourceStore, SearchPage, WriteResult, WrittenVersion } from './resource-store.ts';

/**
 * Read-after-write for auditors, as a decorator over the resource store: a read or search of
 * AuditEvents (also as an `_include`/`_revinclude`, which reach the store by type) first waits
 * until the indexer has taken in every event committed before it began — bounded, and a clear
 * `503` with Retry-After when the index cannot catch up in time.
 */
export class AuditReadBarrier implements ResourceStore {
  readonly #inner: ResourceStore;
  readonly #progress: AuditProgress;
  readonly #timeoutMs: number;

  constructor(inner: ResourceStore, progress: AuditProgress, timeoutMs: number) {
    this.#inner = inner;
    this.#progress = progress;
    this.#timeoutMs = timeoutMs;
  }

  async #caughtUp(type: string): Promise<void> {
    if (type !== 'AuditEvent') return;
    if (await this.#progress.caughtUp(this.#timeoutMs)) return;
    const { lag } = this.#progress;
    throw new FhirError(
      'HEARTH_AUDIT_INDEX_BEHIND',
      `the AuditEvent search index is ${lag} event(s) behind the audit log and did not catch up within ${this.#timeoutMs} ms; retry shortly`,
      { 'retry-after': '1' },
    );
  }

  create(type: string, prepare: Prepare, ifNoneExist?: SearchQuery): Promise<WriteResult> {
    return this.#inner.create(type, prepare, ifNoneExist);
  }

  update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
  ): Promise<WriteResult> {
    return this.#inner.update(type, target, prepare, options);
  }

  delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined> {
    return this.#inner.delete(type, id, ifMatch, writeId);
  }

  commit(ops: readonly CommitOp[]): Promise<void> {
    return this.#inner.commit(ops);
  }

  writtenBy(writeId: string): Promise<WrittenVersion[]> {
    return this.#inner.writtenBy(writeId);
  }

  async read(type: string, id: string): Promise<StoredVersion | undefined> {
    await this.#caughtUp(type);
    return this.#inner.read(type, id);
  }

  async vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    await this.#caughtUp(type);
    return this.#inner.vread(type, id, versionId);
  }

  async history(query: HistoryQuery): Promise<HistoryPage> {
    await this.#caughtUp(query.type);
    return this.#inner.history(query);
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    await this.#caughtUp(query.type);
    return this.#inner.search(query);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
