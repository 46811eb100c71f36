import type { AuditEvent } from 'fhir/r4.js';
import { type ClientSession, type Collection, type Db, MongoBulkWriteError, MongoServerError } from 'mongodb';
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
import { inTransaction, KeyedQueue, lostRace, type Transactions } from './mongo-transaction.ts';

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
  readonly #appends = new KeyedQueue();
  /** the head after this instance's last append (undefined: read it from the log) */
  #known: ChainHead | undefined;
  /** this instance's last signed head (null: none stored; undefined: read it) */
  #lastCp: Checkpoint | null | undefined;

  constructor(tx: Transactions, db: Db) {
    this.#tx = tx;
    this.#log = db.collection<LinkDoc>(COLLECTIONS.auditLog);
    this.#checkpoints = db.collection<CheckpointDoc>(COLLECTIONS.checkpoints);
    this.#purges = db.collection<PurgeDoc>(COLLECTIONS.purges);
  }

  /**
   * One ordered bulk insert of the batch (majority-acknowledged, journaled), then its signed head.
   * The signer runs before anything is written, so a signer that fails leaves nothing. When another
   * instance appended first, the insert stops at the first sequence number it took: what went in
   * before it is in the chain (it followed the head it read), the rest is chained anew after the
   * new head.
   */
  appendAudit(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<ChainHead> {
    // This instance's batches one after another, in the order given (the sink sends the next
    // before the last is durable): they never collide with each other, only with other instances'.
    return this.#appends.run('append', () => this.#append(events, sign));
  }

  async #append(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<ChainHead> {
    let rest = events;
    for (let attempt = 0; ; attempt++) {
      // The head this instance last appended is the head, unless another instance appended since:
      // then the insert collides on its first sequence number, and the head is read anew.
      const from = this.#known ?? (await this.#head());
      const { links, head } = this.#chainAfter(from, rest);
      const cp = sign?.(head, await this.#lastCheckpoint());
      try {
        if (links.length) await this.#log.insertMany(links, { ordered: true });
      } catch (err) {
        this.#known = undefined;
        const inserted = err instanceof MongoBulkWriteError ? err.insertedCount : 0;
        // (a bulk insert that stopped on a taken sequence number is a duplicate key: a lost race)
        if (!lostRace(err) || attempt >= APPEND_RETRIES) throw err;
        rest = rest.slice(inserted);
        continue;
      }
      this.#known = head;
      if (cp) {
        await this.#insertCheckpoint(cp);
        this.#lastCp = cp;
      }
      return head;
    }
  }

  /** The last signed head: this instance's own last one, or (once) the stored one. */
  async #lastCheckpoint(session?: ClientSession): Promise<Checkpoint | undefined> {
    if (this.#lastCp === undefined || session) {
      const last = await this.#checkpoints.find({}, { session }).sort({ _id: -1 }).limit(1).next();
      this.#lastCp = last ? toCheckpoint(last) : null;
    }
    return this.#lastCp ?? undefined;
  }

  /** The events chained after `from`: canonical JSON and hashes. */
  #chainAfter(from: ChainHead, events: readonly AuditAppend[]): { links: LinkDoc[]; head: ChainHead } {
    let head = from;
    const links: LinkDoc[] = [];
    for (const e of events) {
      const seq = head.seq + 1;
      // Stored in canonical form, so the stored body is exactly what was hashed.
      const body = e.canonical ?? JSON.stringify(canonicalize(e.resource));
      const hash = linkHashOfCanonical(head.hash, seq, body);
      links.push({ _id: seq, id: e.resource.id ?? '', recorded: e.resource.recorded ?? '', searchable: e.searchable !== false, prevHash: head.hash, hash, body });
      head = { seq, hash };
    }
    return { links, head };
  }

  async #insertCheckpoint(cp: Checkpoint, session?: ClientSession): Promise<void> {
    try {
      const { seq, ...signed } = cp;
      await this.#checkpoints.insertOne({ _id: seq, ...signed }, { session });
    } catch (err) {
      // Another instance signed the same head first: it is signed.
      if (!(err instanceof MongoServerError && err.code === 11000)) throw err;
    }
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
    const rows = this.#log.find({ searchable: true, _id: { $lte: throughSeq } }, { projection: { id: 1 } }).sort({ id: 1 });
    for await (const r of rows) yield r.id;
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
    return this.#appends.run('append', () => this.#transaction(async (session) => {
      const last = await this.#log
        .find({ recorded: { $lt: cutoff } }, { session, projection: { _id: 1, hash: 1 } })
        .sort({ _id: -1 })
        .limit(1)
        .next();
      const anchor = (await this.#purges.find({}, { session }).sort({ _id: -1 }).limit(1).next())?._id ?? 0;
      const throughSeq = last?._id ?? anchor;
      const count = last ? last._id - anchor : 0;
      const lastHash = last ? last.hash : GENESIS;
      if (last && count > 0) {
        await this.#log.deleteMany({ _id: { $lte: throughSeq } }, { session });
        await this.#purges.insertOne({ _id: throughSeq, lastHash, cutoff, purgedAt: now, count }, { session });
      }
      // The purge itself is the next link of the chain, in the same transaction.
      this.#known = undefined;
      const { links, head } = this.#chainAfter(await this.#head(session), [purgeEvent(count, throughSeq)]);
      await this.#log.insertMany(links, { session, ordered: true });
      const cp = sign?.(head, await this.#lastCheckpoint(session));
      if (cp) await this.#insertCheckpoint(cp, session);
      this.#lastCp = undefined;
      return { throughSeq, lastHash, cutoff, purgedAt: now, count };
    }));
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
 * The searchable copy of the audit log in the `audit_index` collection: a body-less document per
 * searchable AuditEvent with its index entries (read back through the log), and the mark of how
 * far the log is indexed, moved in the same transaction as the documents it covers.
 */
export class MongoAuditIndex implements AuditIndex {
  readonly #resources: Collection<ResourceDoc>;
  readonly #marks: Collection<MarkDoc>;

  constructor(db: Db) {
    this.#resources = db.collection<ResourceDoc>(COLLECTIONS.auditIndex);
    this.#marks = db.collection<MarkDoc>(COLLECTIONS.marks);
  }

  async indexedThrough(): Promise<number> {
    return (await this.#marks.findOne({ _id: MARK }))?.seq ?? 0;
  }

  /**
   * Idempotent without a transaction: the documents are named by their events (one already there
   * is left as it is), and the mark only moves forward, after them. Indexing that stops between
   * the two resumes from the old mark and finds its documents in place; two instances indexing
   * the same stretch insert each document once.
   */
  async index(events: readonly IndexedAuditEvent[], throughSeq: number): Promise<void> {
    if ((await this.indexedThrough()) >= throughSeq) return;
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
    if (docs.length) {
      try {
        await this.#resources.insertMany(docs, { ordered: false });
      } catch (err) {
        // Documents another pass inserted first: each of ours that failed did so on its own name.
        const errors = err instanceof MongoBulkWriteError ? [err.writeErrors].flat() : [];
        if (errors.length === 0 || errors.some((e) => e.code !== 11000)) throw err;
      }
    }
    try {
      // Forward only: a mark already at or past `throughSeq` makes the upsert collide on its name.
      await this.#marks.updateOne({ _id: MARK, seq: { $lt: throughSeq } }, { $set: { seq: throughSeq } }, { upsert: true });
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === 11000)) throw err;
    }
  }

  async removeBefore(cutoff: string): Promise<number> {
    return (await this.#resources.deleteMany({ type: 'AuditEvent', at: { $lt: cutoff } })).deletedCount;
  }

  async* ids(): AsyncIterable<string> {
    for await (const d of this.#resources.find({ type: 'AuditEvent' }, { projection: { id: 1 } }).sort({ type: 1, deleted: 1, id: 1 })) yield d.id;
  }
}
