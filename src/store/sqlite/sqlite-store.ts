import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { parseStored } from '../../fhir/json.ts';
import type { SearchQuery, StoredVersion } from '../../fhir/query.ts';
import {
  atMostOne,
  changed,
  type CommitOp,
  type HistoryPage,
  type HistoryQuery,
  type Prepare,
  type ResourceStore,
  type SearchPage,
  refuseAudit,
  updateOutcome,
  versionConflict,
  type WriteResult,
  type WrittenVersion,
  writtenByRequest,
} from '../resource-store.ts';
import { KEK_ID_PATH } from '../../crypto/envelope.ts';
import { type IndexedVersion, IndexWriter } from './index-writer.ts';
import { setIndexedMark, SqliteAuditIndex } from './sqlite-audit-index.ts';
import type { LegacyAudit, StoredLink } from './sqlite-audit-log.ts';
import { countSql, type SqlValue, searchSql, tablesOf } from './sqlite-query.ts';
import { StoreThread, THREAD_NAMES } from './thread.ts';
import { immediate } from './transaction.ts';
import { type Fdatasync, WalSync } from './wal-sync.ts';
import type { CheckpointWorkerData } from './checkpoint-worker.ts';
import {
  AUDIT_INDEX_FILE,
  AUDIT_INDEX_MOVED,
  AUDIT_INDEX_SCHEMA,
  AUDIT_INDEX_TABLES,
  auditIndexSchema,
  convertSearchIndex,
  LEGACY_AUDIT_TABLES,
  LEGACY_AUDIT_TRIGGERS,
  MIGRATE_TO_2,
  SCHEMA,
  SCHEMA_VERSION,
  SEARCH_INDEXES,
  versionsSchema,
  WRITE_ID_INDEX,
} from './sqlite-schema.ts';

// Write transactions lock one file each: clinical writes hearth.db, indexing the attached copy
// (whose own writer, the indexer thread, must never wait for a clinical commit, nor hold one up).
const versionsLock = (schema: string) => `UPDATE ${schema}.resource_versions SET rid = rid WHERE 0`;
const RESOURCES_LOCK = versionsLock('main');
const AUDIT_INDEX_LOCK = `UPDATE ${AUDIT_INDEX_SCHEMA}.audit_indexed SET seq = seq WHERE 0`;

// The envelope format is the encrypting decorator's; the adapter only needs where its key id sits.
const KEK_JSON_PATH = `$.${KEK_ID_PATH.join('.')}`;

interface VersionRow {
  rid: number;
  type: string;
  id: string;
  version: number;
  last_updated: string;
  deleted: number;
  body: string | null;
}

export interface SqliteStoreOptions {
  /** Directory for the database file, or ':memory:' for tests that need no file. */
  readonly dataDir: string;
  readonly clock?: () => Date;
  /** The canonical JSON of a searchable AuditEvent, from the audit log (its rows here have no body). */
  readonly auditBody?: (id: string) => string | undefined;
  /** How the write-ahead log is flushed to disk (fs.fdatasync; tests hold or fail it). */
  readonly fdatasync?: Fdatasync;
  /** Checkpoint on a thread of its own (checkpoint-worker.ts) rather than in the COMMITs (the server). */
  readonly checkpointThread?: boolean;
}

/** How often the checkpointer thread checkpoints hearth.db, in ms. */
const CHECKPOINT_MS = 100;
/**
 * With a checkpointer thread: the log's size, in pages, past which a COMMIT checkpoints by itself
 * after all (SQLite's default is 1,000, ~4 MiB): what the thread has not copied yet, and then the
 * log starts over (checkpoint-worker.ts). ~32 MiB of log at most.
 */
const FALLBACK_CHECKPOINT = 8000;

interface LegacyRow {
  seq: number;
  id: string;
  recorded: string;
  current: number;
  prev_hash: string;
  hash: string;
  body: string;
}

/**
 * The embedded ResourceStore on node:sqlite: one file under the data directory, WAL journal.
 * A write's promise resolves once its commit is on disk, and a read's once every commit it could
 * have seen is: the commits are flushed in groups off the request thread (WalSync; the schema's
 * set-up and key rotation's batches flush at once, on the calling thread), and in a server the
 * log is checkpointed by a thread of its own (checkpoint-worker.ts). AuditEvents are read
 * and searched in the audit log's searchable copy, another file attached to the same connection
 * (sqlite-schema.ts); they are never written here.
 */
export class SqliteStore implements ResourceStore {
  readonly #db: DatabaseSync;
  readonly #clock: () => Date;
  readonly #stmt: Record<string, StatementSync>;
  readonly #index: IndexWriter;
  /** runs work in a write transaction on hearth.db, guarded by the IndexWriter */
  readonly #transaction: <T>(work: () => T) => T;
  readonly #auditBody: (id: string) => string | undefined;
  /** the database file, or ':memory:' */
  readonly path: string;
  /** hearth.db's write-ahead log, flushed behind the commits; none in memory */
  readonly #wal: WalSync | undefined;
  /** a server's checkpointer thread (checkpoint-worker.ts) */
  readonly #checkpointer: StoreThread | undefined;

  constructor(options: SqliteStoreOptions) {
    this.#clock = options.clock ?? (() => new Date());
    this.#auditBody = options.auditBody ?? (() => undefined);
    let path = ':memory:';
    if (options.dataDir !== ':memory:') {
      mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
      path = join(options.dataDir, 'hearth.db');
    }
    this.path = path;
    this.#db = new DatabaseSync(path);
    // (in memory, the attached copy is this connection's own)
    this.#db.prepare(`ATTACH DATABASE ? AS ${AUDIT_INDEX_SCHEMA}`).run(path === ':memory:' ? ':memory:' : join(options.dataDir, AUDIT_INDEX_FILE));
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
    // 32 MiB of page cache per connection (SQLite's default is 2 MiB): the index B-trees of a
    // long audit trail outgrow the default, and every insert then reads its pages anew.
    this.#db.exec('PRAGMA cache_size = -32768');
    // Statement journals in memory: a multi-row index INSERT touches more pages than SQLite keeps
    // in memory by default (64 KiB), and spilled them to a temporary file page by page.
    this.#db.exec('PRAGMA temp_store = MEMORY');
    // The log is the record of AuditEvents; their searchable copy is rebuilt from it (the indexer's is NORMAL too).
    this.#db.exec(`PRAGMA ${AUDIT_INDEX_SCHEMA}.journal_mode = WAL; PRAGMA ${AUDIT_INDEX_SCHEMA}.synchronous = NORMAL;`);
    const { user_version } = this.#db.prepare('PRAGMA user_version').get() as { user_version: number };
    if (user_version > SCHEMA_VERSION) {
      throw new Error(`database schema version ${user_version} is newer than this Hearth (${SCHEMA_VERSION})`);
    }
    // Version 5's search index layout, in each file that still has version 4's.
    this.#db.exec(versionsSchema());
    this.#db.exec(versionsSchema(AUDIT_INDEX_SCHEMA));
    convertSearchIndex(this.#db, (work) => immediate(this.#db, work, RESOURCES_LOCK));
    convertSearchIndex(this.#db, (work) => immediate(this.#db, work, versionsLock(AUDIT_INDEX_SCHEMA)), AUDIT_INDEX_SCHEMA);
    this.#db.exec(auditIndexSchema(AUDIT_INDEX_SCHEMA));
    this.#db.exec(SCHEMA);
    const columns = this.#db.prepare('PRAGMA table_info(resource_versions)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'write_id')) this.#db.exec(MIGRATE_TO_2);
    this.#db.exec(WRITE_ID_INDEX);
    // (before the move below, which runs in a guarded transaction)
    this.#index = new IndexWriter(this.#db);
    this.#transaction = this.#index.guard((work) => {
      const result = immediate(this.#db, work, RESOURCES_LOCK);
      this.#wal?.committed();
      return result;
    });
    // Versions 3 and 4 are reached once the legacy audit tables are moved out (dropLegacyAudit).
    if (!this.#hasLegacyAudit()) {
      if (user_version < AUDIT_INDEX_MOVED) this.#moveAuditIndex();
      else if (user_version < SCHEMA_VERSION) this.#db.exec(`PRAGMA main.user_version = ${SCHEMA_VERSION}`);
    }
    const select = (table: string, which: string) =>
      this.#db.prepare(`SELECT rid, type, id, version, last_updated, deleted, body FROM ${table} WHERE type = ? AND id = ? AND ${which}`);
    const audit = tablesOf('AuditEvent').versions;
    this.#stmt = {
      current: select('resource_versions', 'current = 1'),
      version: select('resource_versions', 'version = ?'),
      auditCurrent: select(audit, 'current = 1'),
      auditVersion: select(audit, 'version = ?'),
      retire: this.#db.prepare('UPDATE resource_versions SET current = 0 WHERE rid = ?'),
      unindex: this.#db.prepare('DELETE FROM search_index WHERE rid = ?'),
      insert: this.#db.prepare(
        'INSERT INTO resource_versions (type, id, version, last_updated, deleted, current, body, write_id) VALUES (?, ?, ?, ?, ?, 1, ?, ?) RETURNING rid',
      ),
      // (the id and every id after it up to `<id>/`: `<id>.<index>` of its entries among them)
      writtenBy: this.#db.prepare('SELECT type, id, version, deleted, write_id FROM resource_versions WHERE write_id >= ? AND write_id < ? ORDER BY rid'),
    };
    if (path !== ':memory:') {
      // What the set-up above committed is on disk (synchronous=FULL); from here on a COMMIT
      // returns without an fsync and WalSync flushes behind it.
      this.#db.exec('PRAGMA main.synchronous = NORMAL');
      this.#wal = new WalSync(`${path}-wal`, options.fdatasync);
      if (options.checkpointThread) {
        this.#db.exec(`PRAGMA main.wal_autocheckpoint = ${FALLBACK_CHECKPOINT}`);
        // Should it stop, this connection checkpoints past FALLBACK_CHECKPOINT meanwhile.
        const data: CheckpointWorkerData = { path, everyMs: CHECKPOINT_MS };
        this.#checkpointer = new StoreThread(
          new URL('./checkpoint-worker.ts', import.meta.url),
          { workerData: data, name: THREAD_NAMES.checkpointer },
          'the checkpointer thread of hearth.db',
        );
      }
    }
  }

  /** Whether any resource (other than AuditEvents) is stored: decides whether a new keyring may be made. */
  hasResources(): boolean {
    // (readiness asks this: a store whose flush failed is not ready)
    this.#wal?.check();
    return this.#db.prepare('SELECT 1 FROM resource_versions WHERE type <> \'AuditEvent\' LIMIT 1').get() !== undefined;
  }

  /** Stored versions (not AuditEvents) whose envelope's KEK is `kekId`. */
  countKeyUse(kekId: string): number {
    const row = this.#db
      .prepare(`SELECT COUNT(*) AS n FROM resource_versions WHERE type <> 'AuditEvent' AND json_extract(body, '${KEK_JSON_PATH}') = ?`)
      .get(kekId) as { n: number };
    return row.n;
  }

  /**
   * Rewrites, in batches of short transactions, the body of every stored version whose envelope
   * is not under `currentKek` (key rotation's re-wrap: no new version, same data ciphertext).
   * Resumable: what is done is no longer selected. Returns how many rows were rewritten.
   */
  rewrapAll(
    currentKek: string,
    rewrap: (type: string, id: string, version: number, body: Record<string, unknown>) => Record<string, unknown> | undefined,
    progress: (done: number, total: number) => void,
    batch = 200,
  ): number {
    const pending = `type <> 'AuditEvent' AND body IS NOT NULL AND json_extract(body, '${KEK_JSON_PATH}') <> ?`;
    const total = (this.#db.prepare(`SELECT COUNT(*) AS n FROM resource_versions WHERE ${pending}`).get(currentKek) as { n: number }).n;
    const select = this.#db.prepare(`SELECT rid, type, id, version, body FROM resource_versions WHERE ${pending} AND rid > ? ORDER BY rid LIMIT ?`);
    const write = this.#db.prepare('UPDATE resource_versions SET body = ? WHERE rid = ? AND body = ?');
    let done = 0;
    let after = 0;
    progress(0, total);
    for (;;) {
      const rows = select.all(currentKek, after, batch) as { rid: number; type: string; id: string; version: number; body: string }[];
      if (rows.length === 0) break;
      this.#transaction(() => {
        for (const r of rows) {
          const next = rewrap(r.type, r.id, r.version, parseStored(r.body) as Record<string, unknown>);
          // Compare-and-set on the old body: a concurrent writer never loses its row.
          if (next) done += Number(write.run(JSON.stringify(next), r.rid, r.body).changes);
        }
      });
      this.#wal?.flushNow();
      after = rows[rows.length - 1].rid;
      progress(done, total);
    }
    return done;
  }

  /** The searchable copy of the audit log, attached to this connection. */
  auditIndex(): SqliteAuditIndex {
    return new SqliteAuditIndex(this.#db, (work) => immediate(this.#db, work, AUDIT_INDEX_LOCK), AUDIT_INDEX_SCHEMA);
  }

  /**
   * To version 4: the AuditEvent rows, their index entries and the mark move to the attached
   * audit index (`indexedThrough`, for a chain just moved out of version 2, is its mark). One
   * transaction over both files; should a crash commit one file and not the other, the next start
   * moves them again (what the copy holds is replaced), or — the rows gone from both — the indexer
   * rebuilds the copy from the log, which is the record.
   */
  #moveAuditIndex(indexedThrough?: number): void {
    const a = AUDIT_INDEX_SCHEMA;
    const hasMark = this.#db.prepare('SELECT 1 FROM main.sqlite_master WHERE type = \'table\' AND name = \'audit_indexed\'').get() !== undefined;
    const moving = (this.#db.prepare('SELECT COUNT(*) AS n FROM main.resource_versions WHERE type = \'AuditEvent\'').get() as { n: number }).n;
    // (an operator waiting on a start that takes minutes is told why)
    if (moving > 0) process.stderr.write(`hearth: moving the search index of ${moving} AuditEvents from hearth.db to ${AUDIT_INDEX_FILE} (once)\n`);
    this.#transaction(() => {
      for (const t of AUDIT_INDEX_TABLES) this.#db.exec(`DELETE FROM ${a}.${t}`);
      // Millions of index entries may move: copied and deleted without their indexes kept row by
      // row, which are built again afterwards by sorting (100,000 events: 22.4 s -> 9.9 s).
      for (const schema of ['main', a]) for (const i of SEARCH_INDEXES) this.#db.exec(`DROP INDEX IF EXISTS ${schema}.${i}`);
      const versions = 'rid, type, id, version, last_updated, deleted, current, body';
      this.#db.exec(`INSERT INTO ${a}.resource_versions (${versions}) SELECT ${versions} FROM main.resource_versions WHERE type = 'AuditEvent'`);
      // (each file numbers its parameters and systems in dictionaries of its own)
      const auditParams = 'SELECT pid FROM main.search_params WHERE type = \'AuditEvent\'';
      this.#db.exec(`INSERT OR IGNORE INTO ${a}.search_params (type, param) SELECT type, param FROM main.search_params WHERE type = 'AuditEvent'`);
      this.#db.exec(`INSERT OR IGNORE INTO ${a}.search_systems (sys) SELECT sys FROM main.search_systems WHERE sid IN (SELECT sys FROM main.search_index WHERE pid IN (${auditParams})) ORDER BY sid`);
      this.#db.exec(`INSERT INTO ${a}.search_index (rid, pid, n, grp, sys, code, text, lo, hi)
        SELECT i.rid, ap.pid, i.n, i.grp, ay.sid, i.code, i.text, i.lo, i.hi
        FROM main.search_index i JOIN main.search_params mp ON mp.pid = i.pid JOIN ${a}.search_params ap ON ap.type = mp.type AND ap.param = mp.param
        LEFT JOIN main.search_systems my ON my.sid = i.sys LEFT JOIN ${a}.search_systems ay ON ay.sys = my.sys
        WHERE i.pid IN (${auditParams})`);
      if (indexedThrough !== undefined) this.#db.prepare(setIndexedMark(`${a}.`)).run(indexedThrough);
      else if (hasMark) this.#db.exec(`INSERT INTO ${a}.audit_indexed (one, seq) SELECT one, seq FROM main.audit_indexed`);
      this.#db.exec(`DELETE FROM main.search_index WHERE pid IN (${auditParams})`);
      this.#db.exec('DELETE FROM main.resource_versions WHERE type = \'AuditEvent\'');
      this.#db.exec('DROP TABLE IF EXISTS main.audit_indexed');
      this.#db.exec(SCHEMA);
      this.#db.exec(auditIndexSchema(a));
      this.#db.exec(`PRAGMA main.user_version = ${SCHEMA_VERSION}`);
    });
  }

  #hasLegacyAudit(): boolean {
    return this.#db.prepare('SELECT 1 FROM sqlite_master WHERE type = \'table\' AND name = \'audit_log\'').get() !== undefined;
  }

  /** The audit chain a version-2 database holds (none once moved), with its signed heads and purges. */
  legacyAudit(): LegacyAudit | undefined {
    if (!this.#hasLegacyAudit()) return undefined;
    const db = this.#db;
    function* rows(): Iterable<StoredLink> {
      const it = db
        .prepare(
          `SELECT a.seq, a.id, a.recorded, r.current, a.prev_hash, a.hash, r.body FROM audit_log a
           JOIN resource_versions r ON r.rid = a.rid ORDER BY a.seq`,
        )
        .iterate() as Iterable<LegacyRow>;
      for (const r of it) {
        const { prev_hash: prevHash, current, body: canonical, ...rest } = r;
        yield { ...rest, prevHash, canonical, searchable: current === 1 };
      }
    }
    return {
      rows: rows(),
      checkpoints: db.prepare('SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints ORDER BY seq').all() as Record<string, string | number>[],
      purges: db.prepare('SELECT through_seq, last_hash, cutoff, purged_at, count FROM audit_purges ORDER BY through_seq').all() as Record<string, string | number>[],
    };
  }

  /**
   * Once the chain is safely in audit.db: drops the legacy audit tables and triggers, keeps the
   * searchable AuditEvent rows as the index (without their bodies, which the log now serves),
   * removes the write-ahead attempts (never searchable), moves the index to its own file and
   * marks the log indexed through `seq`.
   */
  dropLegacyAudit(indexedThrough: number): void {
    this.#transaction(() => {
      for (const t of LEGACY_AUDIT_TRIGGERS) this.#db.exec(`DROP TRIGGER IF EXISTS ${t}`);
      this.#db.exec('DELETE FROM resource_versions WHERE type = \'AuditEvent\' AND current = 0');
      this.#db.exec('UPDATE resource_versions SET body = NULL WHERE type = \'AuditEvent\'');
      for (const t of LEGACY_AUDIT_TABLES) this.#db.exec(`DROP TABLE IF EXISTS ${t}`);
    });
    this.#moveAuditIndex(indexedThrough);
    this.#wal?.flushNow();
  }

  async create(type: string, prepare: Prepare, ifNoneExist?: SearchQuery): Promise<WriteResult> {
    refuseAudit(type);
    return this.#written(() => {
      if (ifNoneExist) {
        const existing = this.#matchAtMostOne(ifNoneExist, 'If-None-Exist');
        if (existing) return { outcome: 'exists', version: existing };
      }
      return { outcome: 'created', version: this.#write(type, randomUUID(), undefined, prepare) };
    });
  }

  async update(
    type: string,
    target: { readonly id: string } | { readonly query: SearchQuery },
    prepare: Prepare,
    options: { readonly ifMatch?: number; readonly allowCreate: boolean },
  ): Promise<WriteResult> {
    refuseAudit(type);
    return this.#written(() => {
      let id: string;
      let current: VersionRow | undefined;
      if ('query' in target) {
        const match = this.#matchAtMostOne(target.query, 'conditional update');
        // See: https://hl7.org/fhir/R4/http.html#cond-update (no match: the server performs a create)
        if (!match) return { outcome: 'created', version: this.#write(type, randomUUID(), undefined, prepare) };
        id = match.id;
        current = this.#stmt.current.get(type, id) as unknown as VersionRow;
      } else {
        id = target.id;
        current = this.#stmt.current.get(type, id) as unknown as VersionRow | undefined;
      }
      const outcome = updateOutcome(type, id, current && { versionId: current.version, deleted: current.deleted === 1 }, options);
      return { outcome, version: this.#write(type, id, current, prepare) };
    });
  }

  async delete(type: string, id: string, ifMatch?: number, writeId?: string): Promise<StoredVersion | undefined> {
    refuseAudit(type);
    return this.#written(() => {
      const current = this.#stmt.current.get(type, id) as unknown as VersionRow | undefined;
      if (ifMatch !== undefined && current?.version !== ifMatch) throw versionConflict(type, id, ifMatch);
      if (!current || current.deleted) return undefined;
      const lastUpdated = this.#clock().toISOString();
      this.#put(current, { type, id, expect: current.version, versionId: current.version + 1, lastUpdated, writeId });
      return { type, id, versionId: current.version + 1, lastUpdated, deleted: true };
    });
  }

  async commit(ops: readonly CommitOp[]): Promise<void> {
    for (const op of ops) refuseAudit(op.type);
    await this.#written(() => {
      // The versions' index entries are inserted together (IndexWriter), before any search that
      // must see them (a conditional create's absence) and at the end.
      const batch: IndexedVersion[] = [];
      for (const op of ops) {
        const current = this.#stmt.current.get(op.type, op.id) as unknown as VersionRow | undefined;
        if (current?.version !== op.expect) throw changed(op.type, op.id);
        if (op.absent) this.#index.insert(batch.splice(0));
        if (op.absent && this.#search({ ...op.absent, count: 1, cursor: undefined, total: 'none' }).matches.length > 0) throw changed(op.type, op.id);
        this.#put(current, op, batch);
      }
      this.#index.insert(batch);
    });
  }

  async writtenBy(writeId: string): Promise<WrittenVersion[]> {
    const rows = this.#stmt.writtenBy.all(writeId, `${writeId}/`) as { type: string; id: string; version: number; deleted: number; write_id: string }[];
    const written = rows
      .filter((r) => writtenByRequest(r.write_id, writeId))
      .map((r) => ({ type: r.type, id: r.id, versionId: r.version, deleted: r.deleted === 1, writeId: r.write_id }));
    return this.#seen(written);
  }

  async read(type: string, id: string): Promise<StoredVersion | undefined> {
    const stmt = type === 'AuditEvent' ? this.#stmt.auditCurrent : this.#stmt.current;
    return this.#seen(this.#toVersion(stmt.get(type, id) as unknown as VersionRow | undefined));
  }

  async vread(type: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    const stmt = type === 'AuditEvent' ? this.#stmt.auditVersion : this.#stmt.version;
    return this.#seen(this.#toVersion(stmt.get(type, id, versionId) as unknown as VersionRow | undefined));
  }

  /**
   * A row as a version. An AuditEvent's body is the audit log's; one the log no longer has (a
   * retention purge between the log and its index) is gone.
   */
  #toVersion(row: VersionRow | undefined): StoredVersion | undefined {
    if (!row) return undefined;
    if (row.type !== 'AuditEvent' || row.body !== null) return toVersion(row);
    const body = this.#auditBody(row.id);
    return body === undefined ? undefined : toVersion({ ...row, body });
  }

  async history(query: HistoryQuery): Promise<HistoryPage> {
    const { versions } = tablesOf(query.type);
    const where = ['type = ?'];
    const params: SqlValue[] = [query.type];
    if (query.id !== undefined) {
      where.push('id = ?');
      params.push(query.id);
    }
    if (query.since !== undefined) {
      where.push('last_updated >= ?');
      params.push(query.since);
    }
    const total = (
      this.#db.prepare(`SELECT COUNT(*) AS n FROM ${versions} WHERE ${where.join(' AND ')}`).get(...params) as {
        n: number;
      }
    ).n;
    if (query.after !== undefined) {
      where.push('rid < ?');
      params.push(query.after);
    }
    // Newest first; rid grows with every write, so it orders versions even within one millisecond.
    const rows = this.#db
      .prepare(
        `SELECT rid, type, id, version, last_updated, deleted, body FROM ${versions} WHERE ${where.join(' AND ')} ORDER BY rid DESC LIMIT ?`,
      )
      .all(...params, query.count + 1) as unknown as VersionRow[];
    const page = rows.slice(0, query.count);
    return this.#seen({
      versions: page.map((r) => this.#toVersion(r)).filter((v) => v !== undefined),
      next: rows.length > query.count ? page[page.length - 1].rid : undefined,
      total,
    });
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    return this.#seen(this.#search(query));
  }

  #search(query: SearchQuery): SearchPage {
    const sql = searchSql(query);
    const rows = this.#db.prepare(sql.text).all(...sql.params) as unknown as (VersionRow & Record<string, SqlValue>)[];
    const more = rows.length > query.count;
    let page = rows
      .slice(0, query.count)
      .map((row) => ({ row, version: this.#toVersion(row) }))
      .filter((m): m is { row: typeof m.row; version: StoredVersion } => m.version !== undefined);
    const backwards = query.cursor?.direction === 'previous';
    if (backwards) page = page.reverse();
    let total: number | undefined;
    if (query.total !== 'none') {
      const c = countSql(query);
      total = (this.#db.prepare(c.text).get(...c.params) as { n: number }).n;
    }
    return {
      matches: page.map((m) => m.version),
      keys: page.map(({ row }) => query.sort.map((_, n) => row[`k${n}`] ?? null)),
      hasNext: backwards ? true : more,
      hasPrevious: backwards ? more : query.cursor !== undefined,
      total,
    };
  }

  async close(): Promise<void> {
    await this.#checkpointer?.close();
    // (a failed flush was answered where it happened)
    await this.#wal?.durable().catch(() => undefined);
    this.#wal?.close();
    if (this.#db.isOpen) this.#db.close();
  }

  /**
   * `work` in a write transaction; its result once the commit is on disk. None after a failed
   * flush. A refusal (a version conflict, a match already there) may rest on a commit not yet on
   * disk: it waits for that too.
   */
  async #written<T>(work: () => T): Promise<T> {
    this.#wal?.check();
    let result: T;
    try {
      result = this.#transaction(work);
    } catch (err) {
      await this.#wal?.durable().catch(() => undefined);
      throw err;
    }
    await this.#wal?.durable();
    return result;
  }

  /** A read's result once every commit it could have seen is on disk (none is pending, mostly). */
  async #seen<T>(result: T): Promise<T> {
    await this.#wal?.durable();
    return result;
  }

  #matchAtMostOne(query: SearchQuery, what: string): StoredVersion | undefined {
    return atMostOne(this.#search({ ...query, count: 2, cursor: undefined, total: 'none' }), query, what);
  }

  #write(type: string, id: string, current: VersionRow | undefined, prepare: Prepare): StoredVersion {
    const versionId = (current?.version ?? 0) + 1;
    const lastUpdated = this.#clock().toISOString();
    const { resource, index, writeId } = prepare({ id, versionId, lastUpdated });
    this.#put(current, { type, id, expect: current?.version, versionId, lastUpdated, content: { resource, index }, writeId });
    return { type, id, versionId, lastUpdated, deleted: false, resource };
  }

  /**
   * Makes `op` the current version: the one it replaces retired and unindexed, the new one inserted
   * with its index entries (a tombstone has none), or with them added to `batch` for the caller to
   * insert. Inside the caller's transaction, checks done.
   */
  #put(current: VersionRow | undefined, op: CommitOp, batch?: IndexedVersion[]): void {
    if (current) {
      // (a version of this transaction still in the batch: its entries go in first, to go out)
      if (batch && batch.length > 0 && current.rid >= batch[0].rid) this.#index.insert(batch.splice(0));
      this.#stmt.retire.run(current.rid);
      this.#stmt.unindex.run(current.rid);
    }
    const body = op.content ? JSON.stringify(op.content.resource) : null;
    const row = [op.type, op.id, op.versionId, op.lastUpdated, op.content ? 0 : 1, body, op.writeId ?? null] as const;
    const { rid } = this.#stmt.insert.get(...row) as { rid: number };
    if (!op.content) return;
    const version = { rid, type: op.type, entries: op.content.index };
    if (batch) batch.push(version);
    else this.#index.insert([version]);
  }
}

function toVersion(row: VersionRow): StoredVersion {
  return {
    type: row.type,
    id: row.id,
    versionId: row.version,
    lastUpdated: row.last_updated,
    deleted: row.deleted === 1,
    resource: row.body === null ? undefined : (parseStored(row.body) as Record<string, unknown>),
  };
}
