import type { AuditEvent } from 'fhir/r4.js';
import type { ClientSession, Collection, Db } from 'mongodb';
import type {
  AuditAppend,
  AuditIndex,
  AuditStore,
  ChainHead,
  ChainLink,
  Checkpoint,
  CheckpointSigner,
  IndexedAuditEvent,
  LogEntry,
  OpenAttempt,
  PurgeRecord,
} from '../../audit/audit-store.ts';
import { canonicalize } from '../../audit/canonical-json.ts';
import { GENESIS, linkHashOfCanonical } from '../../audit/chain.ts';
import { COLLECTIONS } from './mongo-schema.ts';
import { type ResourceDoc, storedIndex } from './mongo-query.ts';
import { inTransaction, type Transactions } from './mongo-transaction.ts';

interface LinkDoc {
  /** the sequence number */
  _id: number;
  id: string;
  recorded: string;
  searchable: boolean;
  prevHash: string;
  hash: string;
  /** the canonical JSON that was hashed */
  body: string;
}

interface CheckpointDoc extends Omit<Checkpoint, 'seq'> {
  _id: number;
}

interface PurgeDoc extends Omit<PurgeRecord, 'throughSeq'> {
  _id: number;
}

interface MarkDoc {
  _id: string;
  seq: number;
}

/** Appends that lost to another instance's (the same sequence number) are tried anew this often. */
const APPEND_RETRIES = 50;
const PAGE = 2_000;

/**
 * The audit log on MongoDB: one document per link, `_id` the sequence number. An append reads
 * the head and inserts its batch as one ordered bulk insert (and the signed head, when one is
 * due) in one transaction committed with majority write concern and the journal. Several Hearth
 * instances append to the same chain: two that read the same head insert the same sequence
 * numbers, the database refuses the second, and it appends again after the new head — one
 * linear chain, serialised by the database (docs/mongodb.md). There is no update or delete here
 * but the retention purge, which records itself in the chain.
 */
export class MongoAuditLog implements AuditStore {
  readonly #tx: Transactions;
  readonly #log: Collection<LinkDoc>;
  readonly #checkpoints: Collection<CheckpointDoc>;
  readonly #purges: Collection<PurgeDoc>;

  constructor(tx: Transactions, db: Db) {
    this.#tx = tx;
    this.#log = db.collection<LinkDoc>(COLLECTIONS.auditLog);
    this.#checkpoints = db.collection<CheckpointDoc>(COLLECTIONS.checkpoints);
    this.#purges = db.collection<PurgeDoc>(COLLECTIONS.purges);
  }

  async appendAudit(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<ChainHead> {
    return this.#transaction((session) => this.#append(events, sign, session));
  }

  async #append(events: readonly AuditAppend[], sign: CheckpointSigner | undefined, session: ClientSession): Promise<ChainHead> {
    let head = await this.#head(session);
    const links: LinkDoc[] = [];
    for (const e of events) {
      const seq = head.seq + 1;
      // Stored in canonical form, so the stored body is exactly what was hashed.
      const body = JSON.stringify(canonicalize(e.resource));
      const hash = linkHashOfCanonical(head.hash, seq, body);
      links.push({ _id: seq, id: e.resource.id ?? '', recorded: e.resource.recorded ?? '', searchable: e.searchable !== false, prevHash: head.hash, hash, body });
      head = { seq, hash };
    }
    if (links.length) await this.#log.insertMany(links, { session, ordered: true });
    const last = await this.#checkpoints.find({}, { session }).sort({ _id: -1 }).limit(1).next();
    const cp = sign?.(head, last ? toCheckpoint(last) : undefined);
    if (cp) await this.#checkpoints.insertOne({ _id: cp.seq, hash: cp.hash, signedAt: cp.signedAt, keyId: cp.keyId, signature: cp.signature }, { session });
    return head;
  }

  async #head(session?: ClientSession): Promise<ChainHead> {
    const last = await this.#log.find({}, { session, projection: { _id: 1, hash: 1 } }).sort({ _id: -1 }).limit(1).next();
    if (last) return { seq: last._id, hash: last.hash };
    const anchor = await this.#purges.find({}, { session }).sort({ _id: -1 }).limit(1).next();
    return anchor ? { seq: anchor._id, hash: anchor.lastHash } : { seq: 0, hash: GENESIS };
  }

  head(): Promise<ChainHead> {
    return this.#head();
  }

  async entriesAfter(seq: number, limit: number): Promise<LogEntry[]> {
    const rows = await this.#log.find({ _id: { $gt: seq } }).sort({ _id: 1 }).limit(limit).toArray();
    return rows.map((r) => ({ seq: r._id, searchable: r.searchable, resource: JSON.parse(r.body) as AuditEvent }));
  }

  async body(id: string): Promise<string | undefined> {
    return (await this.#log.findOne({ id, searchable: true }, { projection: { body: 1 } }))?.body;
  }

  async* searchableIds(throughSeq: number): AsyncIterable<string> {
    for await (const r of this.#log.find({ searchable: true, _id: { $lte: throughSeq } }, { projection: { id: 1 } }).sort({ id: 1 })) yield r.id;
  }

  async* chain(fromSeq = Number.MIN_SAFE_INTEGER, toSeq = Number.MAX_SAFE_INTEGER): AsyncIterable<ChainLink> {
    const rows = this.#log.find({ _id: { $gte: fromSeq, $lte: toSeq } }).sort({ _id: 1 }).batchSize(PAGE);
    for await (const r of rows) yield { seq: r._id, id: r.id, prevHash: r.prevHash, hash: r.hash, body: r.body };
  }

  async* eventsBetween(from: string, to: string): AsyncIterable<AuditEvent> {
    const rows = this.#log.find({ recorded: { $gte: from, $lt: to } }, { projection: { body: 1 } }).sort({ _id: 1 }).batchSize(PAGE);
    for await (const r of rows) yield JSON.parse(r.body) as AuditEvent;
  }

  async openAttempts(): Promise<OpenAttempt[]> {
    const attempts = await this.#log.find({ searchable: false, id: { $regex: '\\.attempt$' } }).sort({ _id: 1 }).toArray();
    if (attempts.length === 0) return [];
    const requestIds = attempts.map((a) => a.id.slice(0, -'.attempt'.length));
    const answered = new Set((await this.#log.find({ id: { $in: requestIds } }, { projection: { id: 1 } }).toArray()).map((r) => r.id));
    return attempts
      .map((a) => ({ requestId: a.id.slice(0, -'.attempt'.length), attempt: JSON.parse(a.body) as AuditEvent }))
      .filter((o) => !answered.has(o.requestId));
  }

  async checkpoints(): Promise<Checkpoint[]> {
    return (await this.#checkpoints.find().sort({ _id: 1 }).toArray()).map(toCheckpoint);
  }

  async purges(): Promise<PurgeRecord[]> {
    return (await this.#purges.find().sort({ _id: 1 }).toArray()).map(({ _id, ...p }) => ({ throughSeq: _id, ...p }));
  }

  async purgeAudit(
    cutoff: string,
    purgeEvent: (count: number, throughSeq: number) => AuditAppend,
    now: string,
    sign?: CheckpointSigner,
  ): Promise<PurgeRecord> {
    return this.#transaction(async (session) => {
      const last = await this.#log.find({ recorded: { $lt: cutoff } }, { session, projection: { _id: 1, hash: 1 } }).sort({ _id: -1 }).limit(1).next();
      const anchor = (await this.#purges.find({}, { session }).sort({ _id: -1 }).limit(1).next())?._id ?? 0;
      const throughSeq = last?._id ?? anchor;
      const count = last ? last._id - anchor : 0;
      const lastHash = last ? last.hash : GENESIS;
      if (last && count > 0) {
        await this.#log.deleteMany({ _id: { $lte: throughSeq } }, { session });
        await this.#purges.insertOne({ _id: throughSeq, lastHash, cutoff, purgedAt: now, count }, { session });
      }
      // The purge itself is the next link of the chain, in the same transaction.
      await this.#append([purgeEvent(count, throughSeq)], sign, session);
      return { throughSeq, lastHash, cutoff, purgedAt: now, count };
    });
  }

  /** A durable transaction, tried anew when another instance appended the same sequence numbers first. */
  #transaction<T>(work: (session: ClientSession) => Promise<T>): Promise<T> {
    return inTransaction(this.#tx, work, (err, attempt) => {
      if (attempt >= APPEND_RETRIES) throw err;
    });
  }
}

function toCheckpoint({ _id, ...c }: CheckpointDoc): Checkpoint {
  return { seq: _id, hash: c.hash, signedAt: c.signedAt, keyId: c.keyId, signature: c.signature };
}

const MARK = 'audit-indexed';

/**
 * The searchable copy of the audit log in the `resources` collection: a body-less document per
 * searchable AuditEvent with its index entries (read back through the log), and the mark of how
 * far the log is indexed, moved in the same transaction as the documents it covers.
 */
export class MongoAuditIndex implements AuditIndex {
  readonly #tx: Transactions;
  readonly #resources: Collection<ResourceDoc>;
  readonly #marks: Collection<MarkDoc>;

  constructor(tx: Transactions, db: Db) {
    this.#tx = tx;
    this.#resources = db.collection<ResourceDoc>(COLLECTIONS.resources);
    this.#marks = db.collection<MarkDoc>(COLLECTIONS.marks);
  }

  async indexedThrough(session?: ClientSession): Promise<number> {
    return (await this.#marks.findOne({ _id: MARK }, { session }))?.seq ?? 0;
  }

  async index(events: readonly IndexedAuditEvent[], throughSeq: number): Promise<void> {
    await inTransaction(
      this.#tx,
      async (session) => {
        // Another indexer (another instance) may have got here first.
        if ((await this.indexedThrough(session)) >= throughSeq) return;
        const docs = events.map((e) => ({
          _id: `AuditEvent/${e.id}`,
          type: 'AuditEvent',
          id: e.id,
          v: 1,
          at: e.recorded,
          deleted: false,
          body: null,
          ...storedIndex(e.index),
        }));
        const known = new Set((await this.#resources.find({ _id: { $in: docs.map((d) => d._id) } }, { session, projection: { _id: 1 } }).toArray()).map((d) => d._id));
        const fresh = docs.filter((d) => !known.has(d._id));
        if (fresh.length) await this.#resources.insertMany(fresh, { session, ordered: true });
        await this.#marks.updateOne({ _id: MARK }, { $set: { seq: throughSeq } }, { session, upsert: true });
      },
      (err, attempt) => {
        if (attempt >= APPEND_RETRIES) throw err;
      },
    );
  }

  async removeBefore(cutoff: string): Promise<number> {
    return (await this.#resources.deleteMany({ type: 'AuditEvent', at: { $lt: cutoff } })).deletedCount;
  }

  async* ids(): AsyncIterable<string> {
    for await (const d of this.#resources.find({ type: 'AuditEvent' }, { projection: { id: 1 } }).sort({ type: 1, deleted: 1, id: 1 })) yield d.id;
  }
}
