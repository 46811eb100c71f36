import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { IndexedAuditEvent, SyncAuditIndex } from '../../audit/audit-store.ts';
import { type IndexedVersion, IndexWriter } from './index-writer.ts';
import { idsInOrder } from './sqlite-audit-log.ts';

/** Moves the mark of how far the log is indexed (one row, made on first use), in `q` (a schema name and a dot, or ''). */
export const setIndexedMark = (q = '') => `INSERT INTO ${q}audit_indexed (one, seq) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET seq = excluded.seq`;

/**
 * The searchable copy of the audit log (audit-index.db, sqlite-schema.ts): a body-less
 * `resource_versions` row per searchable AuditEvent (the body is read from the log) with its
 * search index entries, and the mark of how far the log has been indexed — moved in the same
 * transaction as the rows it covers, so that indexing resumes exactly where it stopped. On the
 * file's own connection (the indexer thread's), or on the resource database's where it is
 * attached as `schema`.
 */
export class SqliteAuditIndex implements SyncAuditIndex {
  readonly #db: DatabaseSync;
  readonly #transaction: <T>(work: () => T) => T;
  readonly #index: IndexWriter;
  readonly #stmt: Record<string, StatementSync>;

  readonly #q: string;

  constructor(db: DatabaseSync, transaction: <T>(work: () => T) => T, schema?: string) {
    const q = schema ? `${schema}.` : '';
    this.#db = db;
    this.#q = q;
    this.#index = new IndexWriter(db, schema);
    this.#transaction = this.#index.guard(transaction);
    this.#stmt = {
      mark: db.prepare(`SELECT seq FROM ${q}audit_indexed WHERE one = 1`),
      setMark: db.prepare(setIndexedMark(q)),
      insert: db.prepare(
        `INSERT INTO ${q}resource_versions (type, id, version, last_updated, deleted, current, body) VALUES ('AuditEvent', ?, 1, ?, 0, 1, NULL) ON CONFLICT DO NOTHING RETURNING rid`,
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
      const versions: IndexedVersion[] = [];
      for (const e of events) {
        const row = this.#stmt.insert.get(e.id, e.recorded) as { rid: number } | undefined;
        if (row) versions.push({ rid: row.rid, type: 'AuditEvent', entries: e.index });
      }
      this.#index.insert(versions);
      this.#stmt.setMark.run(throughSeq);
    });
  }

  removeBefore(cutoff: string): number {
    const q = this.#q;
    const before = Date.parse(cutoff);
    if (Number.isNaN(before)) throw new Error(`removeBefore: "${cutoff}" is not an instant`);
    return this.#transaction(() => {
      // The events recorded before the cutoff, found by their `date` entries (`recorded`, an
      // instant, as its [lo, hi) in epoch ms) through search_range: at every start this runs for
      // the last purge, and its victims are usually none. audit-index.db keeps no index on
      // last_updated (auditIndexSchema).
      const victims = `SELECT rid FROM ${q}search_index WHERE pid = (SELECT pid FROM ${q}search_params WHERE type = 'AuditEvent' AND param = 'date') AND lo < ?`;
      const removed = Number(this.#db.prepare(`DELETE FROM ${q}resource_versions WHERE rid IN (${victims})`).run(before).changes);
      this.#db.prepare(`DELETE FROM ${q}search_index WHERE rid IN (${victims})`).run(before);
      return removed;
    });
  }

  ids(): Iterable<string> {
    return idsInOrder(this.#db.prepare(`SELECT id FROM ${this.#q}resource_versions WHERE type = 'AuditEvent' AND id > ? ORDER BY id LIMIT ?`));
  }
}
