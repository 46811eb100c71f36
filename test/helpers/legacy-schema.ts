import { readFileSync } from 'node:fs';
import type { DatabaseSync } from 'node:sqlite';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/schema/${name}`, import.meta.url), 'utf8');

/** hearth.db's tables as schema versions 2 to 4 made them (the search index with type and parameter as text). */
export const VERSION_4_SCHEMA = fixture('hearth-v4.sql');

/** The search index's tables as schema version 5 made them (the system of an entry as text). */
const VERSION_5_SEARCH = fixture('hearth-v5.sql');

const inSchema = (ddl: string, schema: string) => ddl.replace(/(TABLE|INDEX) IF NOT EXISTS /g, `$1 IF NOT EXISTS ${schema}.`);

/**
 * Replaces a file's search index (in `schema`) by the tables of `ddl`, filled by `copy` from the
 * current one (`search_index_v6`), and drops what the older version did not have.
 */
function rebuild(db: DatabaseSync, schema: string, ddl: string, copy: string, drop: string[]): void {
  db.exec(`BEGIN;
    DROP INDEX ${schema}.search_code;
    DROP INDEX ${schema}.search_range;
    ALTER TABLE ${schema}.search_index RENAME TO search_index_v6;
    ${inSchema(ddl, schema)}
    ${copy}
    DROP TABLE ${schema}.search_index_v6;
    ${drop.map((t) => `DROP TABLE ${schema}.${t};`).join('\n')}
    COMMIT;`);
}

/**
 * Puts a file's search index (in `schema`, e.g. an attached file) back in version 4's layout,
 * with the same entries: each names its type and parameter again, in the order its resource's
 * entries were written, and its system as text; and each current resource has its `_id` entry
 * again, as version 4 stored. The tables of version 4 come from the fixture, not from the code
 * under test.
 */
export function toVersion4Layout(db: DatabaseSync, schema = 'main'): void {
  rebuild(db, schema, VERSION_4_SCHEMA, `
    INSERT INTO ${schema}.search_index (rid, type, param, grp, sys, code, text, lo, hi)
      SELECT i.rid, p.type, p.param, i.grp, y.sys, i.code, i.text, i.lo, i.hi
      FROM ${schema}.search_index_v6 i JOIN ${schema}.search_params p ON p.pid = i.pid LEFT JOIN ${schema}.search_systems y ON y.sid = i.sys
      ORDER BY i.rid, i.n;
    INSERT INTO ${schema}.search_index (rid, type, param, grp, code)
      SELECT rid, type, '_id', 0, id FROM ${schema}.resource_versions WHERE current = 1 AND deleted = 0;`, ['search_params', 'search_systems']);
}

/** Puts a file's search index back in version 5's layout (from the fixture), with the same entries: each system as text again. */
export function toVersion5Layout(db: DatabaseSync, schema = 'main'): void {
  rebuild(db, schema, VERSION_5_SEARCH, `
    INSERT INTO ${schema}.search_index (rid, pid, n, grp, sys, code, text, lo, hi)
      SELECT i.rid, i.pid, i.n, i.grp, y.sys, i.code, i.text, i.lo, i.hi
      FROM ${schema}.search_index_v6 i LEFT JOIN ${schema}.search_systems y ON y.sid = i.sys;`, ['search_systems']);
}
