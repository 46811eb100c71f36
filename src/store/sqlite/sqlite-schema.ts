// The embedded store's schema. Every version of every resource is one row; only the current
// version of a resource has index entries. AuditEvents are rows of resource_versions too (so
// that the one search engine answers auditors), chained by audit_log, and refused any UPDATE or
// DELETE by trigger; the only exception is a retention purge, which opens audit_purge_window
// inside its own transaction.
export const SCHEMA_VERSION = 2;

/** Version 2: each resource version names the request that wrote it (write-ahead audit). */
export const MIGRATE_TO_2 = 'ALTER TABLE resource_versions ADD COLUMN write_id TEXT';
export const WRITE_ID_INDEX = 'CREATE INDEX IF NOT EXISTS resource_write ON resource_versions (write_id) WHERE write_id IS NOT NULL';

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

CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  rid INTEGER NOT NULL UNIQUE,
  id TEXT NOT NULL,
  recorded TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_recorded ON audit_log (recorded);
CREATE INDEX IF NOT EXISTS audit_id ON audit_log (id);
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
CREATE TRIGGER IF NOT EXISTS audit_event_append_only_u BEFORE UPDATE ON resource_versions WHEN OLD.type = 'AuditEvent'
BEGIN SELECT RAISE(ABORT, 'AuditEvents are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_event_append_only_d BEFORE DELETE ON resource_versions WHEN OLD.type = 'AuditEvent'
AND NOT EXISTS (SELECT 1 FROM audit_log a, audit_purge_window w WHERE a.rid = OLD.rid AND a.seq <= w.through_seq)
BEGIN SELECT RAISE(ABORT, 'AuditEvents are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_append_only_u BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_append_only_d BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_purges_append_only_u BEFORE UPDATE ON audit_purges
BEGIN SELECT RAISE(ABORT, 'audit purges are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_purges_append_only_d BEFORE DELETE ON audit_purges
BEGIN SELECT RAISE(ABORT, 'audit purges are append-only'); END;
`;
