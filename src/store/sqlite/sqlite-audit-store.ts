import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AuditEvent } from 'fhir/r4.js';
import type { AuditAppend, AuditStore, ChainLink, Checkpoint, CheckpointSigner, OpenAttempt, PurgeRecord } from '../../audit/audit-store.ts';
import { canonicalize } from '../../audit/canonical-json.ts';
import { GENESIS, linkHashOfCanonical } from '../../audit/chain.ts';
import { IndexWriter } from './index-writer.ts';

/**
 * The AuditStore on the embedded database. Appends run in one IMMEDIATE transaction that reads
 * the chain head inside it, so several processes writing the same file still build one linear
 * chain (SQLite serialises writers); the commit is durable (WAL, synchronous=FULL).
 */
export class SqliteAuditStore implements AuditStore {
  readonly #db: DatabaseSync;
  readonly #transaction: <T>(work: () => T) => T;
  readonly #stmt: Record<string, StatementSync>;
  readonly #index: IndexWriter;

  constructor(db: DatabaseSync, transaction: <T>(work: () => T) => T) {
    this.#db = db;
    this.#index = new IndexWriter(db);
    this.#transaction = transaction;
    this.#stmt = {
      head: db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'),
      anchor: db.prepare('SELECT through_seq AS seq, last_hash AS hash FROM audit_purges ORDER BY through_seq DESC LIMIT 1'),
      insertEvent: db.prepare(
        'INSERT INTO resource_versions (type, id, version, last_updated, deleted, current, body) VALUES (\'AuditEvent\', ?, 1, ?, 0, ?, ?) RETURNING rid',
      ),
      insertIndex: db.prepare(
        'INSERT INTO search_index (rid, type, param, grp, sys, code, text, lo, hi) VALUES (?, \'AuditEvent\', ?, ?, ?, ?, ?, ?, ?)',
      ),
      insertLink: db.prepare('INSERT INTO audit_log (seq, rid, id, recorded, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)'),
      lastCheckpoint: db.prepare('SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1'),
      insertCheckpoint: db.prepare('INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  async appendAudit(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<void> {
    this.#transaction(() => this.#append(events, sign));
  }

  #append(events: readonly AuditAppend[], sign?: CheckpointSigner): void {
    {
      let head = this.#head();
      for (const e of events) {
        const seq = head.seq + 1;
        // Stored in canonical form, so the stored body is exactly what was hashed.
        const body = JSON.stringify(canonicalize(e.resource));
        const hash = linkHashOfCanonical(head.hash, seq, body);
        // An attempt is not current: in the chain, out of reads and searches.
        const searchable = e.searchable !== false;
        const { rid } = this.#stmt.insertEvent.get(e.resource.id ?? '', e.resource.recorded, searchable ? 1 : 0, body) as { rid: number };
        if (searchable) this.#index.insert(rid, 'AuditEvent', e.index);
        this.#stmt.insertLink.run(seq, rid, e.resource.id ?? '', e.resource.recorded, head.hash, hash);
        head = { seq, hash };
      }
      const cp = sign?.(head, this.#lastCheckpoint());
      if (cp) this.#stmt.insertCheckpoint.run(cp.seq, cp.hash, cp.signedAt, cp.keyId, cp.signature);
    }
  }

  * chain(): Iterable<ChainLink> {
    const rows = this.#db
      .prepare(
        `SELECT a.seq, a.id, a.prev_hash, a.hash, r.body FROM audit_log a
         LEFT JOIN resource_versions r ON r.rid = a.rid AND r.type = 'AuditEvent' ORDER BY a.seq`,
      )
      .iterate() as Iterable<{ seq: number; id: string; prev_hash: string; hash: string; body: string | null }>;
    for (const r of rows) yield { seq: r.seq, id: r.id, prevHash: r.prev_hash, hash: r.hash, body: r.body ?? undefined };
  }

  * eventsBetween(from: string, to: string): Iterable<AuditEvent> {
    const rows = this.#db
      .prepare(
        `SELECT r.body FROM audit_log a JOIN resource_versions r ON r.rid = a.rid
         WHERE a.recorded >= ? AND a.recorded < ? ORDER BY a.seq`,
      )
      .iterate(from, to) as Iterable<{ body: string }>;
    for (const r of rows) yield JSON.parse(r.body) as AuditEvent;
  }

  openAttempts(): OpenAttempt[] {
    const rows = this.#db
      .prepare(
        `SELECT a.id, r.body FROM audit_log a JOIN resource_versions r ON r.rid = a.rid
         WHERE a.id LIKE '%.attempt' AND NOT EXISTS (SELECT 1 FROM audit_log f WHERE f.id = substr(a.id, 1, length(a.id) - 8))
         ORDER BY a.seq`,
      )
      .all() as { id: string; body: string }[];
    return rows.map((r) => ({ requestId: r.id.slice(0, -'.attempt'.length), attempt: JSON.parse(r.body) as AuditEvent }));
  }

  unchainedEvents(): number {
    const row = this.#db
      .prepare('SELECT COUNT(*) AS n FROM resource_versions r WHERE r.type = \'AuditEvent\' AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.rid = r.rid)')
      .get() as { n: number };
    return row.n;
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
    let record: PurgeRecord | undefined;
    this.#transaction(() => {
      const last = this.#db.prepare('SELECT seq, hash FROM audit_log WHERE recorded < ? ORDER BY seq DESC LIMIT 1').get(cutoff) as
        | { seq: number; hash: string }
        | undefined;
      const anchor = (this.#stmt.anchor.get() as { seq: number } | undefined)?.seq ?? 0;
      const throughSeq = last?.seq ?? anchor;
      const count = last ? last.seq - anchor : 0;
      if (last && count > 0) {
        this.#db.prepare('INSERT INTO audit_purge_window (through_seq) VALUES (?)').run(throughSeq);
        const victims = 'SELECT rid FROM audit_log WHERE seq <= ?';
        this.#db.prepare(`DELETE FROM search_index WHERE rid IN (${victims})`).run(throughSeq);
        this.#db.prepare(`DELETE FROM resource_versions WHERE rid IN (${victims})`).run(throughSeq);
        this.#db.prepare('DELETE FROM audit_log WHERE seq <= ?').run(throughSeq);
        this.#db.prepare('DELETE FROM audit_purge_window').run();
        this.#db
          .prepare('INSERT INTO audit_purges (through_seq, last_hash, cutoff, purged_at, count) VALUES (?, ?, ?, ?, ?)')
          .run(throughSeq, last.hash, cutoff, now, count);
      }
      record = { throughSeq, lastHash: last?.hash ?? GENESIS, cutoff, purgedAt: now, count };
      // The purge itself is the next link of the chain, in the same transaction.
      this.#append([purgeEvent(count, throughSeq)], sign);
    });
    return record!;
  }

  #head(): { seq: number; hash: string } {
    const head = this.#stmt.head.get() as { seq: number; hash: string } | undefined;
    if (head) return head;
    return (this.#stmt.anchor.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS };
  }

  #lastCheckpoint(): Checkpoint | undefined {
    const row = this.#stmt.lastCheckpoint.get() as CheckpointRow | undefined;
    return row && toCheckpoint(row);
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
