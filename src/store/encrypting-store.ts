import type { BlindIndex } from '../crypto/blind-index.ts';
import { openResource, type SharedDataKey, sealResource, sharedDataKey } from '../crypto/envelope.ts';
import type { KeyProvider } from '../crypto/keyring.ts';
import type { ProtectionPolicy } from '../crypto/protection.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { FhirError } from '../fhir/errors.ts';
import { extractIndex } from '../fhir/index-extractor.ts';
import { matches } from '../fhir/match.ts';
import { pageInMemory, type SearchQuery, type SortRow, sortValue, type StoredVersion } from '../fhir/query.ts';
import type { CommitOp, HistoryPage, HistoryQuery, Prepare, ResourceStore, SearchPage, WriteResult, WrittenVersion } from './resource-store.ts';

/** What a search the blind indexes cannot answer needs to be answered by decryption. */
export interface BoundedSearch {
  readonly model: FhirModel;
  readonly baseUrl: string;
  /** candidates that may be decrypted for one search, at most */
  readonly bound: number;
}

/**
 * The encryption boundary, as a decorator over any ResourceStore adapter: protected elements are
 * sealed inside the adapter's write transaction (once id and version are fixed, which the
 * additional authenticated data binds), their index entries blinded; reads are opened on the way
 * out and queries rewritten onto the blind indexes. Routes and adapters never see either side.
 */
export class EncryptingStore implements ResourceStore {
  readonly #inner: ResourceStore;
  readonly #keys: KeyProvider;
  readonly #policy: ProtectionPolicy;
  readonly #blind: BlindIndex;
  readonly #bounded?: BoundedSearch;

  constructor(inner: ResourceStore, keys: KeyProvider, policy: ProtectionPolicy, blind: BlindIndex, bounded?: BoundedSearch) {
    this.#inner = inner;
    this.#keys = keys;
    this.#policy = policy;
    this.#blind = blind;
    this.#bounded = bounded && bounded.bound > 0 ? bounded : undefined;
  }

  #seal(type: string, prepare: Prepare, shared?: SharedDataKey): Prepare {
    const paths = this.#policy.paths.get(type) ?? [];
    return (v) => {
      const { resource, index, writeId } = prepare(v);
      const sealed = sealResource(this.#keys, paths, type, v.id, v.versionId, resource, undefined, shared);
      return { resource: sealed, index: this.#blind.entries(type, index), writeId };
    };
  }

  #open(v: StoredVersion): StoredVersion;
  #open(v: StoredVersion | undefined): StoredVersion | undefined;
  #open(v: StoredVersion | undefined): StoredVersion | undefined {
    if (!v?.resource) return v;
    return { ...v, resource: openResource(this.#keys, v.type, v.id, v.versionId, v.resource) };
  }

  async create(type: string, prepare: Prepare, ifNoneExist?: SearchQuery): Promise<WriteResult> {
    const r = await this.#inner.create(type, this.#seal(type, prepare), ifNoneExist && this.#blind.query(ifNoneExist));
    return { ...r, version: this.#open(r.version) };
  }

  async update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
  ): Promise<WriteResult> {
    const t = 'query' in target ? { query: this.#blind.query(target.query) } : target;
    const r = await this.#inner.update(type, t, this.#seal(type, prepare), options);
    return { ...r, version: this.#open(r.version) };
  }

  delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined> {
    return this.#inner.delete(type, id, ifMatch, writeId);
  }

  /**
   * Seals each version of the transaction as a single write would be sealed — under one data key
   * they share when there are several (envelope version 3: one AES-GCM operation a version, not
   * two) — and blinds its criteria.
   */
  commit(ops: readonly CommitOp[]): Promise<void> {
    const shared = ops.filter((op) => op.content).length > 1 ? sharedDataKey(this.#keys) : undefined;
    return this.#inner.commit(
      ops.map((op) => {
        const absent = op.absent && this.#blind.query(op.absent);
        if (!op.content) return { ...op, absent };
        const { resource, index } = op.content;
        const version = { id: op.id, versionId: op.versionId, lastUpdated: op.lastUpdated };
        const sealed = this.#seal(op.type, () => ({ resource, index }), shared)(version);
        return { ...op, absent, content: { resource: sealed.resource, index: sealed.index } };
      }),
    );
  }

  writtenBy(writeId: string): Promise<WrittenVersion[]> {
    return this.#inner.writtenBy(writeId);
  }

  async read(type: string, id: string): Promise<StoredVersion | undefined> {
    return this.#open(await this.#inner.read(type, id));
  }

  async vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    return this.#open(await this.#inner.vread(type, id, versionId));
  }

  async history(query: HistoryQuery): Promise<HistoryPage> {
    const page = await this.#inner.history(query);
    return { ...page, versions: page.versions.map((v) => this.#open(v)) };
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    let blinded: SearchQuery;
    try {
      blinded = this.#blind.query(query);
    } catch (err) {
      if (!this.#bounded || !(err instanceof FhirError && err.code === 'HEARTH_PROTECTED_SEARCH')) throw err;
      return this.#decryptingSearch(query, this.#bounded);
    }
    const page = await this.#inner.search(blinded);
    return { ...page, matches: page.matches.map((v) => this.#open(v)) };
  }

  /**
   * A search the blind indexes cannot answer whole (a range or prefix over an encrypted value,
   * :contains, _sort by one): its clauses they can answer select the candidates in the store —
   * at most `bound` of them, or a 400 naming the limit — which are decrypted; the rest of the
   * clauses and the order are evaluated on the plain resources, exactly as a plain store would,
   * with the same keyset paging. Never a decryption of more than `bound` resources.
   */
  async #decryptingSearch(query: SearchQuery, bounded: BoundedSearch): Promise<SearchPage> {
    const answerable: SearchQuery['where'][number][] = [];
    const narrowing: SearchQuery['where'][number][] = [];
    const residual: SearchQuery['where'][number][] = [];
    for (const c of query.where) {
      try {
        answerable.push(this.#blind.query({ ...query, where: [c], sort: [] }).where[0]);
      } catch (err) {
        if (!(err instanceof FhirError && err.code === 'HEARTH_PROTECTED_SEARCH')) throw err;
        residual.push(c);
        const n = this.#blind.narrowing(query.type, c);
        if (n) narrowing.push(n);
      }
    }
    // Counted first (from the index), so that a search over the bound reads no resource at all.
    const select: SearchQuery = { type: query.type, where: [...answerable, ...narrowing], sort: [], count: 1, total: 'accurate' };
    const counted = (await this.#inner.search(select)).total ?? Number.POSITIVE_INFINITY;
    const candidates = counted > bounded.bound ? undefined : await this.#inner.search({ ...select, count: bounded.bound, total: 'none' });
    if (!candidates || candidates.hasNext) {
      throw new FhirError(
        'HEARTH_SEARCH_LIMIT',
        `this search reads elements encrypted at rest in a way only decrypting can answer, and its other parameters leave more than ${bounded.bound} ` +
        `${query.type} resources to decrypt (HEARTH_SEARCH_DECRYPT_BOUND): narrow it with a patient or subject, a code, an identifier, an _id or a date`,
      );
    }
    const resolve = async (reference: string) => {
      const [type, id] = reference.split('/');
      const v = type && id ? await this.read(type, id) : undefined;
      return v?.deleted ? undefined : v?.resource;
    };
    const typeModel = bounded.model.types.get(query.type);
    const rows: (SortRow & { version: StoredVersion })[] = [];
    for (const stored of candidates.matches) {
      const version = this.#open(stored);
      const resource = version.resource;
      if (!resource || !typeModel) continue;
      let all = true;
      for (const c of residual) {
        if (!(await matches(bounded.model, query.type, resource, c, bounded.baseUrl, resolve))) {
          all = false;
          break;
        }
      }
      if (!all) continue;
      const entries = query.sort.length ? extractIndex(typeModel, resource, bounded.baseUrl) : [];
      rows.push({ id: version.id, keys: query.sort.map((k) => sortValue(entries, k)), version });
    }
    const { page, more } = pageInMemory(rows, query);
    const backwards = query.cursor?.direction === 'previous';
    return {
      matches: page.map((r) => r.version),
      keys: page.map((r) => r.keys),
      hasNext: backwards ? true : more,
      hasPrevious: backwards ? more : query.cursor !== undefined,
      total: query.total === 'none' ? undefined : rows.length,
    };
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
