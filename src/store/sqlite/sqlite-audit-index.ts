import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { IndexedAuditEvent, SyncAuditIndex } from '../../audit/audit-store.ts';
import { IndexWriter } from './index-writer.ts';
import { idsInOrder } from './sqlite-audit-log.ts';

/** Moves the mark of how far the log is indexed (one row, made on first use). */
export const SET_INDEXED_MARK = 'INSERT INTO audit_indexed (one, seq) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET seq = excluded.seq';

/**
 * The searchable copy of the audit log in the embedded store's database: a body-less
 * `resource_versions` row per searchable AuditEvent (the body is read from the log) with its
 * search index entries, and the mark of how far the log has been indexed — moved in the same
 * transaction as the rows it covers, so that indexing resumes exactly where it stopped.
 */
export class SqliteAuditIndex implements SyncAuditIndex {
  readonly #db: DatabaseSync;
  readonly #transaction: <T>(work: () => T) => T;
  readonly #index: IndexWriter;
  readonly #stmt: Record<string, StatementSync>;

  constructor(db: DatabaseSync, transaction: <T>(work: () => T) => T) {
    this.#db = db;
    this.#transaction = transaction;
    this.#index = new IndexWriter(db);
    this.#stmt = {
      mark: db.prepare('SELECT seq FROM audit_indexed WHERE one = 1'),
      setMark: db.prepare(SET_INDEXED_MARK),
      insert: db.prepare(
        'INSERT INTO resource_versions (type, id, version, last_updated, deleted, current, body) VALUES (\'AuditEvent\', ?, 1, ?, 0, 1, NULL) ON CONFLICT DO NOTHING RETURNING rid',
      ),
    };
  }

  indexedThrough(): number {
    return (this.#stmt.mark.get() as { seq: number } | undefined)?.seq ?? 0;
  }

  index(events: readonly IndexedAuditEvent[], throughSeq: number): void {
    this.#transaction(() => {
      // Another indexer (another process on the same files) may have got here first.
      if (this.indexedThrough() >= throughSeq) return;
      for (const e of events) {
        const row = this.#stmt.insert.get(e.id, e.recorded) as { rid: number } | undefined;
        if (row) this.#index.insert(row.rid, 'AuditEvent', e.index);
      }
      this.#stmt.setMark.run(throughSeq);
    });
  }

  removeBefore(cutoff: string): number {
    return this.#transaction(() => {
      const victims = 'SELECT rid FROM resource_versions WHERE type = \'AuditEvent\' AND last_updated < ?';
      this.#db.prepare(`DELETE FROM search_index WHERE rid IN (${victims})`).run(cutoff);
      return Number(this.#db.prepare(`DELETE FROM resource_versions WHERE rid IN (${victims})`).run(cutoff).changes);
    });
  }

  ids(): Iterable<string> {
    return idsInOrder(this.#db.prepare('SELECT id FROM resource_versions WHERE type = \'AuditEvent\' AND id > ? ORDER BY id LIMIT ?'));
  }
}
