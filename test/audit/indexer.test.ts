import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { platform } from 'node:os';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENESIS, linkHash, verifyChain } from '../../src/audit/chain.ts';
import { canonicalJson } from '../../src/audit/canonical-json.ts';
import { loadPublicKey } from '../../src/audit/signing-key.ts';
import { sqliteStorage } from '../../src/store/sqlite/sqlite-storage.ts';
import { create, failingIndex, json, tempDir, testApp } from '../helpers/app.ts';
import { toVersion4Layout, VERSION_4_SCHEMA } from '../helpers/legacy-schema.ts';

// The audit log is the record (audit.db); auditors search the copy an indexer keeps behind it.

describe('the audit index behind the log', () => {
  it('auditors read their own writes: every event committed before a read or search is found by it (writer thread, file store)', async () => {
    const t = await testApp({}, { dataDir: tempDir() });
    for (let i = 0; i < 15; i++) {
      const res = await t.app.inject({ method: 'GET', url: `/fhir/Patient?_count=${i + 1}` });
      const id = res.headers['x-request-id'] as string;
      // Straight after the response: its event is in the log, and the read waits for the index.
      const read = await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent/${id}` });
      expect(read.statusCode, id).toBe(200);
      const search = json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?_id=${id}` }));
      expect(search.total).toBe(1);
    }
    expect(t.raw.auditProgress.committed).toBeGreaterThanOrEqual(45);
  });

  it.runIf(platform() === 'linux')('the indexer thread yields the CPU to requests (nice 10), the request thread keeps its priority', async () => {
    const niceOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    const threads = () => new Map(readdirSync('/proc/self/task').map((tid) => [tid, niceOf(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'))]));
    const before = threads();
    const t = await testApp({}, { dataDir: tempDir() });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    // Answered once the indexer thread has indexed the search before it: the thread is running.
    expect(json(await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent?action=E' })).total).toBe(1);
    // The app's new threads: the audit writer at the request thread's priority, the indexer lowered.
    const started = [...threads()].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice);
    expect(started.filter((n) => n === 10)).toHaveLength(1);
    expect(started.filter((n) => n === 0).length).toBeGreaterThanOrEqual(1);
    expect(niceOf(readFileSync('/proc/thread-self/stat', 'utf8'))).toBe(0);
  });

  it('an index that cannot catch up: AuditEvent reads answer 503 with Retry-After, naming the lag; audit and other reads go on', async () => {
    let failing = false;
    const t = await testApp({ HEARTH_AUDIT_INDEX_WAIT_MS: '50' }, { wrapAuditIndex: failingIndex(() => failing) });
    failing = true;
    const read = await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    expect(read.statusCode).toBe(200);
    const behind = await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent' });
    expect(behind.statusCode).toBe(503);
    expect(behind.headers['retry-after']).toBe('1');
    expect(json(behind).issue).toEqual([
      {
        severity: 'error',
        code: 'transient',
        diagnostics: 'the AuditEvent search index is 1 event(s) behind the audit log and did not catch up within 50 ms; retry shortly',
      },
    ]);
    // The refusal is in the log like every access; only the searchable copy is behind.
    const logged = (await Array.fromAsync(t.storage.audit.chain())).map((l) => l.id);
    expect(logged.slice(-2)).toEqual([read.headers['x-request-id'], behind.headers['x-request-id']]);
    failing = false;
    // The next batch indexes everything from the mark on: both events become searchable.
    const found = json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?_id=${read.headers['x-request-id']},${behind.headers['x-request-id']}` }));
    expect(found.total).toBe(2);
  });

  it('resumes from the mark after a restart: events committed to the log but never indexed become searchable', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    await t.app.close();
    // What a crash between the log's commit and the indexing leaves: events only in the log.
    const storage = sqliteStorage({ dataDir });
    const before = (await storage.auditIndex.indexedThrough());
    const event = (id: string) => ({ resourceType: 'AuditEvent' as const, id, recorded: '2026-01-15T11:00:00.000Z', type: { code: 'rest' }, action: 'R' as const, agent: [{ requestor: true }], source: { observer: { display: 'x' } } });
    await storage.audit.appendAudit([{ resource: event('logged-only-1') }, { resource: event('logged-only-2') }]);
    expect((await storage.auditIndex.indexedThrough())).toBe(before);
    await storage.close();
    const again = await testApp({}, { dataDir });
    const found = json(await again.app.inject({ method: 'GET', url: '/fhir/AuditEvent?_id=logged-only-1,logged-only-2' }));
    expect(found.total).toBe(2);
    expect((await again.storage.auditIndex.indexedThrough())).toBeGreaterThanOrEqual(before + 2);
  });

  it('indexes only what auditors search: no entries for parameters the CapabilityStatement does not serve', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const tok = await t.token({ sub: 'u-1', client_id: 'app', fhirUser: 'Practitioner/d1', role: 'provider', scope: 'user/*.rs openid' });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${tok}` } });
    const patient = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Indexed' }] });
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${patient.id}`, headers: { authorization: `Bearer ${tok}` } })).statusCode).toBe(200);
    const cs = json(await t.app.inject({ method: 'GET', url: '/fhir/metadata' }));
    const served = cs.rest[0].resource.find((r: { type: string }) => r.type === 'AuditEvent').searchParam.map((p: { name: string }) => p.name).sort();
    expect(served).toEqual(['_id', '_lastUpdated', 'action', 'address', 'agent', 'agent-name', 'agent-role', 'altid', 'date', 'entity', 'outcome', 'patient', 'policy', 'source', 'subtype', 'type']);
    const refused = await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent?site=x', headers: { prefer: 'handling=strict' } });
    expect(refused.statusCode).toBe(400);
    await t.auditIndexed();
    const found = json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?patient=${patient.id}&subtype=read` }));
    expect(found.entry.map((e: { resource: { entity: { what: { reference: string } }[] } }) => e.resource.entity[0].what.reference)).toEqual([`Patient/${patient.id}`]);
    await t.app.close();
    const db = new DatabaseSync(join(dataDir, 'audit-index.db'), { readOnly: true });
    const params = (db.prepare('SELECT DISTINCT p.param FROM search_index s JOIN search_params p ON p.pid = s.pid WHERE p.type = \'AuditEvent\' ORDER BY p.param').all() as { param: string }[]).map((r) => r.param);
    db.close();
    // entity-role, entity-type, site, _profile, _security, _source, _tag: not indexed. (source: the
    // observer is a reference by display only, present for :missing. _id: answered from the row;
    // patient: by agent's and entity's entries of Patient references, search-clauses.ts.)
    expect(params).toEqual(['action', 'address', 'agent', 'agent-name', 'agent-role', 'agent:identifier', 'altid', 'date', 'entity', 'outcome', 'policy', 'source', 'source:identifier', 'subtype', 'type']);
  });
});

describe('the audit index in a file of its own', () => {
  // Each side holds its file's write lock from another connection, as the indexer thread and the
  // request thread do; a write that took the other file's lock too would wait out busy_timeout and fail.
  it('a clinical write never waits for the indexer\'s lock on audit-index.db, nor indexing for a clinical write\'s on hearth.db', async () => {
    const dataDir = tempDir();
    const storage = sqliteStorage({ dataDir });
    const hold = (file: string) => {
      const db = new DatabaseSync(join(dataDir, file));
      db.exec('BEGIN IMMEDIATE');
      return db;
    };
    const indexer = hold('audit-index.db');
    const { version } = await storage.resources.create('Patient', ({ id, versionId, lastUpdated }) => ({
      resource: { resourceType: 'Patient', id, meta: { versionId: String(versionId), lastUpdated } },
      index: [{ param: 'family', grp: 0, code: 'held' }],
    }));
    expect((await storage.resources.read('Patient', version.id))?.versionId).toBe(1);
    indexer.exec('ROLLBACK');
    indexer.close();
    const clinical = hold('hearth.db');
    await storage.auditIndex.index([{ id: 'e1', recorded: '2026-01-01T00:00:00.000Z', index: [{ param: 'action', grp: 0, code: 'R' }] }], 1);
    expect(await storage.auditIndex.indexedThrough()).toBe(1);
    clinical.exec('ROLLBACK');
    clinical.close();
    await storage.close();
  });
});

describe('verification against an index that a running indexer moves on', () => {
  it('events indexed past the mark verify read (the indexer went on meanwhile) are no difference; an event the log lacks is', async () => {
    const dataDir = tempDir();
    const storage = sqliteStorage({ dataDir });
    const events = ['e1', 'e2', 'e3'].map((id) => ({ resource: { resourceType: 'AuditEvent' as const, id, recorded: '2026-01-01T00:00:00.000Z', action: 'R' as const }, searchable: true }));
    await storage.audit.appendAudit(events as never);
    await storage.auditIndex.index(events.map((e) => ({ id: e.resource.id, recorded: e.resource.recorded, index: [] })), 3);
    const copy = new DatabaseSync(join(dataDir, 'audit-index.db'));
    // What verify sees when it reads the mark just before the indexer commits e2 and e3 (with their mark).
    copy.exec('UPDATE audit_indexed SET seq = 1');
    expect(await verifyChain(storage.audit, undefined, undefined, storage.auditIndex)).toMatchObject({ ok: true, events: 3 });
    copy.exec('INSERT INTO resource_versions (type, id, version, last_updated, deleted, current) VALUES (\'AuditEvent\', \'e2b\', 1, \'2026-01-01T00:00:00Z\', 0, 1)');
    copy.close();
    expect(await verifyChain(storage.audit, undefined, undefined, storage.auditIndex)).toMatchObject({
      ok: false,
      problem: 'AuditEvent/e2b is searchable but not in the chain (inserted behind its back)',
    });
    await storage.close();
  });
});

describe('moving a version-2 database\'s audit chain into audit.db', () => {
  it('copies the chain as it was (it still verifies), keeps the searchable events as the index (in audit-index.db), and drops the old tables', async () => {
    const dataDir = tempDir();
    // The chain as schema version 2 kept it: AuditEvent rows in resource_versions, linked by audit_log.
    const db = new DatabaseSync(join(dataDir, 'hearth.db'));
    db.exec(VERSION_4_SCHEMA);
    db.exec(`
      CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, rid INTEGER NOT NULL UNIQUE, id TEXT NOT NULL, recorded TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL) STRICT;
      CREATE TABLE audit_checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, signed_at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL) STRICT;
      CREATE TABLE audit_purges (through_seq INTEGER PRIMARY KEY, last_hash TEXT NOT NULL, cutoff TEXT NOT NULL, purged_at TEXT NOT NULL, count INTEGER NOT NULL) STRICT;
      CREATE TABLE audit_purge_window (through_seq INTEGER NOT NULL) STRICT;
      CREATE TRIGGER audit_event_append_only_u BEFORE UPDATE ON resource_versions WHEN OLD.type = 'AuditEvent' BEGIN SELECT RAISE(ABORT, 'AuditEvents are append-only'); END;
      PRAGMA user_version = 2;`);
    let prev = GENESIS;
    const events = ['a', 'b.attempt', 'b'].map((id, n) => ({ resourceType: 'AuditEvent', id, recorded: `2026-01-0${n + 1}T00:00:00.000Z`, action: 'R' }));
    for (const [n, e] of events.entries()) {
      const searchable = !e.id.endsWith('.attempt');
      const { rid } = db
        .prepare('INSERT INTO resource_versions (type, id, version, last_updated, deleted, current, body) VALUES (\'AuditEvent\', ?, 1, ?, 0, ?, ?) RETURNING rid')
        .get(e.id, e.recorded, searchable ? 1 : 0, canonicalJson(e)) as { rid: number };
      if (searchable) db.prepare('INSERT INTO search_index (rid, type, param, grp, code) VALUES (?, \'AuditEvent\', \'action\', 0, \'R\')').run(rid);
      const hash = linkHash(prev, n + 1, e);
      db.prepare('INSERT INTO audit_log (seq, rid, id, recorded, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)').run(n + 1, rid, e.id, e.recorded, prev, hash);
      prev = hash;
    }
    db.close();

    const storage = sqliteStorage({ dataDir });
    expect((await Array.fromAsync(storage.audit.chain())).map((l) => [l.seq, l.id])).toEqual([[1, 'a'], [2, 'b.attempt'], [3, 'b']]);
    expect((await storage.audit.head()).hash).toBe(prev);
    expect(await verifyChain(storage.audit, undefined, undefined, storage.auditIndex)).toMatchObject({ ok: true, events: 3 });
    expect((await storage.auditIndex.indexedThrough())).toBe(3);
    expect((await Array.fromAsync(storage.auditIndex.ids()))).toEqual(['a', 'b']);
    expect((await storage.resources.read('AuditEvent', 'b'))?.resource).toEqual(events[2]);
    expect((await storage.resources.search({ type: 'AuditEvent', where: [], sort: [], count: 10, total: 'accurate' })).total).toBe(2);
    await storage.close();
    const after = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    const tables = (after.prepare('SELECT name FROM sqlite_master WHERE type IN (\'table\', \'trigger\') AND name LIKE \'audit%\'').all() as { name: string }[]).map((r) => r.name);
    expect(tables).toEqual([]);
    expect(after.prepare('SELECT COUNT(*) AS n FROM resource_versions WHERE type = \'AuditEvent\'').get()).toEqual({ n: 0 });
    expect(after.prepare('PRAGMA user_version').get()).toEqual({ user_version: 6 });
    after.close();
    const copy = new DatabaseSync(join(dataDir, 'audit-index.db'), { readOnly: true });
    expect(copy.prepare('SELECT id, body FROM resource_versions ORDER BY id').all().map((r) => ({ ...r }))).toEqual([{ id: 'a', body: null }, { id: 'b', body: null }]);
    expect(copy.prepare('SELECT seq FROM audit_indexed').get()).toEqual({ seq: 3 });
    copy.close();
  });
});

describe('moving a version-3 database\'s audit index into audit-index.db', () => {
  const signingKeyOf = (dataDir: string) => loadPublicKey(join(dataDir, 'keys', 'audit-signing-key.pub.pem'));
  /** A data directory as version 3 left it: the searchable copy of the log (rows, index entries, mark) in hearth.db. */
  async function version3(): Promise<{ dataDir: string; ids: string[]; patient: string }> {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const created = await t.app.inject({ method: 'POST', url: '/fhir/Patient', payload: { resourceType: 'Patient', name: [{ family: 'Moved' }] } });
    const patient = json(created).id as string;
    await t.app.inject({ method: 'GET', url: `/fhir/Patient/${patient}` });
    await t.auditIndexed();
    await t.app.close();
    const db = new DatabaseSync(join(dataDir, 'hearth.db'));
    db.exec(`ATTACH DATABASE '${join(dataDir, 'audit-index.db')}' AS aix`);
    toVersion4Layout(db, 'main');
    toVersion4Layout(db, 'aix');
    db.exec(`BEGIN;
      CREATE TABLE audit_indexed (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL) STRICT;
      INSERT INTO audit_indexed SELECT * FROM aix.audit_indexed;
      INSERT INTO resource_versions (type, id, version, last_updated, deleted, current, body)
        SELECT type, id, version, last_updated, deleted, current, body FROM aix.resource_versions;
      INSERT INTO search_index (rid, type, param, grp, sys, code, text, lo, hi)
        SELECT (SELECT m.rid FROM main.resource_versions m WHERE m.type = 'AuditEvent' AND m.id = a.id), i.type, i.param, i.grp, i.sys, i.code, i.text, i.lo, i.hi
        FROM aix.search_index i JOIN aix.resource_versions a ON a.rid = i.rid;
      PRAGMA user_version = 3;
      COMMIT;`);
    const ids = (db.prepare('SELECT id FROM aix.resource_versions ORDER BY id').all() as { id: string }[]).map((r) => r.id);
    db.exec('DETACH DATABASE aix');
    db.close();
    for (const f of ['audit-index.db', 'audit-index.db-wal', 'audit-index.db-shm']) rmSync(join(dataDir, f), { force: true });
    return { dataDir, ids, patient };
  }

  it('moves the rows, their index entries and the mark; auditors find the same events at once, and hearth.db keeps none', async () => {
    const { dataDir, ids, patient } = await version3();
    expect(ids.length).toBe(2);
    const storage = sqliteStorage({ dataDir });
    // Nothing to index again: the mark came along.
    expect(await storage.auditIndex.indexedThrough()).toBe((await storage.audit.head()).seq);
    expect(await Array.fromAsync(storage.auditIndex.ids())).toEqual(ids);
    const byPatient = await storage.resources.search({
      type: 'AuditEvent',
      where: [{ kind: 'exists', param: 'entity', where: [{ field: 'code', op: 'eq', value: `Patient/${patient}` }] }],
      sort: [],
      count: 10,
      total: 'accurate',
    });
    expect(byPatient.total).toBe(2);
    expect(await verifyChain(storage.audit, signingKeyOf(dataDir), undefined, storage.auditIndex)).toMatchObject({ ok: true, events: 3 });
    await storage.close();
    const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    expect(db.prepare('SELECT COUNT(*) AS n FROM resource_versions WHERE type = \'AuditEvent\'').get()).toEqual({ n: 0 });
    const auditEntries = 'SELECT COUNT(*) AS n FROM search_index s JOIN search_params p ON p.pid = s.pid WHERE p.type = \'AuditEvent\'';
    expect(db.prepare(auditEntries).get()).toEqual({ n: 0 });
    expect(db.prepare('SELECT name FROM sqlite_master WHERE name = \'audit_indexed\'').get()).toBeUndefined();
    expect(db.prepare('PRAGMA user_version').get()).toEqual({ user_version: 6 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM resource_versions WHERE type = \'Patient\'').get()).toEqual({ n: 1 });
    // The search indexes, dropped for the bulk move, are there again in both files.
    const indexesOf = (d: DatabaseSync) => (d.prepare('SELECT name FROM sqlite_master WHERE tbl_name = \'search_index\' AND type = \'index\' ORDER BY name').all() as { name: string }[]).map((r) => r.name);
    expect(indexesOf(db)).toEqual(['search_code', 'search_range']);
    db.close();
    const copy = new DatabaseSync(join(dataDir, 'audit-index.db'), { readOnly: true });
    expect(indexesOf(copy)).toEqual(['search_code', 'search_range']);
    copy.close();
  });

  it('a move that fails is rolled back and stops the start with its own error; hearth.db stays at version 3', async () => {
    const { dataDir } = await version3();
    const copy = new DatabaseSync(join(dataDir, 'audit-index.db'));
    copy.exec(`CREATE TABLE resource_versions (rid INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
      last_updated TEXT NOT NULL, deleted INTEGER NOT NULL, current INTEGER NOT NULL, body TEXT, write_id TEXT, UNIQUE (type, id, version)) STRICT;
      CREATE TRIGGER refuse BEFORE INSERT ON resource_versions BEGIN SELECT RAISE(ABORT, 'the copy refuses rows'); END;`);
    copy.close();
    expect(() => sqliteStorage({ dataDir })).toThrow('the copy refuses rows');
    const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    expect(db.prepare('PRAGMA user_version').get()).toEqual({ user_version: 3 });
    expect((db.prepare('SELECT COUNT(*) AS n FROM resource_versions WHERE type = \'AuditEvent\'').get() as { n: number }).n).toBeGreaterThan(0);
    db.close();
  });

  it('a move that a crash left committed in audit-index.db only is done again, replacing what the copy holds', async () => {
    const { dataDir, ids } = await version3();
    // What the crash left: a copy (here, a stale one with a forged row) and hearth.db still at version 3.
    const stale = new DatabaseSync(join(dataDir, 'audit-index.db'));
    stale.exec(`CREATE TABLE resource_versions (rid INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
      last_updated TEXT NOT NULL, deleted INTEGER NOT NULL, current INTEGER NOT NULL, body TEXT, write_id TEXT, UNIQUE (type, id, version)) STRICT;
      INSERT INTO resource_versions (type, id, version, last_updated, deleted, current) VALUES ('AuditEvent', 'stale', 1, '2026-01-01T00:00:00Z', 0, 1);`);
    stale.close();
    const storage = sqliteStorage({ dataDir });
    expect(await Array.fromAsync(storage.auditIndex.ids())).toEqual(ids);
    expect(await verifyChain(storage.audit, signingKeyOf(dataDir), undefined, storage.auditIndex)).toMatchObject({ ok: true, events: 3 });
    await storage.close();
  });
});
