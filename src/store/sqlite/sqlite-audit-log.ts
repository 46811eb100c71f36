import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AuditEvent } from 'fhir/r4.js';
import type {
  AuditAppend,
  SyncAuditStore,
  ChainHead,
  ChainLink,
  Checkpoint,
  CheckpointSigner,
  LogEntry,
  OpenAttempt,
  PurgeRecord,
} from '../../audit/audit-store.ts';
import { canonicalize } from '../../audit/canonical-json.ts';
import { GENESIS, linkHashOfCanonical } from '../../audit/chain.ts';
import { BLOCK_EVENTS, decodeBody, encodeBlock } from '../../audit/log-codec.ts';
import { immediate } from './transaction.ts';

// The audit log's own database file (audit.db): nothing but the chain, its signed heads and its
// purges, so that a batch's commit is one small WAL append and one fsync. The canonical JSON of
// the events of a batch is stored compressed together, in blocks of up to BLOCK_EVENTS events
// (audit_blocks; each link names its block and its byte range in it): compressing a block costs
// one call where an event apiece cost one each, and what AuditEvents repeat compresses across
// them. Events made ahead of their append (a transaction's entries) come compressed already.
// Rows are refused any UPDATE or DELETE by trigger; the only exception is a retention
// purge, which opens audit_purge_window inside its own transaction.
export const AUDIT_LOG_SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  recorded TEXT NOT NULL,
  searchable INTEGER NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL,
  block INTEGER NOT NULL,
  at INTEGER NOT NULL,
  len INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit_blocks (
  first_seq INTEGER PRIMARY KEY,
  body BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_log_id ON audit_log (id, searchable);
CREATE INDEX IF NOT EXISTS audit_log_recorded ON audit_log (recorded);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  seq INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  signed_at TEXT NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit_purges (
  through_seq INTEGER PRIMARY KEY,
  last_hash TEXT NOT NULL,
  cutoff TEXT NOT NULL,
  purged_at TEXT NOT NULL,
  count INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit_purge_window (through_seq INTEGER NOT NULL) STRICT;

CREATE TRIGGER IF NOT EXISTS audit_log_append_only_u BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_append_only_d BEFORE DELETE ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_window w WHERE OLD.seq <= w.through_seq)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_blocks_append_only_u BEFORE UPDATE ON audit_blocks
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_blocks_append_only_d BEFORE DELETE ON audit_blocks
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_window)
  OR EXISTS (SELECT 1 FROM audit_log l WHERE l.seq >= OLD.first_seq AND l.block = OLD.first_seq)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_append_only_u BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_append_only_d BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_purges_append_only_u BEFORE UPDATE ON audit_purges
BEGIN SELECT RAISE(ABORT, 'audit purges are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_purges_append_only_d BEFORE DELETE ON audit_purges
BEGIN SELECT RAISE(ABORT, 'audit purges are append-only'); END;
`;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bin = (h: string) => Buffer.from(h, 'hex');

interface LinkRow {
  seq: number;
  id: string;
  searchable: number;
  block: number;
  at: number;
  len: number;
}

/** What an older schema held of the audit chain: its links, signed heads and purges (raw rows). */
export interface LegacyAudit {
  readonly rows: Iterable<StoredLink>;
  readonly checkpoints: Record<string, string | number>[];
  readonly purges: Record<string, string | number>[];
}

/** A link to store: its place in the chain and its canonical JSON. */
export interface StoredLink {
  readonly seq: number;
  readonly id: string;
  readonly recorded: string;
  readonly searchable: boolean;
  readonly prevHash: string;
  readonly hash: string;
  readonly canonical: string;
  /** its body already compressed in a block with the links after it (AuditAppend.packed) */
  readonly packed?: AuditAppend['packed'];
}

/**
 * The audit log on its own SQLite database. Appends run in one IMMEDIATE transaction that reads
 * the chain head inside it, so several processes writing the same file still build one linear
 * chain (SQLite serialises writers); the commit is durable (WAL, synchronous=FULL, set by whoever
 * opens the connection). Bodies are canonical JSON, compressed (log-codec.ts).
 */
export class SqliteAuditLog implements SyncAuditStore {
  readonly #db: DatabaseSync;
  readonly #stmt: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(AUDIT_LOG_SCHEMA);
    this.#stmt = {
      head: db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'),
      anchor: db.prepare('SELECT through_seq AS seq, last_hash AS hash FROM audit_purges ORDER BY through_seq DESC LIMIT 1'),
      insert: db.prepare('INSERT INTO audit_log (seq, id, recorded, searchable, prev_hash, hash, block, at, len) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      insertBlock: db.prepare('INSERT INTO audit_blocks (first_seq, body) VALUES (?, ?)'),
      block: db.prepare('SELECT body FROM audit_blocks WHERE first_seq = ?'),
      after: db.prepare('SELECT seq, id, searchable, block, at, len FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?'),
      body: db.prepare('SELECT seq, id, searchable, block, at, len FROM audit_log WHERE id = ? AND searchable = 1'),
      lastCheckpoint: db.prepare('SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1'),
      insertCheckpoint: db.prepare('INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES (?, ?, ?, ?, ?)'),
      insertPurge: db.prepare('INSERT INTO audit_purges (through_seq, last_hash, cutoff, purged_at, count) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  async appendAudit(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<ChainHead> {
    return this.#transaction(() => this.#append(events, sign));
  }

  #append(events: readonly AuditAppend[], sign?: CheckpointSigner): ChainHead {
    let head = this.head();
    const links: StoredLink[] = [];
    for (const e of events) {
      const seq = head.seq + 1;
      // Stored in canonical form, so the stored body is exactly what was hashed.
      const canonical = e.canonical ?? JSON.stringify(canonicalize(e.resource));
      const hash = linkHashOfCanonical(head.hash, seq, canonical);
      links.push({ seq, id: e.resource.id ?? '', recorded: e.resource.recorded ?? '', searchable: e.searchable !== false, prevHash: head.hash, hash, canonical, packed: e.packed });
      head = { seq, hash };
    }
    this.#insertLinks(links);
    const cp = sign?.(head, this.#lastCheckpoint());
    if (cp) this.#stmt.insertCheckpoint.run(cp.seq, cp.hash, cp.signedAt, cp.keyId, cp.signature);
    return head;
  }

  /**
   * Inserts links in blocks of up to BLOCK_EVENTS events, each block's bodies compressed as one:
   * a block compressed ahead (packBodies) is stored as it is when all its links come in a row;
   * the rest are compressed here.
   */
  #insertLinks(links: readonly StoredLink[]): void {
    let start = 0;
    while (start < links.length) {
      const packed = links[start].packed;
      const whole = packed && packed.at === 0 ? links.slice(start, start + packed.block.count) : [];
      if (packed && whole.length === packed.block.count && whole.every((l) => l.packed?.block === packed.block)) {
        this.#insertBlock(whole, packed.block.body, whole.map((l) => l.packed!.len));
        start += whole.length;
        continue;
      }
      let end = start + 1;
      while (end < links.length && end - start < BLOCK_EVENTS && links[end].packed?.at !== 0) end++;
      const chunk = links.slice(start, end);
      const { body, lengths } = encodeBlock(chunk.map((l) => l.canonical));
      this.#insertBlock(chunk, body, lengths);
      start = end;
    }
  }

  /** One block of bodies, named by its first link's sequence number, and its links (the byte length of each body in it). */
  #insertBlock(chunk: readonly StoredLink[], body: Uint8Array, lengths: readonly number[]): void {
    const block = chunk[0].seq;
    this.#stmt.insertBlock.run(block, body);
    let at = 0;
    chunk.forEach((l, i) => {
      this.#stmt.insert.run(l.seq, l.id, l.recorded, l.searchable ? 1 : 0, bin(l.prevHash), bin(l.hash), block, at, lengths[i]);
      at += lengths[i];
    });
  }

  /** Reads bodies by block, decompressing each block once while the links that need it follow one another. */
  #bodies(): (row: LinkRow) => string | undefined {
    let cached: { block: number; text: Buffer | undefined } | undefined;
    return (row) => {
      if (cached?.block !== row.block) {
        const stored = this.#stmt.block.get(row.block) as { body: Uint8Array } | undefined;
        let text: Buffer | undefined;
        try {
          text = stored && decodeBody(stored.body);
        } catch {
          text = undefined;
        }
        cached = { block: row.block, text };
      }
      const text = cached.text;
      if (!text || row.at + row.len > text.length) return undefined;
      return text.subarray(row.at, row.at + row.len).toString('utf8');
    };
  }

  head(): ChainHead {
    const row = this.#stmt.head.get() as { seq: number; hash: Uint8Array } | undefined;
    if (row) return { seq: row.seq, hash: hex(row.hash) };
    return (this.#stmt.anchor.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS };
  }

  entriesAfter(seq: number, limit: number): LogEntry[] {
    const bodyOf = this.#bodies();
    return (this.#stmt.after.all(seq, limit) as unknown as LinkRow[]).map((r) => {
      const body = bodyOf(r);
      if (body === undefined) throw new Error(`audit log seq ${r.seq}: its body cannot be read`);
      return { seq: r.seq, searchable: r.searchable === 1, resource: JSON.parse(body) as AuditEvent };
    });
  }

  body(id: string): string | undefined {
    const row = this.#stmt.body.get(id) as LinkRow | undefined;
    return row && this.#bodies()(row);
  }

  searchableIds(throughSeq: number): Iterable<string> {
    return idsInOrder(this.#db.prepare('SELECT id FROM audit_log WHERE searchable = 1 AND seq <= ? AND id > ? ORDER BY id LIMIT ?'), throughSeq);
  }

  * chain(fromSeq = Number.MIN_SAFE_INTEGER, toSeq = Number.MAX_SAFE_INTEGER): Iterable<ChainLink> {
    const bodyOf = this.#bodies();
    // A page at a time, as arrays (the walk of a long chain is bound by the cost per row); hex by
    // SQLite: strings straight from the row, no buffer to convert per link.
    const select = this.#db.prepare(
      `SELECT seq, id, searchable, lower(hex(prev_hash)), lower(hex(hash)), block, at, len FROM audit_log
       WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ${LINK_PAGE}`,
    );
    select.setReturnArrays(true);
    let from = fromSeq;
    for (;;) {
      const page = select.all(from, toSeq) as unknown as [number, string, number, string, string, number, number, number][];
      for (const [seq, id, searchable, prevHash, hash, block, at, len] of page) {
        yield { seq, id, prevHash, hash, body: bodyOf({ seq, id, searchable, block, at, len }) };
      }
      if (page.length < LINK_PAGE) return;
      from = page[page.length - 1][0] + 1;
    }
  }

  * eventsBetween(from: string, to: string): Iterable<AuditEvent> {
    const bodyOf = this.#bodies();
    const rows = this.#db
      .prepare('SELECT seq, id, searchable, block, at, len FROM audit_log WHERE recorded >= ? AND recorded < ? ORDER BY seq')
      .iterate(from, to) as Iterable<LinkRow>;
    for (const r of rows) {
      const body = bodyOf(r);
      if (body !== undefined) yield JSON.parse(body) as AuditEvent;
    }
  }

  openAttempts(): OpenAttempt[] {
    const rows = this.#db
      .prepare(
        `SELECT a.seq, a.id, a.searchable, a.block, a.at, a.len FROM audit_log a
         WHERE a.searchable = 0 AND a.id LIKE '%.attempt' AND NOT EXISTS (SELECT 1 FROM audit_log f WHERE f.id = substr(a.id, 1, length(a.id) - 8))
         ORDER BY a.seq`,
      )
      .all() as unknown as LinkRow[];
    const bodyOf = this.#bodies();
    return rows.map((r) => ({ requestId: r.id.slice(0, -'.attempt'.length), attempt: JSON.parse(bodyOf(r) ?? '{}') as AuditEvent }));
  }

  checkpoints(): Checkpoint[] {
    return (this.#db.prepare('SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints ORDER BY seq').all() as unknown as CheckpointRow[]).map(
      toCheckpoint,
    );
  }

  purges(): PurgeRecord[] {
    return (
      this.#db.prepare('SELECT through_seq, last_hash, cutoff, purged_at, count FROM audit_purges ORDER BY through_seq').all() as {
        through_seq: number;
        last_hash: string;
        cutoff: string;
        purged_at: string;
        count: number;
      }[]
    ).map((r) => ({ throughSeq: r.through_seq, lastHash: r.last_hash, cutoff: r.cutoff, purgedAt: r.purged_at, count: r.count }));
  }

  async purgeAudit(
    cutoff: string,
    purgeEvent: (count: number, throughSeq: number) => AuditAppend,
    now: string,
    sign?: CheckpointSigner,
  ): Promise<PurgeRecord> {
    return this.#transaction(() => {
      const last = this.#db.prepare('SELECT seq, hash FROM audit_log WHERE recorded < ? ORDER BY seq DESC LIMIT 1').get(cutoff) as
        | { seq: number; hash: Uint8Array }
        | undefined;
      const anchor = (this.#stmt.anchor.get() as { seq: number } | undefined)?.seq ?? 0;
      const throughSeq = last?.seq ?? anchor;
      const count = last ? last.seq - anchor : 0;
      const lastHash = last ? hex(last.hash) : GENESIS;
      if (last && count > 0) {
        this.#db.prepare('INSERT INTO audit_purge_window (through_seq) VALUES (?)').run(throughSeq);
        this.#db.prepare('DELETE FROM audit_log WHERE seq <= ?').run(throughSeq);
        // A block goes with its last link (one that straddles the cutoff stays).
        this.#db.prepare('DELETE FROM audit_blocks WHERE first_seq <= ? AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.seq >= first_seq AND l.block = first_seq)').run(throughSeq);
        this.#db.prepare('DELETE FROM audit_purge_window').run();
        this.#stmt.insertPurge.run(throughSeq, lastHash, cutoff, now, count);
      }
      // The purge itself is the next link of the chain, in the same transaction.
      this.#append([purgeEvent(count, throughSeq)], sign);
      return { throughSeq, lastHash, cutoff, purgedAt: now, count };
    });
  }

  /**
   * Copies a chain kept by an older schema (seq, hashes and canonical bodies as they were, so it
   * verifies as before), with its signed heads and purges, in one transaction. Skipped when the
   * log already holds it (a move interrupted after this step).
   */
  importLegacy(legacy: LegacyAudit): number {
    return this.#transaction(() => {
      if (this.head().seq > 0) return this.head().seq;
      // Block by block as the rows are read: the old chain is never all in memory at once.
      let chunk: StoredLink[] = [];
      for (const r of legacy.rows) {
        chunk.push(r);
        if (chunk.length === BLOCK_EVENTS) {
          this.#insertLinks(chunk);
          chunk = [];
        }
      }
      this.#insertLinks(chunk);
      for (const c of legacy.checkpoints) this.#stmt.insertCheckpoint.run(c.seq, c.hash, c.signed_at, c.key_id, c.signature);
      for (const p of legacy.purges) this.#stmt.insertPurge.run(p.through_seq, p.last_hash, p.cutoff, p.purged_at, p.count);
      return this.head().seq;
    });
  }

  #lastCheckpoint(): Checkpoint | undefined {
    const row = this.#stmt.lastCheckpoint.get() as CheckpointRow | undefined;
    return row && toCheckpoint(row);
  }

  #transaction<T>(work: () => T): T {
    return immediate(this.#db, work);
  }
}

/**
 * Ids in ascending order, read a page at a time by key (memory stays flat however long the
 * trail), each page as arrays (much cheaper per row than an object each). `select` takes the
 * leading parameters, then the id after which to go on, then the page size.
 */
export function* idsInOrder(select: StatementSync, ...leading: (string | number)[]): Iterable<string> {
  select.setReturnArrays(true);
  let after = '';
  for (;;) {
    const page = select.all(...leading, after, ID_PAGE) as unknown as [string][];
    for (const [id] of page) yield id;
    if (page.length < ID_PAGE) return;
    after = page[page.length - 1][0];
  }
}

const ID_PAGE = 10_000;
const LINK_PAGE = 2_000;

interface CheckpointRow {
  seq: number;
  hash: string;
  signed_at: string;
  key_id: string;
  signature: string;
}

function toCheckpoint(r: CheckpointRow): Checkpoint {
  return { seq: r.seq, hash: r.hash, signedAt: r.signed_at, keyId: r.key_id, signature: r.signature };
}
