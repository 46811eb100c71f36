import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import type { SearchQuery } from '../../src/fhir/query.ts';
import { SCHEMA } from '../../src/store/sqlite/sqlite-schema.ts';
import { searchSql } from '../../src/store/sqlite/sqlite-query.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../helpers/app.ts';
import { storeContract } from './contract.ts';

storeContract('SQLite in memory', async (clock) => ({ store: new SqliteStore({ dataDir: ':memory:', clock }) }));

storeContract('SQLite file (WAL)', async (clock) => {
  const dataDir = tempDir();
  return { store: new SqliteStore({ dataDir, clock }), reopen: async () => new SqliteStore({ dataDir, clock }) };
});

describe('the SQL plan of a search', () => {
  // Known answers from SQLite's planner (EXPLAIN QUERY PLAN), not timings: which way in it takes.
  const plan = (db: DatabaseSync, q: SearchQuery) => {
    const sql = searchSql(q);
    return (db.prepare(`EXPLAIN QUERY PLAN ${sql.text}`).all(...sql.params) as { detail: string }[]).map((r) => r.detail);
  };
  const db = new DatabaseSync(':memory:');
  db.exec(SCHEMA);
  const query = (where: SearchQuery['where']): SearchQuery => ({ type: 'Patient', where, sort: [], count: 10, total: 'none' });

  it('a clause on the index drives by the rids it selects, not by a scan of every resource of the type', () => {
    const family = plan(db, query([{ kind: 'exists', param: 'family', where: [{ field: 'code', op: 'eq', value: 'h4sh' }] }]));
    expect(family).toContain('SEARCH r USING INTEGER PRIMARY KEY (rowid=?)');
    expect(family.join('\n')).not.toMatch(/USING INDEX resource_(current|history)/);
    const range = plan(db, query([{ kind: 'exists', param: 'birthdate', where: [{ field: 'lo', op: 'ge', value: 0 }] }]));
    expect(range).toContain('SEARCH r USING INTEGER PRIMARY KEY (rowid=?)');
  });

  it('with no clause that reads the index, the type\'s index is the way in', () => {
    expect(plan(db, query([])).join('\n')).toMatch(/SEARCH r USING INDEX resource_current \(type=\?\)/);
    const not = plan(db, query([{ kind: 'not', clause: { kind: 'exists', param: 'family', where: [] } }]));
    expect(not.join('\n')).toMatch(/SEARCH r USING INDEX resource_current \(type=\?\)/);
  });
});
