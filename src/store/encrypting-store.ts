import type { BlindIndex } from '../crypto/blind-index.ts';
import { openResource, sealResource } from '../crypto/envelope.ts';
import type { KeyProvider } from '../crypto/keyring.ts';
import type { ProtectionPolicy } from '../crypto/protection.ts';
import type { SearchQuery, StoredVersion } from '../fhir/query.ts';
import type { HistoryPage, HistoryQuery, Prepare, ResourceStore, SearchPage, WriteResult, WrittenVersion } from './resource-store.ts';

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

  constructor(inner: ResourceStore, keys: KeyProvider, policy: ProtectionPolicy, blind: BlindIndex) {
    this.#inner = inner;
    this.#keys = keys;
    this.#policy = policy;
    this.#blind = blind;
  }

  #seal(type: string, prepare: Prepare): Prepare {
    const paths = this.#policy.paths.get(type) ?? [];
    return (v) => {
      const { resource, index, writeId } = prepare(v);
      const sealed = sealResource(this.#keys, paths, type, v.id, v.versionId, resource);
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
    const page = await this.#inner.search(this.#blind.query(query));
    return { ...page, matches: page.matches.map((v) => this.#open(v)) };
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
