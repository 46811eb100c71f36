import type {
  Clause,
  IndexEntry,
  ResourceStore,
  SearchQuery,
  StoredVersion,
  WriteResult,
} from '../store/resource-store.ts';
import type { FhirModel, TypeModel } from './definitions.ts';
import { FhirError, notFound } from './errors.ts';
import { extractIndex } from './index-extractor.ts';
import type { IncludeSpec, ParsedSearch } from './search-parser.ts';
import type { ResourceValidator } from './validator.ts';

type Json = Record<string, unknown>;

export interface SearchResult {
  readonly matches: readonly StoredVersion[];
  readonly included: readonly StoredVersion[];
  readonly keys: readonly (readonly (string | number | null)[])[];
  readonly hasNext: boolean;
  readonly hasPrevious: boolean;
  readonly total?: number;
}

/**
 * FHIR semantics over the store port: validation, server-managed meta, index extraction, version
 * rules and includes. Knows nothing of HTTP, so that Bundles and $export can reuse it.
 */
export class FhirRepository {
  readonly #model: FhirModel;
  readonly #validator: ResourceValidator;
  readonly #store: ResourceStore;
  readonly #baseUrl: string;
  readonly #maxIncludes: number;

  constructor(deps: {
    model: FhirModel;
    validator: ResourceValidator;
    store: ResourceStore;
    baseUrl: string;
    maxIncludes: number;
  }) {
    this.#model = deps.model;
    this.#validator = deps.validator;
    this.#store = deps.store;
    this.#baseUrl = deps.baseUrl;
    this.#maxIncludes = deps.maxIncludes;
  }

  typeModel(type: string): TypeModel {
    const m = this.#model.types.get(type);
    if (!m) throw notFound(`resource type ${type} is not served here`);
    return m;
  }

  async create(type: string, body: unknown, ifNoneExist?: SearchQuery): Promise<WriteResult> {
    this.#validator.validate(body, type);
    // See: https://hl7.org/fhir/R4/http.html#create (a client-supplied id is ignored)
    return this.#store.create(type, this.#prepare(type, body), ifNoneExist);
  }

  async update(
    type: string,
    target: { id: string } | { query: SearchQuery },
    body: unknown,
    options: { ifMatch?: number; allowCreate: boolean },
  ): Promise<WriteResult> {
    this.#validator.validate(body, type);
    if ('id' in target) {
      // See: https://hl7.org/fhir/R4/http.html#update (the body's id must equal the URL's)
      if (body.id === undefined) throw mismatch(type, 'the resource must carry an id equal to the one in the URL');
      if (body.id !== target.id)
        throw mismatch(type, `resource id "${String(body.id)}" does not match the URL id "${target.id}"`);
    }
    const prepare = this.#prepare(type, body);
    return this.#store.update(
      type,
      target,
      (v) => {
        // See: https://hl7.org/fhir/R4/http.html#cond-update (a body id must match the one resource found)
        if (body.id !== undefined && body.id !== v.id && 'query' in target) {
          throw mismatch(type, `resource id "${String(body.id)}" does not match the resource found (${v.id})`);
        }
        return prepare(v);
      },
      options,
    );
  }

  /** Current, non-deleted version or a 404/410 FhirError. */
  async read(type: string, id: string): Promise<StoredVersion> {
    this.typeModel(type);
    return live(await this.#store.read(type, id), type, id);
  }

  /** The newest version, tombstones included; undefined when the resource never existed. */
  async latest(type: string, id: string): Promise<StoredVersion | undefined> {
    this.typeModel(type);
    return this.#store.read(type, id);
  }

  async vread(type: string, id: string, versionId: number): Promise<StoredVersion> {
    this.typeModel(type);
    const v = await this.#store.vread(type, id, versionId);
    if (!v) throw notFound(`${type}/${id} has no version ${versionId}`);
    return live(v, type, id);
  }

  async delete(type: string, id: string): Promise<StoredVersion | undefined> {
    this.typeModel(type);
    return this.#store.delete(type, id);
  }

  async history(type: string, id: string | undefined, options: { since?: string; count: number; after?: number }) {
    this.typeModel(type);
    if (id !== undefined && !(await this.#store.read(type, id))) throw notFound(`${type}/${id} does not exist`);
    return this.#store.history({ type, id, ...options });
  }

  async search(search: ParsedSearch): Promise<SearchResult> {
    const page = await this.#store.search(search.query);
    const included: StoredVersion[] = [];
    const seen = new Set(page.matches.map((m) => `${m.type}/${m.id}`));
    const add = (v: StoredVersion) => {
      const key = `${v.type}/${v.id}`;
      if (seen.has(key) || included.length >= this.#maxIncludes) return;
      seen.add(key);
      included.push(v);
    };
    for (const spec of search.includes) {
      for (const ref of this.#referencesOf(page.matches, spec)) {
        const [t, id] = ref.split('/');
        if (spec.targetType && t !== spec.targetType) continue;
        if (!this.#model.types.has(t)) continue;
        const v = await this.#store.read(t, id);
        if (v && !v.deleted) add(v);
      }
    }
    for (const spec of search.revIncludes) {
      if (page.matches.length === 0) break;
      const refs = page.matches.map((m) => `${m.type}/${m.id}`);
      const where: Clause[] = [
        { kind: 'exists', param: spec.param, where: [{ field: 'code', op: 'in', value: refs }] },
      ];
      const found = await this.#store.search({
        type: spec.sourceType,
        where,
        sort: [],
        count: this.#maxIncludes,
        total: 'none',
      });
      for (const v of found.matches) add(v);
    }
    return { ...page, included };
  }

  #referencesOf(matches: readonly StoredVersion[], spec: IncludeSpec): string[] {
    const def = this.typeModel(spec.sourceType).params.get(spec.param);
    if (!def) return [];
    const refs: string[] = [];
    for (const m of matches) {
      if (!m.resource) continue;
      for (const e of extractIndex(
        { ...this.typeModel(spec.sourceType), params: new Map([[def.code, def]]) },
        m.resource,
        this.#baseUrl,
      )) {
        if (e.param === def.code && e.code && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(e.code)) refs.push(e.code);
      }
    }
    return [...new Set(refs)];
  }

  /** What the store calls inside its transaction once id, version and time are fixed. */
  #prepare(type: string, body: Json) {
    const model = this.typeModel(type);
    return (v: { id: string; versionId: number; lastUpdated: string }): { resource: Json; index: IndexEntry[] } => {
      // Server-managed meta: client versionId and lastUpdated are always replaced.
      // See: https://hl7.org/fhir/R4/resource.html#Meta
      const meta = {
        ...((body.meta as Json | undefined) ?? {}),
        versionId: String(v.versionId),
        lastUpdated: v.lastUpdated,
      };
      const resource: Json = { resourceType: type, id: v.id, ...body, meta };
      resource.id = v.id;
      return { resource, index: extractIndex(model, resource, this.#baseUrl) };
    };
  }
}

function live(v: StoredVersion | undefined, type: string, id: string): StoredVersion {
  if (!v) throw notFound(`${type}/${id} does not exist`);
  // See: https://hl7.org/fhir/R4/http.html#read (a deleted resource reads as 410 Gone)
  if (v.deleted) throw new FhirError(410, 'HEARTH_GONE', { code: 'deleted', diagnostics: `${type}/${id} was deleted` });
  return v;
}

function mismatch(type: string, diagnostics: string): FhirError {
  return new FhirError(400, 'HEARTH_ID_MISMATCH', { code: 'invalid', diagnostics, expression: `${type}.id` });
}
