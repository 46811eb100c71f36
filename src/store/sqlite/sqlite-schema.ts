import { basename } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';

// The embedded store's schema. Every version of every resource is one row; only the current
// version of a resource has index entries. AuditEvents have the same tables, so that the one
// search engine answers auditors, in a file of their own (audit-index.db, attached to the
// resource database's connection as `aix`): the searchable copy the indexer keeps behind the
// audit log (audit.db, sqlite-audit-log.ts) — their index entries, no body (read from the log),
// and the log sequence number indexed so far (audit_indexed).
export const SCHEMA_VERSION = 6;

/** The version from which the searchable copy of the audit log is in audit-index.db. */
export const AUDIT_INDEX_MOVED = 4;

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

/**
 * Version 5: the search index's layout. Each entry names its resource type and parameter by a
 * number (`search_params`, a dictionary whose rows are never changed or removed) instead of
 * both names as text, in the row and in the keys of its indexes; and the rows are clustered by
 * resource (`WITHOUT ROWID`, primary key `(rid, pid, n)`, `n` the entry's place among its
 * resource's), which makes a separate `(rid, param)` index unnecessary. Measured on 40,000
 * AuditEvents' entries: 2,250 -> 1,153 B an event on disk, a fifth less time to insert
 * (docs/performance.md).
 *
 * Version 6: an entry's system (a token's or an identifier's, a quantity's unit system) is its
 * number in `search_systems`, a dictionary like search_params: a handful of URIs repeated in every
 * entry that has one (an AuditEvent's four came to ~135 of its ~1,300 bytes).
 *
 * A version-4 or -5 table is converted in place (convertSearchIndex).
 */
const SEARCH_TABLES = `
CREATE TABLE IF NOT EXISTS search_params (
  pid INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  param TEXT NOT NULL,
  UNIQUE (type, param)
) STRICT;
CREATE TABLE IF NOT EXISTS search_systems (
  sid INTEGER PRIMARY KEY,
  sys TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS search_index (
  rid INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  n INTEGER NOT NULL,
  grp INTEGER NOT NULL,
  sys INTEGER,
  code TEXT,
  text TEXT,
  lo REAL,
  hi REAL,
  PRIMARY KEY (rid, pid, n)
) STRICT, WITHOUT ROWID;
`;

/**
 * `_id` has no entries here: R4 defines it as `Resource.id`, so its one entry would be the row's
 * own id as its code and nothing else — a row and a key in search_code (a random page written
 * per create) for what resource_versions holds. A clause on it is answered from the row
 * (sqlite-query.ts).
 * See: https://hl7.org/fhir/R4/resource.html#search (_id: token, Resource.id)
 */
export const ID_PARAM = '_id';

/** The secondary indexes of search_index: kept row by row, or dropped for a bulk copy and built again (by sorting) after it. */
const SEARCH_INDEX_DDL = `
CREATE INDEX IF NOT EXISTS search_code ON search_index (pid, code, rid) WHERE code IS NOT NULL;
CREATE INDEX IF NOT EXISTS search_range ON search_index (pid, lo, hi, rid) WHERE lo IS NOT NULL;
`;

const VERSIONS = `
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
`;

/** hearth.db: resources, their versions and index entries. */
export const SCHEMA = `${VERSIONS}${SEARCH_TABLES}${SEARCH_INDEX_DDL}`;

export const SEARCH_INDEXES = [...SEARCH_INDEX_DDL.matchAll(/CREATE INDEX IF NOT EXISTS (\w+) ON search_index /g)].map((m) => m[1]);

/** DDL with its tables and indexes made in `schema` (an attached file), or as it is. */
function inSchema(ddl: string, schema?: string): string {
  return schema ? ddl.replace(/(TABLE|INDEX) IF NOT EXISTS /g, `$1 IF NOT EXISTS ${schema}.`) : ddl;
}

/** The resource versions' table alone: what exists before a version-4 search index is converted. */
export const versionsSchema = (schema?: string) => inSchema(VERSIONS, schema);

/** audit-index.db (its tables under `schema.` when attached): the same tables, and the mark. */
export function auditIndexSchema(schema?: string): string {
  // Without resource_current: every row here is the current and only version of its event, so
  // the (type, id, version) key serves whatever it would (65 B an event on disk, and an insert).
  // Without resource_history: AuditEvent has no history interaction, and the purge finds its
  // events by their `date` entries (SqliteAuditIndex.removeBefore); ~50 B an event.
  return `${inSchema(
    `${SCHEMA}
CREATE TABLE IF NOT EXISTS audit_indexed (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  seq INTEGER NOT NULL
) STRICT;
`,
    schema,
  )}
DROP INDEX IF EXISTS ${schema ? `${schema}.` : ''}resource_current;
DROP INDEX IF EXISTS ${schema ? `${schema}.` : ''}resource_history;
`;
}

/** Which layout a file's search_index has: 4 (type and parameter as text), 5 (the system as text), or 6 (none there: 6). */
function searchIndexLayout(db: DatabaseSync, schema: string): 4 | 5 | 6 {
  const columns = db.prepare(`PRAGMA ${schema}.table_info(search_index)`).all() as { name: string; type: string }[];
  if (columns.some((c) => c.name === 'param')) return 4;
  return columns.some((c) => c.name === 'sys' && c.type === 'TEXT') ? 5 : 6;
}

/**
 * To version 6, in one file (`schema`, or the connection's own): converts a version-4 or -5
 * search_index to the layout above, in one transaction that `transaction` runs holding that
 * file's write lock. Entries keep their resource, group and values; from version 4, each
 * resource's are numbered in the order they were written and `_id`'s are dropped (ID_PARAM).
 * Does nothing where the table is already converted or not there. Returns how many entries
 * were converted.
 */
export function convertSearchIndex(db: DatabaseSync, transaction: <T>(work: () => T) => T, schema = 'main'): number {
  if (searchIndexLayout(db, schema) === 6) return 0;
  const count = (db.prepare(`SELECT COUNT(*) AS n FROM ${schema}.search_index`).get() as { n: number }).n;
  // (an operator waiting on a start that takes minutes is told why)
  if (count > 10_000) {
    const { file } = (db.prepare('PRAGMA database_list').all() as { name: string; file: string }[]).find((d) => d.name === schema) ?? { file: schema };
    process.stderr.write(`hearth: converting the ${count} search index entries of ${basename(file)} to schema version ${SCHEMA_VERSION} (once)\n`);
  }
  return transaction(() => {
    // (another process may have converted it while this one waited for the lock)
    const from = searchIndexLayout(db, schema);
    if (from === 6) return 0;
    for (const i of ['search_code', 'search_range', 'search_rid']) db.exec(`DROP INDEX IF EXISTS ${schema}.${i}`);
    db.exec(`ALTER TABLE ${schema}.search_index RENAME TO search_index_old`);
    db.exec(inSchema(SEARCH_TABLES, schema));
    db.exec(`INSERT INTO ${schema}.search_systems (sys) SELECT DISTINCT sys FROM ${schema}.search_index_old WHERE sys IS NOT NULL ORDER BY sys`);
    const systems = `LEFT JOIN ${schema}.search_systems y ON y.sys = o.sys`;
    if (from === 4) {
      db.exec(`DELETE FROM ${schema}.search_index_old WHERE param = '${ID_PARAM}'`);
      db.exec(`INSERT INTO ${schema}.search_params (type, param) SELECT DISTINCT type, param FROM ${schema}.search_index_old ORDER BY type, param`);
      // In primary-key order, so that the clustered table is written front to back.
      db.exec(`INSERT INTO ${schema}.search_index (rid, pid, n, grp, sys, code, text, lo, hi)
        SELECT o.rid, p.pid, row_number() OVER (PARTITION BY o.rid ORDER BY o.rowid) - 1, o.grp, y.sid, o.code, o.text, o.lo, o.hi
        FROM ${schema}.search_index_old o JOIN ${schema}.search_params p ON p.type = o.type AND p.param = o.param ${systems}
        ORDER BY o.rid, p.pid`);
    } else {
      db.exec(`INSERT INTO ${schema}.search_index (rid, pid, n, grp, sys, code, text, lo, hi)
        SELECT o.rid, o.pid, o.n, o.grp, y.sid, o.code, o.text, o.lo, o.hi FROM ${schema}.search_index_old o ${systems}
        ORDER BY o.rid, o.pid, o.n`);
    }
    db.exec(`DROP TABLE ${schema}.search_index_old`);
    db.exec(inSchema(SEARCH_INDEX_DDL, schema));
    return count;
  });
}
