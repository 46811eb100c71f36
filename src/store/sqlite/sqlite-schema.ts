// The embedded store's schema. Every version of every resource is one row; only the current
// version of a resource has index entries. AuditEvents have the same tables, so that the one
// search engine answers auditors, in a file of their own (audit-index.db, attached to the
// resource database's connection as `aix`): the searchable copy the indexer keeps behind the
// audit log (audit.db, sqlite-audit-log.ts) — their index entries, no body (read from the log),
// and the log sequence number indexed so far (audit_indexed).
export const SCHEMA_VERSION = 4;

/** The file of the audit log's searchable copy, beside hearth.db. */
export const AUDIT_INDEX_FILE = 'audit-index.db';
/** The name it is attached under on the resource database's connection. */
export const AUDIT_INDEX_SCHEMA = 'aix';

/** Version 2: each resource version names the request that wrote it (write-ahead audit). */
export const MIGRATE_TO_2 = 'ALTER TABLE resource_versions ADD COLUMN write_id TEXT';
export const WRITE_ID_INDEX = 'CREATE INDEX IF NOT EXISTS resource_write ON resource_versions (write_id) WHERE write_id IS NOT NULL';

/**
 * Version 4: the searchable copy of the audit log moved from hearth.db to audit-index.db: its
 * indexer writes there without ever holding (or waiting for) the lock of the file clinical writes
 * commit to, and in large chunks. Version 3's AuditEvent rows, their index entries and the mark
 * are copied there, then dropped here.
 */
export const AUDIT_INDEX_TABLES = ['resource_versions', 'search_index', 'audit_indexed'];

/**
 * Version 3: the audit chain moved to its own file. What version 2 kept here (audit_log,
 * checkpoints, purges, and the append-only triggers on AuditEvent rows) is copied to audit.db
 * and then dropped; AuditEvent rows keep their index entries and lose their body.
 */
export const LEGACY_AUDIT_TABLES = ['audit_log', 'audit_checkpoints', 'audit_purges', 'audit_purge_window'];
export const LEGACY_AUDIT_TRIGGERS = [
  'audit_log_append_only_u',
  'audit_log_append_only_d',
  'audit_event_append_only_u',
  'audit_event_append_only_d',
  'audit_checkpoints_append_only_u',
  'audit_checkpoints_append_only_d',
  'audit_purges_append_only_u',
  'audit_purges_append_only_d',
];

/** hearth.db: resources, their versions and index entries. */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS resource_versions (
  rid INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  last_updated TEXT NOT NULL,
  deleted INTEGER NOT NULL,
  current INTEGER NOT NULL,
  body TEXT,
  write_id TEXT,
  UNIQUE (type, id, version)
) STRICT;
CREATE INDEX IF NOT EXISTS resource_current ON resource_versions (type, id) WHERE current = 1;
CREATE INDEX IF NOT EXISTS resource_history ON resource_versions (type, last_updated);
CREATE TABLE IF NOT EXISTS search_index (
  rid INTEGER NOT NULL,
  type TEXT NOT NULL,
  param TEXT NOT NULL,
  grp INTEGER NOT NULL,
  sys TEXT,
  code TEXT,
  text TEXT,
  lo REAL,
  hi REAL
) STRICT;
CREATE INDEX IF NOT EXISTS search_code ON search_index (type, param, code, rid) WHERE code IS NOT NULL;
CREATE INDEX IF NOT EXISTS search_range ON search_index (type, param, lo, hi, rid) WHERE lo IS NOT NULL;
CREATE INDEX IF NOT EXISTS search_rid ON search_index (rid, param);
`;

/** The indexes of search_index, as SCHEMA makes them: kept row by row, or dropped for a bulk move and rebuilt (by sorting) after it. */
export const SEARCH_INDEXES = [...SCHEMA.matchAll(/CREATE INDEX IF NOT EXISTS (\w+) ON search_index /g)].map((m) => m[1]);

/** audit-index.db (its tables under `schema.` when attached): the same tables, and the mark. */
export function auditIndexSchema(schema?: string): string {
  const q = schema ? `${schema}.` : '';
  return `${SCHEMA}
CREATE TABLE IF NOT EXISTS audit_indexed (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  seq INTEGER NOT NULL
) STRICT;
`.replace(/(TABLE|INDEX) IF NOT EXISTS /g, `$1 IF NOT EXISTS ${q}`);
}
