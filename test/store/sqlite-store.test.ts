import { createSecretKey } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { BlindIndex } from '../../src/crypto/blind-index.ts';
import { loadProtectionPolicy } from '../../src/crypto/protection.ts';
import type { SearchQuery } from '../../src/fhir/query.ts';
import { loadFhirModel } from '../../src/fhir/definitions.ts';
import { parseSearch } from '../../src/fhir/search-parser.ts';
import { auditIndexSchema, SCHEMA } from '../../src/store/sqlite/sqlite-schema.ts';
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

  it('a clause on the end of a range alone (birthdate=gt…) reads its parameter\'s ranges, not every entry of the index', () => {
    // search_range is partial (lo IS NOT NULL): SQLite uses it only where the query implies that.
    const after = plan(db, query([{ kind: 'exists', param: 'birthdate', where: [{ field: 'hi', op: 'gt', value: 0 }] }]));
    expect(after).toContain('SEARCH i0 USING COVERING INDEX search_range (pid=? AND lo>?)');
    expect(after.join('\n')).not.toMatch(/SCAN i0/);
  });

  it('an _id equality drives by (type, id), other clauses probed for that one resource', () => {
    const byId = plan(db, query([
      { kind: 'exists', param: 'family', where: [{ field: 'code', op: 'eq', value: 'h4sh' }] },
      { kind: 'exists', param: '_id', where: [{ field: 'code', op: 'eq', value: 'p1' }] },
    ]));
    expect(byId).toContain('SEARCH r USING INDEX resource_current (type=? AND id=?)');
    expect(byId).toContain('SEARCH i0 EXISTS USING PRIMARY KEY (rid=? AND pid=?)');
  });

  it('with no clause that reads the index, the type\'s index is the way in', () => {
    expect(plan(db, query([])).join('\n')).toMatch(/SEARCH r USING INDEX resource_current \(type=\?\)/);
    const not = plan(db, query([{ kind: 'not', clause: { kind: 'exists', param: 'family', where: [] } }]));
    expect(not.join('\n')).toMatch(/SEARCH r USING INDEX resource_current \(type=\?\)/);
  });
});

describe('the search index\'s parameter numbers (schema version 5)', () => {
  const at = '2026-01-01T00:00:00.000Z';
  const op = (id: string, param: string, expect?: number) => ({
    type: 'Patient',
    id,
    expect,
    versionId: 1,
    lastUpdated: at,
    content: { resource: { resourceType: 'Patient', id }, index: [{ param, grp: 0, code: 'v' }] },
  });
  const find = async (store: SqliteStore, param: string) =>
    (await store.search({ type: 'Patient', where: [{ kind: 'exists', param, where: [{ field: 'code', op: 'eq', value: 'v' }] }], sort: [], count: 10, total: 'none' })).matches
      .map((m) => m.id)
      .sort();

  it('a number given to a new parameter in a transaction that rolled back is not used again for it', async () => {
    const store = new SqliteStore({ dataDir: ':memory:' });
    // The first write adds `first-new` to the dictionary; the second fails its expectation: all rolled back.
    await expect(store.commit([op('a', 'first-new'), op('b', 'other', 3)])).rejects.toMatchObject({ failure: { kind: 'changed', id: 'b' } });
    // SQLite gives the next parameter the number the rolled-back one had: entries of `first-new`
    // written under a remembered number would be found as `second-new`'s.
    await store.commit([op('b', 'second-new')]);
    await store.commit([op('c', 'first-new')]);
    expect(await find(store, 'second-new')).toEqual(['b']);
    expect(await find(store, 'first-new')).toEqual(['c']);
    expect(await find(store, 'never-written')).toEqual([]);
    await store.close();
  });

  it('a commit inserts its versions\' entries together, yet a later check sees the earlier ones and a replaced version leaves none', async () => {
    const dataDir = tempDir();
    const store = new SqliteStore({ dataDir });
    const query = (param: string): SearchQuery => ({ type: 'Patient', where: [{ kind: 'exists', param, where: [{ field: 'code', op: 'eq', value: 'v' }] }], sort: [], count: 1, total: 'none' });
    // The second create is conditional on no Patient having `first` = v, which the first (same commit) has.
    await expect(store.commit([op('a', 'first'), { ...op('b', 'other'), absent: query('first') }])).rejects.toMatchObject({ failure: { kind: 'changed', id: 'b' } });
    // Written and replaced in one commit: the first version's entries must not stay behind.
    await store.commit([op('c', 'old'), { ...op('c', 'new', 1), versionId: 2 }, op('d', 'new')]);
    expect(await find(store, 'new')).toEqual(['c', 'd']);
    expect(await find(store, 'old')).toEqual([]);
    await store.close();
    const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    const counts = db.prepare('SELECT v.id, v.version, COUNT(s.rid) AS n FROM resource_versions v LEFT JOIN search_index s ON s.rid = v.rid GROUP BY v.rid ORDER BY v.id, v.version').all();
    db.close();
    expect(counts.map((r) => ({ ...r }))).toEqual([{ id: 'c', version: 1, n: 0 }, { id: 'c', version: 2, n: 1 }, { id: 'd', version: 1, n: 1 }]);
  });

  it('likewise a system\'s number (schema version 6): entries keep the system they were written with', async () => {
    const store = new SqliteStore({ dataDir: ':memory:' });
    const withSystem = (id: string, sys: string, expect?: number) => {
      const o = op(id, 'identifier', expect);
      return { ...o, content: { ...o.content, index: [{ param: 'identifier', grp: 0, sys, code: 'v' }] } };
    };
    const findIn = async (sys: string) =>
      (await store.search({ type: 'Patient', where: [{ kind: 'exists', param: 'identifier', where: [{ field: 'sys', op: 'eq', value: sys }, { field: 'code', op: 'eq', value: 'v' }] }], sort: [], count: 10, total: 'none' })).matches.map((m) => m.id).sort();
    await expect(store.commit([withSystem('a', 'urn:first', undefined), op('b', 'other', 3)])).rejects.toMatchObject({ failure: { kind: 'changed', id: 'b' } });
    await store.commit([withSystem('b', 'urn:second')]);
    await store.commit([withSystem('c', 'urn:first')]);
    expect(await findIn('urn:second')).toEqual(['b']);
    expect(await findIn('urn:first')).toEqual(['c']);
    expect(await findIn('urn:never-written')).toEqual([]);
    await store.close();
  });

  const model = loadFhirModel({ updateCreate: false });
  /** How SQLite would run `query` (EXPLAIN QUERY PLAN), on an empty hearth.db with its audit index attached. */
  const planOf = (query: SearchQuery): string[] => {
    const db = new DatabaseSync(':memory:');
    try {
      db.exec(SCHEMA);
      db.exec('ATTACH DATABASE \':memory:\' AS aix');
      db.exec(auditIndexSchema('aix'));
      const sql = searchSql(query);
      return (db.prepare(`EXPLAIN QUERY PLAN ${sql.text}`).all(...sql.params) as { detail: string }[]).map((r) => r.detail);
    } finally {
      db.close();
    }
  };
  const parsed = (type: string, search: string) =>
    parseSearch(model, type, [...new URLSearchParams(search)], {
      defaultCount: 10, maxCount: 100, strict: true, baseUrl: 'http://x/fhir', clock: () => new Date('2026-02-01T00:00:00Z'),
    }).query;

  it('a clause probed per candidate goes through the primary key (rid, pid), not a value range of every resource', () => {
    const plan = planOf({
      type: 'AuditEvent',
      where: [
        { kind: 'exists', param: 'entity', where: [{ field: 'code', op: 'eq', value: 'Patient/p1' }] },
        { kind: 'exists', param: 'date', where: [{ field: 'lo', op: 'ge', value: 0 }] },
      ],
      sort: [],
      count: 10,
      total: 'none',
    });
    expect(plan).toContain('SEARCH i0 USING COVERING INDEX search_code (pid=? AND code=?)');
    expect(plan).toContain('SEARCH i1 EXISTS USING PRIMARY KEY (rid=? AND pid=?)');
  });

  it('AuditEvent\'s patient= (one reference over agent and over entity) drives by both codes, the date probed per candidate', () => {
    const plan = planOf(parsed('AuditEvent', 'patient=p1&date=ge2026-01-01'));
    expect(plan[0]).toBe('MULTI-INDEX OR');
    expect(plan).toContain('SEARCH i0 USING COVERING INDEX search_code (pid=? AND code=?)');
    expect(plan).toContain('SEARCH i1 USING COVERING INDEX search_code (pid=? AND code=?)');
    expect(plan).toContain('SEARCH i2 USING PRIMARY KEY (rid=? AND pid=?)');
    expect(plan.join('\n')).not.toMatch(/search_range|SCAN/);
  });

  it.each([
    ['family', 'on a plain store', false],
    ['family', 'through the blind index', true],
    ['name', 'on a plain store', false],
    ['name', 'through the blind index', true],
  ])('%s:exact is looked up by its code in search_code, not by scanning every entry (%s)', (param, _name, blinded) => {
    const query = parsed('Patient', `${param}:exact=Smith`);
    const blind = new BlindIndex(createSecretKey(Buffer.alloc(32, 9)), loadProtectionPolicy(model), 1);
    const plan = planOf(blinded ? blind.query(query) : query);
    // By rowid from the entries found (an OR over name's own and its parts' for name), each
    // encrypted exact hash probed per candidate; never a scan of the index or of every Patient.
    expect(plan[0]).toBe(param === 'name' ? 'MULTI-INDEX OR' : 'SEARCH r USING INTEGER PRIMARY KEY (rowid=?)');
    expect(plan).toContainEqual(expect.stringMatching(/^SEARCH i0 USING (COVERING )?INDEX search_code \(pid=\? AND code=\?\)$/));
    if (blinded) expect(plan).toContainEqual(expect.stringMatching(/^SEARCH i\d (EXISTS )?USING PRIMARY KEY \(rid=\? AND pid=\?\)$/));
    expect(plan.join('\n')).not.toMatch(/SCAN|resource_current/);
  });

  // search_code and search_range are partial: a clause SQLite cannot see is within one scanned every entry.
  it.each([
    // (`code>?`: SQLite's range for `code IS NOT NULL`)
    ['family:contains=mit', 'SEARCH i0 USING COVERING INDEX search_code (pid=? AND code>?)'],
    ['_profile:below=http://x.org/p', 'SEARCH i0 USING COVERING INDEX search_code (pid=? AND code>?)'],
    // :missing is probed per candidate through the primary key (no index holds every entry)
    ['telecom:missing=true', 'SEARCH i0 USING PRIMARY KEY (rid=? AND pid=?)'],
    ['telecom:missing=false', 'SEARCH i0 EXISTS USING PRIMARY KEY (rid=? AND pid=?)'],
    ['name:missing=true', 'SEARCH i2 USING PRIMARY KEY (rid=? AND pid=?)'],
  ])('Patient?%s reads its own entries, not every entry of the index', (search, expected) => {
    const plan = planOf(parsed('Patient', search));
    expect(plan).toContain(expected);
    expect(plan.join('\n')).not.toMatch(/SCAN/);
  });

  it('Patient\'s name= (its own entries, family\'s and given\'s) is looked up by each one\'s prefix range, no scan', () => {
    const plan = planOf(parsed('Patient', 'name=smi'));
    expect(plan[0]).toBe('MULTI-INDEX OR');
    for (const i of ['i0', 'i1', 'i2']) expect(plan).toContain(`SEARCH ${i} USING COVERING INDEX search_code (pid=? AND code>? AND code<?)`);
    expect(plan.join('\n')).not.toMatch(/SCAN/);
  });
});
