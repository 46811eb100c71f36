import { readFileSync } from 'node:fs';
import type { DatabaseSync } from 'node:sqlite';

/** hearth.db's tables as schema versions 2 to 4 made them (the search index with type and parameter as text). */
export const VERSION_4_SCHEMA = readFileSync(new URL('../fixtures/schema/hearth-v4.sql', import.meta.url), 'utf8');

/**
 * Puts a file's search index (in `schema`, e.g. an attached file) back in version 4's layout,
 * with the same entries: each names its type and parameter again, in the order its resource's
 * entries were written; and each current resource has its `_id` entry again, as version 4
 * stored. The tables of version 4 come from the fixture, not from the code under test.
 */
export function toVersion4Layout(db: DatabaseSync, schema = 'main'): void {
  db.exec(`BEGIN;
    DROP INDEX ${schema}.search_code;
    DROP INDEX ${schema}.search_range;
    ALTER TABLE ${schema}.search_index RENAME TO search_index_v5;
    ${VERSION_4_SCHEMA.replace(/(TABLE|INDEX) IF NOT EXISTS /g, `$1 IF NOT EXISTS ${schema}.`)}
    INSERT INTO ${schema}.search_index (rid, type, param, grp, sys, code, text, lo, hi)
      SELECT i.rid, p.type, p.param, i.grp, i.sys, i.code, i.text, i.lo, i.hi
      FROM ${schema}.search_index_v5 i JOIN ${schema}.search_params p ON p.pid = i.pid ORDER BY i.rid, i.n;
    INSERT INTO ${schema}.search_index (rid, type, param, grp, code)
      SELECT rid, type, '_id', 0, id FROM ${schema}.resource_versions WHERE current = 1 AND deleted = 0;
    DROP TABLE ${schema}.search_index_v5;
    DROP TABLE ${schema}.search_params;
    COMMIT;`);
}
