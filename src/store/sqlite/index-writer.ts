import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { IndexEntry } from '../../fhir/query.ts';

const CHUNK = 64;

/**
 * Inserts the index entries of one resource version with multi-row INSERTs: a statement call per
 * row costs more than the row itself. Statements are prepared once per row count.
 */
export class IndexWriter {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<number, StatementSync>();
  readonly #table: string;

  constructor(db: DatabaseSync, table = 'search_index') {
    this.#db = db;
    this.#table = table;
  }

  insert(rid: number, type: string, entries: readonly IndexEntry[]): void {
    for (let start = 0; start < entries.length; start += CHUNK) {
      const chunk = entries.slice(start, start + CHUNK);
      let stmt = this.#statements.get(chunk.length);
      if (!stmt) {
        const rows = Array.from({ length: chunk.length }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
        stmt = this.#db.prepare(`INSERT INTO ${this.#table} (rid, type, param, grp, sys, code, text, lo, hi) VALUES ${rows}`);
        this.#statements.set(chunk.length, stmt);
      }
      const params: (string | number | null)[] = [];
      for (const i of chunk) {
        params.push(rid, type, i.param, i.grp, i.sys ?? null, i.code ?? null, i.text ?? null, i.lo ?? null, i.hi ?? null);
      }
      stmt.run(...params);
    }
  }
}
