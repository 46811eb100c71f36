import type { Access } from '../auth/authorize.ts';
import type { Permission } from '../auth/scopes.ts';
import type { Clause, SearchQuery, StoredVersion } from '../fhir/query.ts';
import type { Prepare, ResourceStore, SearchPage, WriteResult } from '../store/resource-store.ts';
import { compartmentLinks } from '../fhir/compartment.ts';
import type { FhirModel, TypeModel } from '../fhir/definitions.ts';
import { FhirError, notFound, versionConflict } from '../fhir/errors.ts';
import { extractIndex } from '../fhir/index-extractor.ts';
import { matches } from '../fhir/match.ts';
import { answerClause } from '../fhir/search-clauses.ts';
import type { IncludeSpec, ParsedSearch } from '../fhir/search-parser.ts';
import type { ResourceValidator } from '../fhir/validator.ts';
import { TransactionPlan } from './transaction-plan.ts';

type Json = Record<string, unknown>;

/** A page of matches, with what `_include` and `_revinclude` added to it. */
export interface SearchResult extends SearchPage {
  readonly included: readonly StoredVersion[];
}

/**
 * The write-ahead audit of one write: `record` makes its attempt durable in the audit log, and is
 * called right before the write goes to the store; `id` (the request's) is stored with the
 * version, so that recovery can tell whether the write committed.
 */
export interface WriteAhead {
  readonly id: string;
  record(): Promise<void>;
}

/**
 * FHIR semantics over the store port: validation, server-managed meta, index extraction, version
 * rules, includes, and enforcement of what the request's `Access` allows (compartments,
 * relationships, granular scopes). Knows nothing of HTTP, so that Bundles and $export can reuse it.
 * A resource outside what the token may read is reported as not found: existence is not revealed.
 */
export class FhirRepository {
  readonly #model: FhirModel;
  readonly #validator: ResourceValidator;
  readonly #store: ResourceStore;
  readonly #baseUrl: string;
  readonly #maxIncludes: number;
  readonly #compartments: ReadonlyMap<string, readonly string[]>;

  constructor(deps: {
    model: FhirModel;
    validator: ResourceValidator;
    store: ResourceStore;
    baseUrl: string;
    maxIncludes: number;
    /** the R4 Patient CompartmentDefinition: per type, the parameters that place it in a compartment */
    compartments: ReadonlyMap<string, readonly string[]>;
  }) {
    this.#compartments = deps.compartments;
    this.#model = deps.model;
    this.#validator = deps.validator;
    this.#store = deps.store;
    this.#baseUrl = deps.baseUrl;
    this.#maxIncludes = deps.maxIncludes;
  }

  /**
   * A transaction: the same repository over a plan of the store (rest/transaction-plan.ts), whose
   * writes are prepared, checked and authorized as any write, and committed together by `apply`.
   */
  transaction(now: Date, nextId: () => string): { repository: FhirRepository; plan: TransactionPlan } {
    const plan = new TransactionPlan(this.#store, now, nextId);
    const repository = new FhirRepository({
      model: this.#model,
      validator: this.#validator,
      store: plan,
      baseUrl: this.#baseUrl,
      maxIncludes: this.#maxIncludes,
      compartments: this.#compartments,
    });
    return { repository, plan };
  }

  typeModel(type: string): TypeModel {
    const m = this.#model.types.get(type);
    if (!m) throw notFound(`resource type ${type} is not served here`);
    return m;
  }

  async create(type: string, body: unknown, access: Access, ifNoneExist?: SearchQuery, writeAhead?: WriteAhead): Promise<WriteResult> {
    this.#validator.validate(body, type);
    await this.#mayWrite(type, body, access, 'c');
    const condition = ifNoneExist && this.#restrictQuery(ifNoneExist, access);
    await writeAhead?.record();
    // See: https://hl7.org/fhir/R4/http.html#create (a client-supplied id is ignored)
    return this.#store.create(type, this.#prepare(type, body, writeAhead?.id), condition);
  }

  async update(
    type: string,
    target: { id: string } | { query: SearchQuery },
    body: unknown,
    options: { ifMatch?: number; allowCreate: boolean },
    access: Access,
    writeAhead?: WriteAhead,
  ): Promise<WriteResult> {
    this.#validator.validate(body, type);
    await this.#mayWrite(type, body, access, 'u');
    let ifMatch = options.ifMatch;
    if ('id' in target) {
      // See: https://hl7.org/fhir/R4/http.html#update (the body's id must equal the URL's)
      if (body.id === undefined) throw mismatch(type, 'the resource must carry an id equal to the one in the URL');
      if (body.id !== target.id) throw mismatch(type, `resource id "${String(body.id)}" does not match the URL id "${target.id}"`);
      const restriction = access.restriction(type, 'u');
      if (restriction) {
        // The version being replaced must be reachable too; pin it so that the check and the write agree.
        const current = await this.#store.read(type, target.id);
        if (current && !current.deleted) {
          if (!(await this.#reachable(current, restriction))) throw hidden(type, target.id);
          await this.#checkLinks(current, access, 'u', 'replaced');
          if (ifMatch !== undefined && ifMatch !== current.versionId) throw versionConflict(type, target.id, ifMatch);
          ifMatch = current.versionId;
        } else if (current?.deleted) throw hidden(type, target.id);
      }
    }
    const query = 'query' in target ? this.#restrictQuery(target.query, access, 'u') : undefined;
    const prepare = this.#prepare(type, body, writeAhead?.id);
    const prepareChecked: Prepare = (v) => {
      // See: https://hl7.org/fhir/R4/http.html#cond-update (a body id must match the one resource found)
      if (body.id !== undefined && body.id !== v.id && query) {
        throw mismatch(type, `resource id "${String(body.id)}" does not match the resource found (${v.id})`);
      }
      return prepare(v);
    };
    if (query && access.links(type, 'u')) {
      // A token whose writes must stay in given compartments checks the version it would replace
      // too; find it first, then write by id pinned to that version, or create only if still none.
      const found = await this.#store.search({ ...query, count: 2, sort: [], cursor: undefined, total: 'none' });
      if (found.matches.length === 1) {
        const current = found.matches[0];
        await this.#checkLinks(current, access, 'u', 'replaced');
        if (ifMatch !== undefined && ifMatch !== current.versionId) throw versionConflict(type, current.id, ifMatch);
        await writeAhead?.record();
        return this.#store.update(type, { id: current.id }, prepareChecked, { ...options, ifMatch: current.versionId });
      }
      if (found.matches.length === 0 && ifMatch === undefined) {
        await writeAhead?.record();
        const created = await this.#store.create(type, prepareChecked, query);
        if (created.outcome === 'exists') throw raced(type);
        return created;
      }
    }
    await writeAhead?.record();
    return this.#store.update(type, query ? { query } : target, prepareChecked, { ...options, ifMatch });
  }

  /** Current, non-deleted, reachable version or a 404/410 FhirError. */
  async read(type: string, id: string, access: Access): Promise<StoredVersion> {
    this.typeModel(type);
    return this.#visible(await this.#store.read(type, id), type, id, access);
  }

  async vread(type: string, id: string, versionId: number, access: Access): Promise<StoredVersion> {
    this.typeModel(type);
    const v = await this.#store.vread(type, id, versionId);
    if (!v) throw notFound(`${type}/${id} has no version ${versionId}`);
    return this.#visible(v, type, id, access);
  }

  /**
   * Deletes with one read of the current version: the If-Match check (on what the token may read),
   * the restriction and compartment links checked on it, and the delete pinned to it.
   * `tombstone` is the new version (undefined when there was nothing current: deleting a deleted
   * resource succeeds), `before` the version it replaced, `latest` the newest version after.
   * See: https://hl7.org/fhir/R4/http.html#delete
   */
  async delete(
    type: string,
    id: string,
    access: Access,
    ifMatch?: number,
    writeAhead?: WriteAhead,
  ): Promise<{ tombstone?: StoredVersion; before?: StoredVersion; latest: StoredVersion }> {
    this.typeModel(type);
    const restriction = access.restriction(type, 'd');
    if (restriction === undefined) throw forbidden(`the token does not grant d on ${type}`);
    const current = await this.#store.read(type, id);
    if (ifMatch !== undefined) {
      const visible = await this.#visible(current, type, id, access);
      if (visible.versionId !== ifMatch) throw versionConflict(type, id, ifMatch);
    }
    let tombstone: StoredVersion | undefined;
    if (current && !current.deleted) {
      if (restriction) {
        if (!(await this.#reachable(current, restriction))) throw hidden(type, id);
        await this.#checkLinks(current, access, 'd', 'replaced');
      }
      // Pinned to what was checked: the token's restriction, or the client's If-Match.
      const pin = restriction || ifMatch !== undefined ? current.versionId : undefined;
      await writeAhead?.record();
      tombstone = await this.#store.delete(type, id, pin, writeAhead?.id);
    }
    // A restricted token learns nothing of a deleted resource: as if it never existed.
    const latest = tombstone ?? (restriction && current?.deleted ? undefined : current);
    if (!latest) throw notFound(`${type}/${id} does not exist`);
    if (!tombstone) return { latest };
    // Unpinned, another write may have come between the read and the delete.
    const before = current?.versionId === tombstone.versionId - 1 ? current : await this.#store.vread(type, id, tombstone.versionId - 1);
    return { tombstone, before, latest };
  }

  async history(type: string, id: string | undefined, options: { since?: string; count: number; after?: number }, access: Access) {
    this.typeModel(type);
    const restriction = access.restriction(type, id === undefined ? 's' : 'r');
    if (id !== undefined) {
      const current = await this.#store.read(type, id);
      if (!current) throw notFound(`${type}/${id} does not exist`);
      if (restriction && (current.deleted || !(await this.#reachable(current, restriction)))) throw hidden(type, id);
    }
    const page = await this.#store.history({ type, id, ...options });
    if (!restriction) return page;
    const versions: StoredVersion[] = [];
    for (const v of page.versions) if (!v.deleted && (await this.#reachable(v, restriction))) versions.push(v);
    // A filtered page has no honest total.
    return { versions, next: page.next, total: undefined };
  }

  async search(search: ParsedSearch, access: Access): Promise<SearchResult> {
    const page = await this.#store.search(this.#restrictQuery(search.query, access));
    const included: StoredVersion[] = [];
    const seen = new Set(page.matches.map((m) => `${m.type}/${m.id}`));
    const add = async (v: StoredVersion) => {
      const key = `${v.type}/${v.id}`;
      if (seen.has(key) || included.length >= this.#maxIncludes) return;
      // Included resources are read on the token's authority too.
      const restriction = access.restriction(v.type, 'r');
      if (restriction === undefined || (restriction && !(await this.#reachable(v, restriction)))) return;
      seen.add(key);
      included.push(v);
    };
    for (const spec of search.includes) {
      for (const ref of this.#referencesOf(page.matches, spec)) {
        const [t, id] = ref.split('/');
        if (spec.targetType && t !== spec.targetType) continue;
        if (!this.#model.types.has(t)) continue;
        const v = await this.#store.read(t, id);
        if (v && !v.deleted) await add(v);
      }
    }
    for (const spec of search.revIncludes) {
      if (page.matches.length === 0) break;
      const refs = page.matches.map((m) => `${m.type}/${m.id}`);
      const def = this.typeModel(spec.sourceType).params.get(spec.param);
      if (!def) continue;
      const where: Clause[] = [answerClause(def, [{ field: 'code', op: 'in', value: refs }])];
      const found = await this.#store.search(
        this.#restrictQuery({ type: spec.sourceType, where, sort: [], count: this.#maxIncludes, total: 'none' }, access, undefined, 'r'),
      );
      for (const v of found.matches) await add(v);
    }
    return { ...page, included };
  }

  /** Adds the token's restriction for the query's type (and for every chained type) to a query. */
  #restrictQuery(query: SearchQuery, access: Access, also?: Permission, permission: Permission = 's'): SearchQuery {
    const extra: Clause[] = [];
    for (const p of also ? [permission, also] : [permission]) {
      const r = access.restriction(query.type, p);
      if (r === undefined) throw forbidden(`the token does not grant ${p} on ${query.type}`);
      if (r) extra.push(r);
    }
    const where = query.where.map((c) => this.#restrictChains(c, access));
    return { ...query, where: [...where, ...extra] };
  }

  #restrictChains(clause: Clause, access: Access): Clause {
    switch (clause.kind) {
      case 'chain': {
        const r = access.restriction(clause.targetType, 's');
        if (r === undefined) throw forbidden(`the token does not grant search on ${clause.targetType}, needed by a chained parameter`);
        const where = clause.where.map((c) => this.#restrictChains(c, access));
        return { ...clause, where: r ? [...where, r] : where };
      }
      case 'or':
        return { ...clause, any: clause.any.map((c) => this.#restrictChains(c, access)) };
      case 'and':
        return { ...clause, all: clause.all.map((c) => this.#restrictChains(c, access)) };
      case 'not':
        return { ...clause, clause: this.#restrictChains(clause.clause, access) };
      default:
        return clause;
    }
  }

  async #mayWrite(type: string, body: Json, access: Access, permission: Permission): Promise<void> {
    const restriction = access.restriction(type, permission);
    if (restriction === undefined) throw forbidden(`the token does not grant ${permission} on ${type}`);
    const draft: StoredVersion = { type, id: '', versionId: 0, lastUpdated: '', deleted: false, resource: body };
    if (restriction && !(await this.#reachable(draft, restriction))) {
      throw forbidden(`the token may not write this ${type}: it would fall outside the patient compartment or granted scope`);
    }
    await this.#checkLinks(draft, access, permission, 'new');
  }

  /**
   * Writes stay in the writer's compartments on every link: each reference that places the
   * resource in a Patient compartment (R4 Patient CompartmentDefinition) must name the token's
   * patient, or under the relationship policy a patient assigned to the clinician — in the new
   * content, and in the version a write replaces or deletes. Being in the writer's compartment
   * is not enough: the resource must not enter, or already sit in, anyone else's.
   */
  async #checkLinks(v: StoredVersion, access: Access, permission: Permission, which: 'new' | 'replaced'): Promise<void> {
    const rule = access.links(v.type, permission);
    if (!rule || !v.resource) return;
    for (const link of compartmentLinks(this.typeModel(v.type), this.#compartments.get(v.type) ?? [], v.resource, this.#baseUrl)) {
      if (rule.patient !== undefined && link.patient === `Patient/${rule.patient}`) continue;
      if (rule.assigned && (await this.#assigned(link.patient, rule.assigned))) continue;
      if (which === 'replaced') {
        throw forbidden(`the current version of ${v.type}/${v.id} also belongs to another patient's record (${link.expression}), which this token may not change`);
      }
      throw new FhirError('HEARTH_FORBIDDEN', {
        code: 'forbidden',
        diagnostics: `${link.expression} references ${link.patient}, which is outside the patients this token may write for`,
        expression: link.expression,
      });
    }
  }

  async #assigned(patient: string, assigned: Clause): Promise<boolean> {
    const target = await this.#store.read('Patient', patient.slice('Patient/'.length));
    return !!target && !target.deleted && (await this.#reachable(target, assigned));
  }

  async #reachable(v: StoredVersion, restriction: Clause): Promise<boolean> {
    if (!v.resource) return false;
    const resource = v.id ? { ...v.resource, id: v.id } : v.resource;
    return matches(this.#model, v.type, resource, restriction, this.#baseUrl, async (ref) => {
      const [t, id] = ref.split('/');
      if (!this.#model.types.has(t)) return undefined;
      const target = await this.#store.read(t, id);
      return target && !target.deleted ? target.resource : undefined;
    });
  }

  async #visible(v: StoredVersion | undefined, type: string, id: string, access: Access): Promise<StoredVersion> {
    if (!v) throw notFound(`${type}/${id} does not exist`);
    const restriction = access.restriction(type, 'r');
    if (restriction === undefined) throw forbidden(`the token does not grant read on ${type}`);
    if (restriction) {
      // A restricted reader learns nothing about resources outside its reach, deleted ones included.
      if (v.deleted || !(await this.#reachable(v, restriction))) throw hidden(type, id);
      return v;
    }
    // See: https://hl7.org/fhir/R4/http.html#read (a deleted resource reads as 410 Gone)
    if (v.deleted) throw new FhirError('HEARTH_GONE', { code: 'deleted', diagnostics: `${type}/${id} was deleted` });
    return v;
  }

  #referencesOf(matchesFound: readonly StoredVersion[], spec: IncludeSpec): string[] {
    const def = this.typeModel(spec.sourceType).params.get(spec.param);
    if (!def) return [];
    // The parameter's own references, even where other parameters' entries answer its searches.
    const model = { ...this.typeModel(spec.sourceType), params: new Map([[def.code, { ...def, narrows: undefined }]]) };
    const refs: string[] = [];
    for (const m of matchesFound) {
      if (!m.resource) continue;
      for (const e of extractIndex(model, m.resource, this.#baseUrl)) {
        if (e.param === def.code && e.code && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(e.code)) refs.push(e.code);
      }
    }
    return [...new Set(refs)];
  }

  /** What the store calls inside its transaction once id, version and time are fixed. */
  #prepare(type: string, body: Json, writeId?: string): Prepare {
    const model = this.typeModel(type);
    return (v) => {
      // Server-managed meta: client versionId and lastUpdated are always replaced.
      // See: https://hl7.org/fhir/R4/resource.html#Meta
      const meta = { ...((body.meta as Json | undefined) ?? {}), versionId: String(v.versionId), lastUpdated: v.lastUpdated };
      const resource: Json = { resourceType: type, id: v.id, ...body, meta };
      resource.id = v.id;
      return { resource, index: extractIndex(model, resource, this.#baseUrl), writeId };
    };
  }
}

function mismatch(type: string, diagnostics: string): FhirError {
  return new FhirError('HEARTH_ID_MISMATCH', { code: 'invalid', diagnostics, expression: `${type}.id` });
}

function hidden(type: string, id: string): FhirError {
  return notFound(`${type}/${id} does not exist`);
}

export function forbidden(diagnostics: string): FhirError {
  return new FhirError('HEARTH_FORBIDDEN', { code: 'forbidden', diagnostics });
}

function raced(type: string): FhirError {
  return new FhirError('HEARTH_VERSION_CONFLICT', {
    code: 'conflict',
    diagnostics: `a ${type} matching the conditional update was written concurrently; retry the request`,
  });
}
