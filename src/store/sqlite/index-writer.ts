import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { IndexEntry } from '../../fhir/query.ts';
import { ID_PARAM } from './sqlite-schema.ts';

const CHUNK = 64;
/** Systems are the client's to choose: the numbers remembered are bounded (the dictionary in the file is not). */
const REMEMBERED_SYSTEMS = 10_000;

/**
 * Inserts the index entries of one resource version with multi-row INSERTs: a statement call per
 * row costs more than the row itself. Statements are prepared once per row count. Each entry's
 * type and parameter are stored as their number in `search_params`, its system as its number in
 * `search_systems` (sqlite-schema.ts), added there on first use and remembered.
 */
export class IndexWriter {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<number, StatementSync>();
  readonly #q: string;
  readonly #lookup: StatementSync;
  readonly #add: StatementSync;
  readonly #lookupSystem: StatementSync;
  readonly #addSystem: StatementSync;
  /** type -> parameter -> its number, for numbers read from the file or added in a transaction not (yet) rolled back */
  #pids = new Map<string, Map<string, number>>();
  /** system -> its number, likewise */
  #sids = new Map<string, number>();

  /** `schema`: the attached file the tables are in, or none for the connection's own. */
  constructor(db: DatabaseSync, schema?: string) {
    this.#db = db;
    this.#q = schema ? `${schema}.` : '';
    this.#lookup = db.prepare(`SELECT pid FROM ${this.#q}search_params WHERE type = ? AND param = ?`);
    this.#add = db.prepare(`INSERT INTO ${this.#q}search_params (type, param) VALUES (?, ?) RETURNING pid`);
    this.#lookupSystem = db.prepare(`SELECT sid FROM ${this.#q}search_systems WHERE sys = ?`);
    this.#addSystem = db.prepare(`INSERT INTO ${this.#q}search_systems (sys) VALUES (?) RETURNING sid`);
  }

  /** Inside the caller's write transaction. `_id`'s entry is not stored (ID_PARAM). */
  insert(rid: number, type: string, all: readonly IndexEntry[]): void {
    const entries = all.filter((i) => i.param !== ID_PARAM);
    for (let start = 0; start < entries.length; start += CHUNK) {
      const chunk = entries.slice(start, start + CHUNK);
      let stmt = this.#statements.get(chunk.length);
      if (!stmt) {
        const rows = Array.from({ length: chunk.length }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
        stmt = this.#db.prepare(`INSERT INTO ${this.#q}search_index (rid, pid, n, grp, sys, code, text, lo, hi) VALUES ${rows}`);
        this.#statements.set(chunk.length, stmt);
      }
      const params: (string | number | null)[] = [];
      chunk.forEach((i, k) => {
        const pid = this.#pid(type, i.param);
        const sid = i.sys === undefined ? null : this.#sid(i.sys);
        params.push(rid, pid, start + k, i.grp, sid, i.code ?? null, i.text ?? null, i.lo ?? null, i.hi ?? null);
      });
      stmt.run(...params);
    }
  }

  /**
   * `transaction` (which runs work in one transaction: commit, or roll back and rethrow), made to
   * forget the remembered numbers when it rolls back: a number added in the rolled-back
   * transaction is gone from the file, and the next parameter (or system) added would be given it
   * — entries written under the remembered one would then be found under that other one. Every
   * transaction that writes through this writer runs through what this returns.
   */
  guard(transaction: <T>(work: () => T) => T): <T>(work: () => T) => T {
    return (work) => {
      try {
        return transaction(work);
      } catch (err) {
        this.#pids = new Map();
        this.#sids = new Map();
        throw err;
      }
    };
  }

  #sid(system: string): number {
    let sid = this.#sids.get(system);
    if (sid === undefined) {
      sid = ((this.#lookupSystem.get(system) ?? this.#addSystem.get(system)) as { sid: number }).sid;
      if (this.#sids.size >= REMEMBERED_SYSTEMS) this.#sids.clear();
      this.#sids.set(system, sid);
    }
    return sid;
  }

  #pid(type: string, param: string): number {
    let ofType = this.#pids.get(type);
    if (!ofType) this.#pids.set(type, (ofType = new Map()));
    let pid = ofType.get(param);
    if (pid === undefined) {
      const row = (this.#lookup.get(type, param) ?? this.#add.get(type, param)) as { pid: number };
      pid = row.pid;
      ofType.set(param, pid);
    }
    return pid;
  }
}
