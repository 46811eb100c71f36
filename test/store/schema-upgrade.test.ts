import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { openAuditIndex } from '../../src/store/sqlite/sqlite-storage.ts';
import { create, json, tempDir, type TestApp, testApp } from '../helpers/app.ts';
import { toVersion4Layout, toVersion5Layout } from '../helpers/legacy-schema.ts';

// Schema versions 5 and 6 changed the search index's layout (sqlite-schema.ts): a data directory
// of version 4 or 5 is converted at start, both hearth.db and audit-index.db, and searches answer
// as before.

/** Every index entry of a file, with its type, parameter and system by name, in a stable order. */
function entries(path: string): unknown[] {
  const db = new DatabaseSync(path, { readOnly: true });
  const columns = db.prepare('PRAGMA table_info(search_index)').all() as { name: string; type: string }[];
  const v4 = columns.some((c) => c.name === 'param');
  const v6 = columns.some((c) => c.name === 'sys' && c.type === 'INTEGER');
  const from = `search_index s${v4 ? '' : ' JOIN search_params p ON p.pid = s.pid'}${v6 ? ' LEFT JOIN search_systems y ON y.sid = s.sys' : ''}`;
  const rows = db
    .prepare(`SELECT s.rid, ${v4 ? 's' : 'p'}.type, ${v4 ? 's' : 'p'}.param, s.grp, ${v6 ? 'y' : 's'}.sys, s.code, s.text, s.lo, s.hi FROM ${from}`)
    .all()
    .map((r) => JSON.stringify({ ...r }))
    .sort();
  db.close();
  return rows;
}

function layout(path: string): { version: number; sql: string; indexes: string[] } {
  const db = new DatabaseSync(path, { readOnly: true });
  const { user_version: version } = db.prepare('PRAGMA user_version').get() as { user_version: number };
  const { sql } = db.prepare('SELECT sql FROM sqlite_master WHERE name = \'search_index\'').get() as { sql: string };
  const indexes = (db.prepare('SELECT name FROM sqlite_master WHERE tbl_name = \'search_index\' AND type = \'index\' ORDER BY name').all() as { name: string }[]).map(
    (r) => r.name,
  );
  db.close();
  return { version, sql, indexes };
}

const ids = (bundle: { entry?: { resource: { id: string } }[] }) => (bundle.entry ?? []).map((e) => e.resource.id);

const toLayout = { 4: toVersion4Layout, 5: toVersion5Layout };

describe('an older data directory\'s search index, converted to version 6 at start', () => {
  it.each([4, 5] as const)('from version %i: keeps every entry of both files, answers the same searches, and goes on indexing', async (version) => {
    const dataDir = tempDir();
    let t: TestApp = await testApp({}, { dataDir });
    const patient = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Upgrade', given: ['Ada'] }], gender: 'female', birthDate: '1970-02-03' });
    const other = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Other' }], gender: 'male' });
    const obs = (value: number, day: string) =>
      create(t.app, {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: `Patient/${patient.id}` },
        effectiveDateTime: `2026-01-${day}`,
        valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      });
    const observations = [await obs(61, '03'), await obs(72, '01'), await obs(90, '02')];
    await t.app.inject({ method: 'GET', url: `/fhir/Patient/${patient.id}` });
    const searches = [
      '/fhir/Patient?family=upgr',
      '/fhir/Patient?gender=male',
      '/fhir/Patient?birthdate=lt1980',
      `/fhir/Observation?subject=Patient/${patient.id}&_sort=-date`,
      `/fhir/Observation?subject=Patient/${patient.id}&date=ge2026-01-02&code=http://loinc.org|8867-4&_sort=date`,
      '/fhir/Observation?code-value-quantity=http://loinc.org|8867-4$gt70&_sort=date',
      '/fhir/Observation?subject.gender=female&_sort=date',
      `/fhir/AuditEvent?entity=Patient/${patient.id}&action=R`,
      `/fhir/AuditEvent?entity=Patient/${other.id}&_sort=date`,
      '/fhir/AuditEvent?action=C&date=ge2026-01-01&_count=50',
    ];
    const answer = async () => {
      const out: string[][] = [];
      for (const url of searches) {
        const res = await t.app.inject({ method: 'GET', url });
        expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
        out.push(ids(json(res)));
      }
      return out;
    };
    await t.auditIndexed();
    const before = await answer();
    // (the searches are the same as before only if they found something to begin with)
    expect(before.slice(0, 7)).toEqual([
      [patient.id],
      [other.id],
      [patient.id],
      [observations[0].id, observations[2].id, observations[1].id],
      [observations[2].id, observations[0].id],
      [observations[1].id, observations[2].id],
      [observations[1].id, observations[2].id, observations[0].id],
    ]);
    expect(before.slice(7).every((found) => found.length > 0)).toBe(true);
    await t.auditIndexed();
    await t.app.close();

    const files = [join(dataDir, 'hearth.db'), join(dataDir, 'audit-index.db')];
    const kept = files.map(entries);
    const db = new DatabaseSync(files[0]);
    db.exec(`ATTACH DATABASE '${files[1]}' AS aix`);
    toLayout[version](db, 'main');
    toLayout[version](db, 'aix');
    db.exec(`PRAGMA main.user_version = ${version}`);
    if (version === 4) expect(db.prepare('SELECT COUNT(*) AS n FROM aix.sqlite_master WHERE name IN (\'resource_current\', \'resource_history\')').get()).toEqual({ n: 2 });
    db.close();
    const old = files.map(entries);
    const events = new DatabaseSync(files[1], { readOnly: true });
    const { n: eventCount } = events.prepare('SELECT COUNT(*) AS n FROM resource_versions').get() as { n: number };
    events.close();
    expect(eventCount).toBeGreaterThan(10);
    if (version === 4) {
      // Version 4 kept an `_id` entry for each resource, which version 5 answers from the row.
      const ofId = (all: unknown[]) => all.filter((e) => JSON.parse(e as string).param === '_id').length;
      expect(old.map(ofId)).toEqual([5, eventCount]);
      expect(old.map((all, k) => all.length - kept[k].length)).toEqual([5, eventCount]);
      expect(layout(files[0]).indexes).toEqual(['search_code', 'search_range', 'search_rid']);
    } else {
      expect(old).toEqual(kept);
      expect(layout(files[0]).sql).toMatch(/sys TEXT,/);
    }

    t = await testApp({}, { dataDir });
    for (const file of files) {
      const l = layout(file);
      expect(l.sql).toMatch(/pid INTEGER NOT NULL,[\s\S]*sys INTEGER,[\s\S]*PRIMARY KEY \(rid, pid, n\)\n\) STRICT, WITHOUT ROWID$/);
      expect(l.indexes).toEqual(['search_code', 'search_range']);
    }
    expect(layout(files[0]).version).toBe(6);
    // Each file's systems, once each in its dictionary: LOINC in hearth.db (the value's unit
    // system is behind its blind index); the event type and interaction codes, the server and
    // the token issuer in audit-index.db.
    const systems = (file: string) => {
      const d = new DatabaseSync(file, { readOnly: true });
      const rows = d.prepare('SELECT sys FROM search_systems ORDER BY sys').all().map((r) => (r as { sys: string }).sys);
      d.close();
      return rows;
    };
    expect(systems(files[0])).toEqual(['http://loinc.org']);
    expect(systems(files[1])).toEqual([
      'http://hl7.org/fhir/restful-interaction',
      'http://terminology.hl7.org/CodeSystem/audit-event-type',
      'https://issuer.test/realms/hearth',
      'urn:hearth:server',
    ]);
    // audit-index.db holds only current versions: (type, id, version) serves what resource_current
    // would; and its events have no history, their purge goes by their `date` entries.
    const versionIndexes = (file: string) => {
      const d = new DatabaseSync(file, { readOnly: true });
      const names = d.prepare('SELECT name FROM sqlite_master WHERE type = \'index\' AND tbl_name = \'resource_versions\' ORDER BY name').all();
      d.close();
      return names.map((r) => (r as { name: string }).name);
    };
    expect(files.map(versionIndexes)).toEqual([
      ['resource_current', 'resource_history', 'resource_write', 'sqlite_autoindex_resource_versions_1'],
      ['sqlite_autoindex_resource_versions_1'],
    ]);
    expect(files.map(entries)).toEqual(kept);
    // The events of the searches above are indexed on top of the converted copy.
    await t.auditIndexed();
    const after = await answer();
    expect(after.slice(0, 7)).toEqual(before.slice(0, 7));
    // Auditors see the same events, and now those of the searches just made as well.
    expect(after.slice(7).map((found, n) => before[n + 7].every((id) => found.includes(id)))).toEqual([true, true, true]);
    const third = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Upgraded' }], gender: 'male' });
    expect(ids(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?gender=male&_sort=family' })))).toEqual([other.id, third.id]);
    await t.auditIndexed();
    expect(json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?entity=Patient/${third.id}&action=C` })).total).toBe(1);
    await t.app.close();
  });

  it.each([4, 5] as const)('from version %i: the indexer thread\'s connection converts audit-index.db when it opens the file first', async (version) => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    await t.auditIndexed();
    await t.app.close();
    const file = join(dataDir, 'audit-index.db');
    const kept = entries(file);
    expect(kept.length).toBeGreaterThan(0);
    const db = new DatabaseSync(file);
    toLayout[version](db);
    db.close();
    const copy = openAuditIndex(file);
    copy.close();
    expect(layout(file).indexes).toEqual(['search_code', 'search_range']);
    expect(entries(file)).toEqual(kept);
  });
});
