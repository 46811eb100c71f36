import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AuditEvent } from 'fhir/r4.js';
import type {
  AuditAppend,
  AuditStore,
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
import { decodeBody, encodeBody } from '../../audit/log-codec.ts';
import { immediate } from './transaction.ts';
import type { LegacyAudit } from './sqlite-store.ts';

// The audit log's own database file (audit.db): nothing but the chain, its signed heads and its
// purges, so that a batch's commit is one small WAL append and one fsync. Rows are refused any
// UPDATE or DELETE by trigger; the only exception is a retention purge, which opens
// audit_purge_window inside its own transaction.
export const AUDIT_LOG_SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  recorded TEXT NOT NULL,
  searchable INTEGER NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL,
  body BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_log_id ON audit_log (id);
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

/**
 * The audit log on its own SQLite database. Appends run in one IMMEDIATE transaction that reads
 * the chain head inside it, so several processes writing the same file still build one linear
 * chain (SQLite serialises writers); the commit is durable (WAL, synchronous=FULL, set by whoever
 * opens the connection). Bodies are canonical JSON, compressed (log-codec.ts).
 */
export class SqliteAuditLog implements AuditStore {
  readonly #db: DatabaseSync;
  readonly #stmt: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(AUDIT_LOG_SCHEMA);
    this.#stmt = {
      head: db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'),
      anchor: db.prepare('SELECT through_seq AS seq, last_hash AS hash FROM audit_purges ORDER BY through_seq DESC LIMIT 1'),
      insert: db.prepare('INSERT INTO audit_log (seq, id, recorded, searchable, prev_hash, hash, body) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      after: db.prepare('SELECT seq, searchable, body FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?'),
      body: db.prepare('SELECT body FROM audit_log WHERE id = ? AND searchable = 1'),
      lastCheckpoint: db.prepare('SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1'),
      insertCheckpoint: db.prepare('INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  async appendAudit(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<ChainHead> {
    return this.#transaction(() => this.#append(events, sign));
  }

  #append(events: readonly AuditAppend[], sign?: CheckpointSigner): ChainHead {
    let head = this.head();
    for (const e of events) {
      const seq = head.seq + 1;
      // Stored in canonical form, so the stored body is exactly what was hashed.
      const body = JSON.stringify(canonicalize(e.resource));
      const hash = linkHashOfCanonical(head.hash, seq, body);
      const searchable = e.searchable !== false ? 1 : 0;
      this.#stmt.insert.run(seq, e.resource.id ?? '', e.resource.recorded ?? '', searchable, bin(head.hash), bin(hash), encodeBody(body));
      head = { seq, hash };
    }
    const cp = sign?.(head, this.#lastCheckpoint());
    if (cp) this.#stmt.insertCheckpoint.run(cp.seq, cp.hash, cp.signedAt, cp.keyId, cp.signature);
    return head;
  }

  head(): ChainHead {
    const row = this.#stmt.head.get() as { seq: number; hash: Uint8Array } | undefined;
    if (row) return { seq: row.seq, hash: hex(row.hash) };
    return (this.#stmt.anchor.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS };
  }

  entriesAfter(seq: number, limit: number): LogEntry[] {
    const rows = this.#stmt.after.all(seq, limit) as { seq: number; searchable: number; body: Uint8Array }[];
    return rows.map((r) => ({ seq: r.seq, searchable: r.searchable === 1, resource: JSON.parse(decodeBody(r.body)) as AuditEvent }));
  }

  body(id: string): string | undefined {
    const row = this.#stmt.body.get(id) as { body: Uint8Array } | undefined;
    return row && decodeBody(row.body);
  }

  * searchableIds(throughSeq: number): Iterable<string> {
    const rows = this.#db.prepare('SELECT id FROM audit_log WHERE searchable = 1 AND seq <= ? ORDER BY id').iterate(throughSeq) as Iterable<{ id: string }>;
    for (const r of rows) yield r.id;
  }

  * chain(): Iterable<ChainLink> {
    const rows = this.#db.prepare('SELECT seq, id, prev_hash, hash, body FROM audit_log ORDER BY seq').iterate() as Iterable<{
      seq: number;
      id: string;
      prev_hash: Uint8Array;
      hash: Uint8Array;
      body: Uint8Array;
    }>;
    for (const r of rows) {
      let body: string | undefined;
      try {
        body = decodeBody(r.body);
      } catch {
        body = undefined;
      }
      yield { seq: r.seq, id: r.id, prevHash: hex(r.prev_hash), hash: hex(r.hash), body };
    }
  }

  * eventsBetween(from: string, to: string): Iterable<AuditEvent> {
    const rows = this.#db
      .prepare('SELECT body FROM audit_log WHERE recorded >= ? AND recorded < ? ORDER BY seq')
      .iterate(from, to) as Iterable<{ body: Uint8Array }>;
    for (const r of rows) yield JSON.parse(decodeBody(r.body)) as AuditEvent;
  }

  openAttempts(): OpenAttempt[] {
    const rows = this.#db
      .prepare(
        `SELECT a.id, a.body FROM audit_log a
         WHERE a.searchable = 0 AND a.id LIKE '%.attempt' AND NOT EXISTS (SELECT 1 FROM audit_log f WHERE f.id = substr(a.id, 1, length(a.id) - 8))
         ORDER BY a.seq`,
      )
      .all() as { id: string; body: Uint8Array }[];
    return rows.map((r) => ({ requestId: r.id.slice(0, -'.attempt'.length), attempt: JSON.parse(decodeBody(r.body)) as AuditEvent }));
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
        this.#db.prepare('DELETE FROM audit_purge_window').run();
        this.#db
          .prepare('INSERT INTO audit_purges (through_seq, last_hash, cutoff, purged_at, count) VALUES (?, ?, ?, ?, ?)')
          .run(throughSeq, lastHash, cutoff, now, count);
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
      let last = 0;
      for (const r of legacy.rows) {
        this.#stmt.insert.run(r.seq, r.id, r.recorded, r.searchable ? 1 : 0, bin(r.prevHash), bin(r.hash), encodeBody(r.body));
        last = r.seq;
      }
      for (const c of legacy.checkpoints) this.#stmt.insertCheckpoint.run(c.seq, c.hash, c.signed_at, c.key_id, c.signature);
      const purge = this.#db.prepare('INSERT INTO audit_purges (through_seq, last_hash, cutoff, purged_at, count) VALUES (?, ?, ?, ?, ?)');
      for (const p of legacy.purges) purge.run(p.through_seq, p.last_hash, p.cutoff, p.purged_at, p.count);
      return Math.max(last, this.head().seq);
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
