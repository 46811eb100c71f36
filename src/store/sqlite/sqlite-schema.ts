// The embedded store's schema. Every version of every resource is one row; only the current
// version of a resource has index entries. Audit tables arrive with the audit trail.
export const SCHEMA_VERSION = 1;

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
CREATE INDEX IF NOT EXISTS search_code ON search_index (type, param, code, rid);
CREATE INDEX IF NOT EXISTS search_range ON search_index (type, param, lo, hi, rid);
CREATE INDEX IF NOT EXISTS search_rid ON search_index (rid, param);
`;
