import { createHash, randomInt, randomUUID } from 'node:crypto';
import type { AnyBulkWriteOperation, ClientSession, Collection, Db, Filter } from 'mongodb';
import { pageInMemory, type SearchQuery, sortValue, type StoredVersion } from '../../fhir/query.ts';
import { parseStored } from '../../fhir/json.ts';
import { KEK_ID_PATH } from '../../crypto/envelope.ts';
import {
  atMostOne,
  changed,
  type CommitOp,
  updateOutcome,
  type HistoryPage,
  type HistoryQuery,
  type Prepare,
  type ResourceStore,
  type SearchPage,
  refuseAudit,
  StoreError,
  versionConflict,
  type WriteResult,
  type WrittenVersion,
  writtenByRequest,
} from '../resource-store.ts';
import type { KeyMaintenance } from '../port.ts';
import { COLLECTIONS } from './mongo-schema.ts';
import { inTransaction, KeyedQueue, type Transactions } from './mongo-transaction.ts';
import { type ResourceDoc, searchFilter, storedIndex } from './mongo-query.ts';

/** A version as stored in resource_versions. */
export interface VersionDoc {
  _id: string;
  type: string;
  id: string;
  v: number;
  at: string;
  /** write order, newest highest: what history pages by */
  ord: number;
  deleted: boolean;
  body: string | null;
  /** the key-encryption key its data key is wrapped under (key rotation's work list) */
  kek?: string;
  writeId?: string;
}

interface ClaimDoc {
  _id: string;
}

/** How many times a write that lost a race (another wrote the same version first) is tried anew. */
const RACE_RETRIES = 20;
/** Candidates a search sorted by anything but id may order in memory, at most. */
export const SORT_CAP = 10_000;
/** References a chained parameter may resolve to, at most. */
export const CHAIN_CAP = 10_000;

let lastOrd = 0;
/**
 * Write order for history: the instant in ms times 1024 plus a counter, strictly increasing in
 * this process (ms since 1970 fit in 2^43 until the year 2248, with 10 bits to spare below 2^53).
 * Two instances writing in the same millisecond interleave by their counters, which start at a
 * random point.
 */
function nextOrd(atMs: number): number {
  lastOrd = Math.max(lastOrd + 1, atMs * 1024 + (lastOrd === 0 ? randomInt(1024) : 0));
  return lastOrd;
}

/**
 * The ResourceStore on MongoDB. A write is one multi-document transaction: the new version
 * inserted into resource_versions under `Type/id/version` (so a concurrent writer of the same
 * version collides, and one of them loses: 412 with If-Match, a fresh try without), the current
 * document replaced with its body and index entries, and for conditional writes a claim named by
 * the criteria (concurrent conditional creates collide on it instead of both creating).
 */
export class MongoStore implements ResourceStore, KeyMaintenance {
  readonly #tx: Transactions;
  readonly #queue = new KeyedQueue();
  readonly #resources: Collection<ResourceDoc>;
  readonly #auditIndex: Collection<ResourceDoc>;
  readonly #versions: Collection<VersionDoc>;
  readonly #claims: Collection<ClaimDoc>;
  readonly #clock: () => Date;
  readonly #auditBody: (id: string) => Promise<string | undefined>;

  constructor(tx: Transactions, db: Db, clock: () => Date, auditBody: (id: string) => Promise<string | undefined>) {
    this.#tx = tx;
    this.#resources = db.collection<ResourceDoc>(COLLECTIONS.resources);
    this.#auditIndex = db.collection<ResourceDoc>(COLLECTIONS.auditIndex);
    this.#versions = db.collection<VersionDoc>(COLLECTIONS.versions);
    this.#claims = db.collection<ClaimDoc>(COLLECTIONS.claims);
    this.#clock = clock;
    this.#auditBody = auditBody;
  }

  async hasResources(): Promise<boolean> {
    return (await this.#versions.findOne({}, { projection: { _id: 1 } })) !== null;
  }

  async countKeyUse(kekId: string): Promise<number> {
    return this.#versions.countDocuments({ kek: kekId });
  }

  async rewrapAll(
    currentKek: string,
    rewrap: (type: string, id: string, version: number, body: Record<string, unknown>) => Record<string, unknown> | undefined,
    progress: (done: number, total: number) => void,
    batch = 200,
  ): Promise<number> {
    const pending: Filter<VersionDoc> = { kek: { $exists: true, $ne: currentKek } };
    const total = await this.#versions.countDocuments(pending);
    let done = 0;
    progress(0, total);
    let after = '';
    for (;;) {
      const rows = await this.#versions.find({ ...pending, _id: { $gt: after } }).sort({ _id: 1 }).limit(batch).toArray();
      if (rows.length === 0) break;
      for (const r of rows) {
        if (r.body === null) continue;
        const next = rewrap(r.type, r.id, r.v, parseStored(r.body) as Record<string, unknown>);
        if (!next) continue;
        const body = JSON.stringify(next);
        // Compare-and-set on the old body, in the version and (when it is current) the resource.
        const kek = kekOf(next);
        const u = await this.#versions.updateOne({ _id: r._id, body: r.body }, { $set: { body, ...(kek ? { kek } : {}) } });
        await this.#resources.updateOne({ _id: `${r.type}/${r.id}`, v: r.v, body: r.body }, { $set: { body } });
        done += u.modifiedCount;
      }
      after = rows[rows.length - 1]._id;
      progress(done, total);
    }
    return done;
  }

  async create(type: string, prepare: Prepare, ifNoneExist?: SearchQuery): Promise<WriteResult> {
    refuseAudit(type);
    if (!ifNoneExist) return this.#create(type, prepare);
    const criteria = criteriaKey(ifNoneExist);
    return this.#queue.run(`?${criteria}`, () => this.#create(type, prepare, { query: ifNoneExist, criteria }));
  }

  #create(type: string, prepare: Prepare, ifNoneExist?: { query: SearchQuery; criteria: string }): Promise<WriteResult> {
    return this.#retrying(async (session) => {
      if (ifNoneExist) {
        const existing = await this.#matchAtMostOne(ifNoneExist.query, 'If-None-Exist', session);
        if (existing) return { outcome: 'exists', version: existing };
        await this.#claim(ifNoneExist.criteria, session);
      }
      return { outcome: 'created', version: await this.#write(type, randomUUID(), undefined, prepare, session) };
    });
  }

  async update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
  ): Promise<WriteResult> {
    refuseAudit(type);
    const criteria = 'query' in target ? criteriaKey(target.query) : undefined;
    const key = 'query' in target ? `?${criteria}` : `${type}/${target.id}`;
    return this.#queue.run(key, () => this.#update(type, target, prepare, options, criteria));
  }

  #update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
    criteria?: string,
  ): Promise<WriteResult> {
    return this.#retrying(async (session) => {
      let id: string;
      if ('query' in target) {
        const match = await this.#matchAtMostOne(target.query, 'conditional update', session);
        if (!match) {
          // See: https://hl7.org/fhir/R4/http.html#cond-update (no match: the server performs a create)
          await this.#claim(criteria ?? criteriaKey(target.query), session);
          return { outcome: 'created', version: await this.#write(type, randomUUID(), undefined, prepare, session) };
        }
        id = match.id;
      } else {
        id = target.id;
      }
      const current = await this.#resources.findOne({ _id: `${type}/${id}` }, { session });
      const outcome = updateOutcome(type, id, current ? { versionId: current.v, deleted: current.deleted } : undefined, options);
      return { outcome, version: await this.#write(type, id, current ?? undefined, prepare, session) };
    }, options.ifMatch !== undefined ? { type, id: 'id' in target ? target.id : '', ifMatch: options.ifMatch } : undefined);
  }

  async delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined> {
    refuseAudit(type);
    return this.#queue.run(`${type}/${id}`, () => this.#delete(type, id, ifMatch, writeId));
  }

  #delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined> {
    return this.#retrying(async (session) => {
      const current = await this.#resources.findOne({ _id: `${type}/${id}` }, { session });
      if (ifMatch !== undefined && current?.v !== ifMatch) throw versionConflict(type, id, ifMatch);
      if (!current || current.deleted) return undefined;
      const op: CommitOp = { type, id, expect: current.v, versionId: current.v + 1, lastUpdated: this.#clock().toISOString(), writeId };
      const docs = docsOf(op);
      await this.#versions.insertOne(docs.version, { session });
      await this.#resources.replaceOne({ _id: current._id, v: current.v }, docs.current, { session });
      return { type, id, versionId: op.versionId, lastUpdated: op.lastUpdated, deleted: true };
    }, ifMatch !== undefined ? { type, id, ifMatch } : undefined);
  }

  /**
   * A transaction's versions in one durable multi-document transaction. A concurrent writer of
   * one of them collides on its version's `_id` (or its criteria's claim) and the whole
   * transaction is refused as changed: it was prepared against a state that is gone.
   */
  async commit(ops: readonly CommitOp[]): Promise<void> {
    for (const op of ops) refuseAudit(op.type);
    if (ops.length === 0) return;
    await inTransaction(
      this.#tx,
      async (session) => {
        // Three round trips whatever the size: the current documents, then every version and
        // every current document in bulk.
        const ids = ops.map((op) => `${op.type}/${op.id}`);
        const found = new Map<string, ResourceDoc>();
        for await (const d of this.#resources.find({ _id: { $in: ids } }, { session })) found.set(d._id, d);
        const versions: VersionDoc[] = [];
        const writes: AnyBulkWriteOperation<ResourceDoc>[] = [];
        for (const [n, op] of ops.entries()) {
          const current = found.get(ids[n]);
          if ((current?.v ?? undefined) !== op.expect) throw changed(op.type, op.id);
          if (op.absent) {
            if ((await this.#search({ ...op.absent, count: 1, cursor: undefined, total: 'none' }, session)).matches.length > 0) throw changed(op.type, op.id);
            await this.#claim(criteriaKey(op.absent), session);
          }
          const { version, current: doc } = docsOf(op);
          versions.push(version);
          const replace = current && { replaceOne: { filter: { _id: current._id, v: current.v }, replacement: doc } };
          writes.push(replace ?? { insertOne: { document: { _id: ids[n], ...doc } } });
        }
        await this.#versions.insertMany(versions, { session, ordered: true });
        const result = await this.#resources.bulkWrite(writes, { session, ordered: true });
        // A replaced document that had moved on matched nothing: the transaction is stale.
        if (result.matchedCount !== writes.filter((w) => 'replaceOne' in w).length) throw changed(ops[0].type, ops[0].id);
      },
      () => {
        throw changed(ops[0].type, ops[0].id);
      },
    );
  }

  async writtenBy(writeId: string): Promise<WrittenVersion[]> {
    // (the id and every id after it up to `<id>/`: `<id>.<index>` of its entries among them)
    const rows = await this.#versions.find({ writeId: { $gte: writeId, $lt: `${writeId}/` } }).sort({ ord: 1 }).toArray();
    return rows
      .filter((r) => writtenByRequest(r.writeId!, writeId))
      .map((r) => ({ type: r.type, id: r.id, versionId: r.v, deleted: r.deleted, writeId: r.writeId! }));
  }

  /** Where current documents of `type` live: AuditEvents in the audit log's searchable copy. */
  #current(type: string): Collection<ResourceDoc> {
    return type === 'AuditEvent' ? this.#auditIndex : this.#resources;
  }

  async read(type: string, id: string): Promise<StoredVersion | undefined> {
    const doc = await this.#current(type).findOne({ _id: `${type}/${id}` });
    return doc ? this.#toVersion(doc) : undefined;
  }

  async vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    if (type === 'AuditEvent') return versionId === 1 ? this.read(type, id) : undefined;
    const doc = await this.#versions.findOne({ _id: `${type}/${id}/${versionId}` });
    return doc ? this.#toVersion(doc) : undefined;
  }

  /** A document as a version; an AuditEvent's body is the audit log's (gone after a purge). */
  async #toVersion(doc: Pick<VersionDoc, 'type' | 'id' | 'v' | 'at' | 'deleted' | 'body'>): Promise<StoredVersion | undefined> {
    let body = doc.body;
    if (doc.type === 'AuditEvent' && body === null && !doc.deleted) {
      body = (await this.#auditBody(doc.id)) ?? null;
      if (body === null) return undefined;
    }
    return {
      type: doc.type,
      id: doc.id,
      versionId: doc.v,
      lastUpdated: doc.at,
      deleted: doc.deleted,
      resource: body === null ? undefined : (parseStored(body) as Record<string, unknown>),
    };
  }

  async history(query: HistoryQuery): Promise<HistoryPage> {
    const filter: Filter<VersionDoc> = { type: query.type };
    if (query.id !== undefined) filter.id = query.id;
    if (query.since !== undefined) filter.at = { $gte: query.since };
    const total = await this.#versions.countDocuments(filter);
    const page = await this.#versions
      .find(query.after === undefined ? filter : { ...filter, ord: { $lt: query.after } })
      .sort({ ord: -1 })
      .limit(query.count + 1)
      .toArray();
    const rows = page.slice(0, query.count);
    const versions = (await Promise.all(rows.map((r) => this.#toVersion(r)))).filter((v) => v !== undefined);
    return { versions, next: page.length > query.count ? rows[rows.length - 1].ord : undefined, total };
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    return this.#search(query);
  }

  async #search(query: SearchQuery, session?: ClientSession): Promise<SearchPage> {
    const filter = await searchFilter(query.type, query.where, (targetType, where) => this.#references(targetType, where, session));
    const current = this.#current(query.type);
    const backwards = query.cursor?.direction === 'previous';
    const { docs, keys, more } = query.sort.length
      ? await this.#sortedPage(current, query, filter, session)
      : await this.#idPage(current, query, filter, session);
    const matches: StoredVersion[] = [];
    const pageKeys: (string | number | null)[][] = [];
    for (const [n, doc] of docs.entries()) {
      const v = await this.#toVersion(doc);
      if (!v) continue;
      matches.push(v);
      pageKeys.push(keys[n]);
    }
    const total = query.total === 'none' ? undefined : await current.countDocuments(filter, { session });
    return {
      matches,
      keys: pageKeys,
      hasNext: backwards ? true : more,
      hasPrevious: backwards ? more : query.cursor !== undefined,
      total,
    };
  }

  /** A page in id order (no _sort): the type_id index serves both the filter's type and the order. */
  async #idPage(current: Collection<ResourceDoc>, query: SearchQuery, filter: Filter<ResourceDoc>, session?: ClientSession) {
    const backwards = query.cursor?.direction === 'previous';
    const keyset: Filter<ResourceDoc> | undefined = query.cursor ? { id: { [backwards ? '$lt' : '$gt']: query.cursor.id } } : undefined;
    const rows = await current
      .find(keyset ? { $and: [filter, keyset] } : filter, { session })
      .sort({ type: 1, deleted: 1, id: backwards ? -1 : 1 })
      .limit(query.count + 1)
      .toArray();
    const more = rows.length > query.count;
    let docs = rows.slice(0, query.count);
    if (backwards) docs = docs.reverse();
    return { docs, keys: docs.map(() => []), more };
  }

  /**
   * A page sorted by search parameters: each candidate's sort values are the lowest (ascending)
   * or highest (descending) of its entries for the parameter, missing values last in both
   * directions, then id — as the embedded store orders them. The candidates (their ids and
   * entries) are ordered in memory, at most SORT_CAP of them; the page's bodies are read after.
   */
  async #sortedPage(current: Collection<ResourceDoc>, query: SearchQuery, filter: Filter<ResourceDoc>, session?: ClientSession) {
    // Ids and index entries only (no bodies) of the candidates; the page's bodies are read after.
    const candidates = await current.find(filter, { session, projection: { _id: 1, id: 1, ix: 1 } }).limit(SORT_CAP + 1).toArray();
    if (candidates.length > SORT_CAP) throw new StoreError({ kind: 'too-costly', type: query.type, limit: SORT_CAP });
    const rows = candidates.map((c) => ({ _id: c._id, id: c.id, keys: query.sort.map((k) => sortValue(c.ix, k)) }));
    const { page, more } = pageInMemory(rows, query);
    const bodies = new Map<string, ResourceDoc>();
    for await (const d of current.find({ _id: { $in: page.map((r) => r._id) } }, { session })) bodies.set(d._id, d);
    const docs = page.map((r) => bodies.get(r._id)).filter((d) => d !== undefined);
    return { docs, keys: page.filter((r) => bodies.has(r._id)).map((r) => r.keys), more };
  }

  /** The references (`Type/id`) of the resources a chained parameter's clauses match. */
  async #references(targetType: string, where: Filter<ResourceDoc>, session?: ClientSession): Promise<string[]> {
    const ids = await this.#current(targetType).find(where, { session, projection: { _id: 1 } }).limit(CHAIN_CAP + 1).toArray();
    if (ids.length > CHAIN_CAP) throw new StoreError({ kind: 'too-costly', type: targetType, limit: CHAIN_CAP });
    return ids.map((d) => d._id);
  }

  async close(): Promise<void> {
    // The client is the storage's (mongo-storage.ts), closed there.
  }

  async #matchAtMostOne(query: SearchQuery, what: string, session: ClientSession): Promise<StoredVersion | undefined> {
    return atMostOne(await this.#search({ ...query, count: 2, cursor: undefined, total: 'none' }, session), query, what);
  }

  /**
   * A conditional write's claim on its criteria: one document per write, named by the criteria and
   * how many claims they already have, so that two writers that both found no match insert the
   * same name and one of them loses (and, tried anew, finds what the other created).
   */
  async #claim(criteria: string, session: ClientSession): Promise<void> {
    const n = await this.#claims.countDocuments({ _id: { $gte: `${criteria}:`, $lt: `${criteria};` } }, { session });
    await this.#claims.insertOne({ _id: `${criteria}:${String(n).padStart(12, '0')}` }, { session });
  }

  async #write(
    type: string,
    id: string,
    current: ResourceDoc | undefined,
    prepare: Prepare,
    session: ClientSession,
  ): Promise<StoredVersion> {
    const versionId = (current?.v ?? 0) + 1;
    const lastUpdated = this.#clock().toISOString();
    const { resource, index, writeId } = prepare({ id, versionId, lastUpdated });
    const op: CommitOp = { type, id, expect: current?.v, versionId, lastUpdated, content: { resource, index }, writeId };
    const { version, current: doc } = docsOf(op);
    await this.#versions.insertOne(version, { session });
    if (current) await this.#resources.replaceOne({ _id: current._id, v: current.v }, doc, { session });
    else await this.#resources.insertOne({ _id: `${type}/${id}`, ...doc }, { session });
    return { type, id, versionId, lastUpdated, deleted: false, resource };
  }

  /**
   * Runs `work` in a durable transaction, anew when it lost a race to a concurrent writer; with
   * If-Match (`guard`), a lost race is the version conflict itself.
   */
  #retrying<T>(work: (session: ClientSession) => Promise<T>, guard?: { type: string; id: string; ifMatch: number }): Promise<T> {
    return inTransaction(this.#tx, work, (err, attempt) => {
      if (guard) throw versionConflict(guard.type, guard.id, guard.ifMatch);
      if (attempt >= RACE_RETRIES) throw err;
    });
  }
}

/**
 * The two documents of a version (a tombstone when it has no content): its resource_versions
 * document, and the current document (without its `_id`) that holds the body again with the
 * index entries.
 */
function docsOf(op: CommitOp): { version: VersionDoc; current: Omit<ResourceDoc, '_id'> } {
  const body = op.content ? JSON.stringify(op.content.resource) : null;
  const kek = op.content ? kekOf(op.content.resource) : undefined;
  const index = op.content ? storedIndex(op.content.index) : { ix: [], cx: [] };
  const { type, id, versionId: v, lastUpdated: at } = op;
  const deleted = !op.content;
  return {
    version: {
      _id: `${type}/${id}/${v}`,
      type,
      id,
      v,
      at,
      ord: nextOrd(Date.parse(at)),
      deleted,
      body,
      ...(kek ? { kek } : {}),
      ...(op.writeId ? { writeId: op.writeId } : {}),
    },
    current: { type, id, v, at, deleted, body, ...index },
  };
}

/** A name for conditional criteria: the same query always gives the same name. */
function criteriaKey(query: SearchQuery): string {
  return createHash('sha256').update(JSON.stringify([query.type, query.where])).digest('base64url');
}

function kekOf(resource: Record<string, unknown>): string | undefined {
  let v: unknown = resource;
  for (const k of KEK_ID_PATH) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === 'string' ? v : undefined;
}
