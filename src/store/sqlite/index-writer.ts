import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { IndexEntry } from '../../fhir/query.ts';
import { ID_PARAM } from './sqlite-schema.ts';

const CHUNK = 64;
/** Systems are the client's to choose: the numbers remembered are bounded (the dictionary in the file is not). */
const REMEMBERED_SYSTEMS = 10_000;

/** A resource version's index entries, to insert. */
export interface IndexedVersion {
  readonly rid: number;
  readonly type: string;
  readonly entries: readonly IndexEntry[];
}

/**
 * Inserts index entries with multi-row INSERTs, the entries of every version given in one run of
 * statements: a statement call per row, or per version's few rows, costs more than the rows
 * (8,000 entries of 1,000 Observations: ~45 ms eight rows a statement, ~27 ms sixty-four).
 * Statements are prepared once per row count. Each entry's type and parameter are stored as
 * their number in `search_params`, its system as its number in `search_systems`
 * (sqlite-schema.ts), added there on first use and remembered.
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
  insert(versions: readonly IndexedVersion[]): void {
    const params: (string | number | null)[] = [];
    let rows = 0;
    const flush = () => {
      if (rows > 0) this.#statement(rows).run(...params);
      params.length = 0;
      rows = 0;
    };
    for (const { rid, type, entries } of versions) {
      let n = 0;
      for (const e of entries) {
        if (e.param === ID_PARAM) continue;
        const sid = e.sys === undefined ? null : this.#sid(e.sys);
        params.push(rid, this.#pid(type, e.param), n++, e.grp, sid, e.code ?? null, e.text ?? null, e.lo ?? null, e.hi ?? null);
        if (++rows === CHUNK) flush();
      }
    }
    flush();
  }

  #statement(rows: number): StatementSync {
    let stmt = this.#statements.get(rows);
    if (!stmt) {
      const values = Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
      stmt = this.#db.prepare(`INSERT INTO ${this.#q}search_index (rid, pid, n, grp, sys, code, text, lo, hi) VALUES ${values}`);
      this.#statements.set(rows, stmt);
    }
    return stmt;
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
