import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { asyncAuditIndex, asyncAuditStore } from '../../audit/audit-store.ts';
import type { Storage } from '../port.ts';
import { SqliteAuditIndex } from './sqlite-audit-index.ts';
import { SqliteAuditLog } from './sqlite-audit-log.ts';
import { auditIndexSchema, convertSearchIndex, versionsSchema } from './sqlite-schema.ts';
import { SqliteStore } from './sqlite-store.ts';
import { immediate } from './transaction.ts';
import type { Fdatasync } from './wal-sync.ts';

export interface SqliteStorageOptions {
  /** Directory for the database files, or ':memory:' for tests that need no file. */
  readonly dataDir: string;
  readonly clock?: () => Date;
  /** How hearth.db's write-ahead log is flushed to disk (fs.fdatasync; tests hold or fail it). */
  readonly fdatasync?: Fdatasync;
  /** hearth.db checkpointed on a thread of its own (a server; not an operator command's short use) */
  readonly checkpointThread?: boolean;
}

export const RESOURCE_FILE = 'hearth.db';
export const AUDIT_LOG_FILE = 'audit.db';

/** A connection to the audit log's file, durable at every commit. */
export function openAuditLogDb(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;');
  return db;
}

/**
 * The audit log's searchable copy on a connection of its own (the indexer thread's):
 * `synchronous=NORMAL`, since the log is the record and the copy is rebuilt from it; a 32 MiB
 * page cache, statement journals in memory (as hearth.db's, sqlite-store.ts).
 */
export function openAuditIndex(path: string): { index: SqliteAuditIndex; close(): void } {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;');
  // (the file of an older version is converted here too if the indexer thread opens it first)
  db.exec(versionsSchema());
  convertSearchIndex(db, (work) => immediate(db, work));
  db.exec(auditIndexSchema());
  return { index: new SqliteAuditIndex(db, (work) => immediate(db, work)), close: () => db.close() };
}

/**
 * The embedded storage: resources in `hearth.db`, the audit log in `audit.db`, and the log's
 * searchable copy in `audit-index.db` — three files, so that an audit commit is a small append of
 * its own and never waits on (or for) clinical writes, and indexing behind it never holds the
 * lock clinical writes commit under. Moves a version-2 database's chain into audit.db.
 */
export function sqliteStorage(options: SqliteStorageOptions): Storage {
  const memory = options.dataDir === ':memory:';
  if (!memory) mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const logPath = memory ? ':memory:' : join(options.dataDir, AUDIT_LOG_FILE);
  const logDb = openAuditLogDb(logPath);
  const log = new SqliteAuditLog(logDb);
  const { dataDir, clock, fdatasync, checkpointThread } = options;
  const store = new SqliteStore({ dataDir, clock, fdatasync, checkpointThread, auditBody: (id) => log.body(id) });
  const legacy = store.legacyAudit();
  if (legacy) store.dropLegacyAudit(log.importLegacy(legacy));
  return {
    resources: store,
    audit: asyncAuditStore(log),
    auditIndex: asyncAuditIndex(store.auditIndex()),
    keys: {
      countKeyUse: async (kekId) => store.countKeyUse(kekId),
      rewrapAll: async (kek, rewrap, progress, batch) => store.rewrapAll(kek, rewrap, progress, batch),
    },
    capabilities: { adapter: 'sqlite', file: memory ? undefined : store.path, auditFile: memory ? undefined : logPath },
    hasResources: async () => store.hasResources(),
    async close() {
      await store.close();
      if (logDb.isOpen) logDb.close();
    },
  };
}
