import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { create, ids, json, PLAIN, type TestApp, tempDir, testApp } from '../helpers/app.ts';
import { CANARIES, canaryObservation, canaryPatient } from '../helpers/canaries.ts';

const run = promisify(execFile);
const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const hearth = (dataDir: string, ...args: string[]) =>
  run(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: dataDir } }).then(
    (r) => ({ code: 0, ...r }),
    (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  );

describe('PHI canaries never rest in the clear', () => {
  it('written through the API, they are absent from the database file and its WAL, and read back whole', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const p = await create(t.app, canaryPatient);
    const o = await create(t.app, canaryObservation(p.id));
    await t.app.inject({ method: 'PUT', url: `/fhir/Patient/${p.id}`, headers: { 'content-type': 'application/fhir+json' }, payload: JSON.stringify({ ...p, gender: 'other' }) });
    // Searching by them leaves no trace in clear either: blind indexes, and a sealed audit query.
    const found = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?family=Zqcanaryfam&identifier=ZQMRN98765' }));
    expect(found.total).toBe(1);
    const b64 = Buffer.from('family=Zqcanaryfam&identifier=ZQMRN98765').toString('base64');
    const raw = () => ['hearth.db', 'hearth.db-wal'].map((f) => {
      try {
        return readFileSync(join(dataDir, f)).toString('latin1');
      } catch {
        return '';
      }
    }).join('');
    const walOpen = raw();
    expect(walOpen.length).toBeGreaterThan(10_000);
    for (const c of [...CANARIES, b64]) expect(walOpen, c).not.toContain(c);
    // the API still gives everything back
    const back = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` }));
    expect(back).toMatchObject({ name: canaryPatient.name, birthDate: '1933-03-03', identifier: canaryPatient.identifier, text: canaryPatient.text });
    const obs = json(await t.app.inject({ method: 'GET', url: `/fhir/Observation/${o.id}` }));
    expect(obs.component[0].valueQuantity.value).toBe(987.654);
    expect(obs.note[0].text).toBe('Zqnotetext');
    await t.app.close();
    const closed = raw();
    for (const c of [...CANARIES, b64]) expect(closed, c).not.toContain(c);
    // and it is genuinely there, encrypted: the envelope is in the file
    expect(closed).toContain('_hearthEnvelope');
  });

  it('an encrypted quantity is indexed by its presence alone: no value, no unit, no token that equal values share', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const p = await create(t.app, canaryPatient);
    const obs = (n: number) => create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${p.id}` }, valueQuantity: { value: n, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' } });
    const [a, b] = [await obs(7.25), await obs(7.25)];
    await t.app.close();
    const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    const rows = db.prepare(`SELECT v.id, p.param, s.grp, s.sys, s.code, s.text, s.lo, s.hi
      FROM search_index s JOIN search_params p ON p.pid = s.pid JOIN resource_versions v ON v.rid = s.rid
      WHERE v.type = 'Observation' AND p.param IN ('value-quantity', 'combo-value-quantity', 'code-value-quantity$1', 'combo-code-value-quantity$1') ORDER BY p.param`).all();
    db.close();
    // (the combo- parameters are answered by these entries: SearchParamDef.unionOf)
    const presence = (id: string) =>
      [['code-value-quantity$1', 1], ['value-quantity', 0]].map(([param, grp]) => (
        { id, param, grp, sys: null, code: null, text: null, lo: null, hi: null }
      ));
    const byId = (x: Record<string, unknown>, y: Record<string, unknown>) => String(x.id).localeCompare(String(y.id));
    expect(rows.map((r) => ({ ...r })).sort(byId)).toEqual([...presence(a.id), ...presence(b.id)].sort(byId));
    const again = await testApp({}, { dataDir });
    expect(json(await again.app.inject({ method: 'GET', url: '/fhir/Observation?value-quantity:missing=false&_total=accurate' })).total).toBe(2);
    expect(json(await again.app.inject({ method: 'GET', url: '/fhir/Observation?value-quantity:missing=true&_total=accurate' })).total).toBe(0);
    expect(json(await again.app.inject({ method: 'GET', url: '/fhir/Observation?combo-value-quantity:missing=false&_total=accurate' })).total).toBe(2);
    expect(json(await again.app.inject({ method: 'GET', url: '/fhir/Observation?combo-code-value-quantity:missing=true&_total=accurate' })).total).toBe(0);
    // Sorting by a union reads each of its parameters: encrypted, answered by decrypting the
    // candidates, or without decryption refused, named as asked.
    const sorted = await again.app.inject({ method: 'GET', url: '/fhir/Observation?_sort=combo-value-quantity' });
    expect(sorted.statusCode, sorted.body).toBe(200);
    expect(ids(json(sorted)).sort()).toEqual([a.id, b.id].sort());
    await again.app.close();
    const off = await testApp({ HEARTH_SEARCH_DECRYPT_BOUND: '0' }, { dataDir });
    const refused = await off.app.inject({ method: 'GET', url: '/fhir/Observation?_sort=combo-value-quantity' });
    expect(refused.statusCode).toBe(400);
    expect(json(refused).issue[0]).toMatchObject({ code: 'not-supported', diagnostics: 'cannot sort by combo-value-quantity: it reads elements encrypted at rest' });
  });
});

describe('tampering fails closed', () => {
  it('ciphertext swapped between records, or one flipped byte, gives a generic 500 recorded as a security failure', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const a = await create(t.app, { ...canaryPatient, name: [{ family: 'Aaaa' }] });
    const b = await create(t.app, { ...canaryPatient, name: [{ family: 'Bbbb' }] });
    const db = new DatabaseSync(join(dataDir, 'hearth.db'));
    const body = (id: string) => JSON.parse((db.prepare('SELECT body FROM resource_versions WHERE id = ? AND current = 1').get(id) as { body: string }).body);
    const setBody = (id: string, v: unknown) => db.prepare('UPDATE resource_versions SET body = ? WHERE id = ? AND current = 1').run(JSON.stringify(v), id);
    const bodyA = body(a.id);
    const bodyB = body(b.id);
    // B's sealed elements replaced by A's: another data key, and another id in their AAD
    setBody(b.id, { ...bodyB, _hearthEnvelope: { ...bodyB._hearthEnvelope, c: bodyA._hearthEnvelope.c } });
    const flipped = Buffer.from(bodyA._hearthEnvelope.c, 'base64');
    flipped[20] ^= 1;
    setBody(a.id, { ...bodyA, _hearthEnvelope: { ...bodyA._hearthEnvelope, c: flipped.toString('base64') } });
    const c = await create(t.app, { ...canaryPatient, name: [{ family: 'Cccc' }] });
    const bodyC = body(c.id);
    setBody(c.id, { ...bodyC, _hearthEnvelope: { ...bodyC._hearthEnvelope, dek: bodyA._hearthEnvelope.dek } });
    db.close();
    for (const id of [a.id, b.id, c.id]) {
      const res = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}` });
      expect(res.statusCode).toBe(500);
      expect(json(res).issue).toEqual([{ severity: 'error', code: 'exception', diagnostics: `internal server error; request id ${res.headers['x-request-id']}` }]);
      expect(res.body).not.toContain('Aaaa');
      await t.auditIndexed();
      const audit = await t.store.read('AuditEvent', res.headers['x-request-id'] as string);
      expect(audit?.resource).toMatchObject({ outcome: '8', outcomeDesc: '500 security' });
    }
    // searches that would return a damaged record fail closed too, never with partial data
    const search = await t.app.inject({ method: 'GET', url: '/fhir/Patient?gender=female' });
    expect(search.statusCode).toBe(500);
    expect(search.body).not.toContain('Aaaa');
  });
});

// See docs/encryption.md (envelope version 3).
describe('the versions of one transaction', () => {
  it('share one data key, wrapped once, each sealed under its own AAD; a rewrap keeps them sharing one wrapped key', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const patientUrl = 'urn:uuid:5d7c4c3e-8f0e-4c4a-9d1e-0a7b6c5d4e3f';
    const entry = [
      { fullUrl: patientUrl, request: { method: 'POST', url: 'Patient' }, resource: canaryPatient },
      ...[1, 2, 3].map(() => ({ request: { method: 'POST', url: 'Observation' }, resource: { ...canaryObservation('x'), subject: { reference: patientUrl } } })),
    ];
    const res = await t.app.inject({
      method: 'POST',
      url: '/fhir',
      headers: { 'content-type': 'application/fhir+json' },
      payload: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }),
    });
    expect(res.statusCode, res.body).toBe(200);
    const written: string[] = json(res).entry.map((e: { response: { location: string } }) => /(Patient|Observation)\/[^/]+/.exec(e.response.location)![0]);
    const single = await create(t.app, canaryObservation(written[0].split('/')[1]));
    await t.app.close();
    const stored = () => {
      const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
      const rows = db.prepare('SELECT type, id, body FROM resource_versions WHERE type IN (\'Patient\', \'Observation\')').all() as { type: string; id: string; body: string }[];
      db.close();
      for (const r of rows) for (const c of CANARIES) expect(r.body, c).not.toContain(c);
      return new Map(rows.map((r) => [`${r.type}/${r.id}`, JSON.parse(r.body)._hearthEnvelope]));
    };
    const before = stored();
    const [first, ...rest] = written.map((w) => before.get(w));
    expect(first).toMatchObject({ v: 3, kek: 'local:1' });
    for (const e of rest) expect(e).toMatchObject({ v: 3, kek: 'local:1', key: first.key, dek: first.dek });
    expect(new Set(written.map((w) => before.get(w).c)).size).toBe(4);
    // a single write has a data key of its own
    expect(before.get(`Observation/${single.id}`)).toMatchObject({ v: 2, kek: 'local:1' });
    expect(before.get(`Observation/${single.id}`).key).toBeUndefined();

    expect((await hearth(dataDir, 'keys', 'rotate')).code).toBe(0);
    expect((await hearth(dataDir, 'keys', 'rewrap')).stdout).toBe('re-wrapped the data keys of 5 resource versions under local:2\n');
    const after = stored();
    const rewrapped = written.map((w) => after.get(w));
    expect(new Set(rewrapped.map((e: { dek: string }) => e.dek)).size).toBe(1);
    expect(rewrapped[0]).toMatchObject({ v: 3, kek: 'local:2', key: first.key });
    expect(rewrapped[0].dek).not.toBe(first.dek);
    const again = await testApp({}, { dataDir });
    for (const w of written.slice(1)) {
      const o = json(await again.app.inject({ method: 'GET', url: `/fhir/${w}` }));
      expect([o.valueString, o.note[0].text, o.component[0].valueQuantity.value, o.subject.reference]).toEqual(['Zqvaluestring', 'Zqnotetext', 987.654, written[0]]);
    }
    expect(json(await again.app.inject({ method: 'GET', url: `/fhir/${written[0]}` })).name).toEqual(canaryPatient.name);
    await again.app.close();
  });
});

describe('keys', () => {
  it('rotate, rewrap while reads and writes continue with zero errors, then retire; everything still reads', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const made: string[] = [];
    for (let i = 0; i < 30; i++) made.push((await create(t.app, { ...canaryPatient, name: [{ family: `Rot${i}` }] })).id);
    let stop = false;
    const failures: string[] = [];
    const load = (async () => {
      let i = 0;
      while (!stop) {
        const w = await t.app.inject({ method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json' }, payload: JSON.stringify({ ...canaryPatient, name: [{ family: `Live${i}` }] }) });
        if (w.statusCode !== 201) failures.push(`write ${w.statusCode}`);
        else made.push(json(w).id);
        const r = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${made[i % made.length]}` });
        if (r.statusCode !== 200) failures.push(`read ${r.statusCode}`);
        const s = await t.app.inject({ method: 'GET', url: '/fhir/Patient?family=rot1&_count=3' });
        if (s.statusCode !== 200) failures.push(`search ${s.statusCode}`);
        i++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    expect((await hearth(dataDir, 'keys', 'rotate')).stdout).toContain('key version 2 is now current');
    const refused = await hearth(dataDir, 'keys', 'retire', '1');
    expect(refused.code).toBe(64);
    expect(refused.stderr).toMatch(/key version 1 still wraps the data keys of \d+ resource versions/);
    await new Promise((r) => setTimeout(r, 1200)); // the server picks up the new version
    const rewrap = await hearth(dataDir, 'keys', 'rewrap');
    expect(rewrap.code).toBe(0);
    expect(rewrap.stderr).toContain('100%');
    stop = true;
    await load;
    expect(failures).toEqual([]);
    await hearth(dataDir, 'keys', 'rewrap'); // resumable: catches anything written under version 1 meanwhile
    const retired = await hearth(dataDir, 'keys', 'retire', '1');
    expect(retired.stdout).toBe('key version 1 retired\n');
    expect((await hearth(dataDir, 'keys', 'list')).stdout).toBe('1 retired\n2 current\n');
    for (const id of made) expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${id}` })).statusCode).toBe(200);
    // old versions too
    const h = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/_history?_count=500` }));
    expect(h.entry.length).toBeGreaterThan(30);
    // every key change is in the audit trail, in order
    const changes = json(await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM|110137&_sort=date&_count=50' }));
    expect(changes.entry.map((e: any) => e.resource.entity[0].description.replace(/^re-wrapped the data keys of \d+/, 're-wrapped the data keys of N'))).toEqual([
      'key-encryption key version 2 created and made current',
      're-wrapped the data keys of N resource versions under local:2',
      're-wrapped the data keys of N resource versions under local:2',
      'key-encryption key version 1 retired',
    ]);
  });

  it('refuses a keyring others can read, and a missing keyring when data exists', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    await create(t.app, canaryPatient);
    await t.app.close();
    const ring = join(dataDir, 'keys', 'keyring.json');
    chmodSync(ring, 0o644);
    await expect(testApp({}, { dataDir })).rejects.toThrow(/HEARTH_KEYRING_FILE: keyring .* is readable by others \(mode 644\); chmod 600 it/);
    rmSync(ring);
    await expect(testApp({}, { dataDir })).rejects.toThrow(/is missing but encrypted data exists/);
  });

  it('takes the keyring from HEARTH_KEYRING instead of a file', async () => {
    const kek = Buffer.alloc(32, 7).toString('base64');
    const keyring = JSON.stringify({ version: 1, current: 1, keks: { 1: kek }, retired: [], index: Buffer.alloc(32, 9).toString('base64') });
    const t = await testApp({ HEARTH_KEYRING: keyring });
    const p = await create(t.app, canaryPatient);
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` })).statusCode).toBe(200);
  });
});

describe('short values through the blind index (no decryption at all)', () => {
  const legacyKeyring = JSON.stringify({ version: 1, current: 1, keks: { 1: Buffer.alloc(32, 7).toString('base64') }, retired: [], index: Buffer.alloc(32, 9).toString('base64') });
  const people = [
    { name: [{ family: 'Chalmers', given: ['Al'] }], address: [{ state: 'IL' }] },
    { name: [{ family: 'Li', given: ['Anna'] }], address: [{ state: 'Illinois' }] },
    { name: [{ family: 'Ng', given: ['A'] }], address: [{ state: 'NY' }] },
    { name: [{ family: 'Müller' }], address: [{ state: 'il' }] },
  ];
  const load = async (t: TestApp) => {
    const made: string[] = [];
    for (const p of people) made.push((await create(t.app, { resourceType: 'Patient', ...p })).id);
    return made;
  };

  it.each([
    ['address-state=Il', [0, 1, 3]],
    ['address-state=IL', [0, 1, 3]],
    ['address-state=ny', [2]],
    ['address-state:exact=IL', [0]],
    ['address-state=n', [2]],
    ['family=l', [1]],
    ['family=mu', [3]],
    ['given=a', [0, 1, 2]],
    ['given:exact=A', [2]],
    ['phonetic=l', [1]],
    ['phonetic:exact=Ng', [2]],
    ['name=a', [0, 1, 2]],
    ['name=mü', [3]],
    ['name:exact=Li', [1]],
    ['address=il', [0, 1, 3]],
  ] as const)('Patient?%s is answered by the index with decryption off: the same as a plain store', async (q, expected) => {
    const plain = await testApp(PLAIN);
    const sealed = await testApp({ HEARTH_SEARCH_DECRYPT_BOUND: '0' });
    const [a, b] = [await load(plain), await load(sealed)];
    const pa = json(await plain.app.inject({ method: 'GET', url: `/fhir/Patient?${q}` }));
    const res = await sealed.app.inject({ method: 'GET', url: `/fhir/Patient?${q}` });
    expect(res.statusCode, res.body).toBe(200);
    expect(ids(pa).sort()).toEqual(expected.map((i) => a[i]).sort());
    expect(ids(json(res)).sort()).toEqual(expected.map((i) => b[i]).sort());
  });

  it(':exact of a value longer than the indexed prefixes: found by its first 24 characters and its exact hash, without decryption', async () => {
    const sealed = await testApp({ HEARTH_SEARCH_DECRYPT_BOUND: '0' });
    const family = 'Featherstonehaugh-Cholmondeley'; // 30 characters
    const [long, other] = [await create(sealed.app, { resourceType: 'Patient', name: [{ family }] }), await create(sealed.app, { resourceType: 'Patient', name: [{ family: `${family.slice(0, 28)}XY` }] })];
    const find = async (q: string) => {
      const res = await sealed.app.inject({ method: 'GET', url: `/fhir/Patient?${q}` });
      expect(res.statusCode, res.body).toBe(200);
      return ids(json(res)).sort();
    };
    expect(await find(`family:exact=${family}`)).toEqual([long.id]);
    expect(await find(`name:exact=${family.slice(0, 28)}XY`)).toEqual([other.id]);
    expect(await find(`family:exact=${family.toUpperCase()}`)).toEqual([]);
    expect(await find(`family:exact=${family.slice(0, 24)}`)).toEqual([]);
  });

  it('phonetic and name are answered by family\'s and given\'s blind entries: none of their own reach the store', async () => {
    const dataDir = tempDir();
    const t = await testApp({ HEARTH_SEARCH_DECRYPT_BOUND: '0' }, { dataDir });
    const made = await load(t);
    const res = await t.app.inject({ method: 'GET', url: '/fhir/Patient?phonetic=chal&_sort=phonetic' });
    expect(res.statusCode, res.body).toBe(400);
    expect(json(res).issue[0]).toMatchObject({ code: 'not-supported', diagnostics: 'cannot sort by phonetic: it reads elements encrypted at rest' });
    expect(ids(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?phonetic=chal' })))).toEqual([made[0]]);
    expect(ids(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?phonetic:missing=true' })))).toEqual([]);
    expect(ids(json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?phonetic:missing=false' }))).sort()).toEqual([...made].sort());
    await t.app.close();
    const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    const count = (param: string) => (db.prepare('SELECT COUNT(*) AS n FROM search_index s JOIN search_params p ON p.pid = s.pid WHERE p.type = \'Patient\' AND p.param = ?').get(param) as { n: number }).n;
    // These names have no part but family and given, whose parameters hold them: prefixes of
    // Chalmers, Li, Ng, Müller (8, 2, 2, 6) and Al, Anna, A (2, 4, 1), and each one's :exact hash, once.
    expect([count('name'), count('phonetic'), count('family'), count('given')]).toEqual([0, 0, 18 + 4, 7 + 3]);
    db.close();
  });

  it('a keyring made before short prefixes were indexed keeps its 3-character index: shorter searches are decrypted, or refused without decryption', async () => {
    const old = await testApp({ HEARTH_KEYRING: legacyKeyring });
    const made = await load(old);
    const res = await old.app.inject({ method: 'GET', url: '/fhir/Patient?address-state=Il' });
    expect(res.statusCode, res.body).toBe(200);
    expect(ids(json(res)).sort()).toEqual([made[0], made[1], made[3]].sort());
    const off = await testApp({ HEARTH_KEYRING: legacyKeyring, HEARTH_SEARCH_DECRYPT_BOUND: '0' });
    const refused = await off.app.inject({ method: 'GET', url: '/fhir/Patient?family=ch' });
    expect(refused.statusCode).toBe(400);
    expect(json(refused).issue[0]).toMatchObject({ code: 'not-supported', diagnostics: 'family: a search of an encrypted element needs at least 3 characters' });
    // A parameter answered by another's entries is named as it was asked.
    const phonetic = await off.app.inject({ method: 'GET', url: '/fhir/Patient?phonetic=ch' });
    expect(json(phonetic).issue[0]).toMatchObject({ code: 'not-supported', diagnostics: 'phonetic: a search of an encrypted element needs at least 3 characters' });
    const metadata = json(await off.app.inject({ method: 'GET', url: '/fhir/metadata' }));
    const family = metadata.rest[0].resource.find((r: any) => r.type === 'Patient').searchParam.find((p: any) => p.name === 'family');
    expect(family.documentation).toContain('a prefix of 3 to 24 characters');
    await expect(testApp({ HEARTH_KEYRING: legacyKeyring.replace('"version":1', '"version":1,"prefixFrom":7') })).rejects.toThrow(/prefixFrom must be an integer from 1 to 3/);
  });
});

describe('searching encrypted elements', () => {
  let plain: TestApp;
  let sealed: TestApp;
  const idmap = new Map<string, string>(); // sealed id → plain id
  beforeAll(async () => {
    plain = await testApp(PLAIN);
    sealed = await testApp();
    const people = [
      { identifier: [{ system: 'urn:mrn', value: 'M1' }], name: [{ family: 'Chalmers', given: ['Peter'] }], birthDate: '1974-12-25', telecom: [{ system: 'email', value: 'p@x.org' }], address: [{ city: 'Pleasantville', postalCode: '3999' }] },
      { identifier: [{ system: 'urn:mrn', value: 'M2' }], name: [{ family: 'Müller', given: ['Anna'] }], birthDate: '1985-06', telecom: [{ system: 'phone', value: '555-1' }] },
      { identifier: [{ system: 'urn:other', value: 'M1' }], name: [{ family: 'Chalmerson', given: ['Al'] }], birthDate: '1974' },
    ];
    for (const p of people) {
      const a = await create(plain.app, { resourceType: 'Patient', ...p });
      const b = await create(sealed.app, { resourceType: 'Patient', ...p });
      idmap.set(b.id, a.id);
      const obs = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/ID' }, valueCodeableConcept: { coding: [{ system: 'urn:sct', code: p.identifier[0].value }] }, valueString: undefined };
      const oa = await create(plain.app, { ...obs, subject: { reference: `Patient/${a.id}` } });
      const ob = await create(sealed.app, { ...obs, subject: { reference: `Patient/${b.id}` } });
      idmap.set(ob.id, oa.id);
    }
  });

  it.each([
    'Patient?family=chal',
    'Patient?family=CHALMERS',
    'Patient?family=chalmerso',
    'Patient?name=mul',
    'Patient?given=pet',
    'Patient?family:exact=Chalmers',
    'Patient?family:exact=chalmers',
    'Patient?identifier=M1',
    'Patient?identifier=urn:mrn|M1',
    'Patient?identifier=urn:mrn|',
    'Patient?identifier:not=M1',
    'Patient?identifier:missing=true',
    'Patient?birthdate=1974',
    'Patient?birthdate=1974-12',
    'Patient?birthdate=1974-12-25',
    'Patient?birthdate=1985-06',
    'Patient?birthdate=1985',
    'Patient?email=p@x.org',
    'Patient?phone=555-1',
    'Patient?address-postalcode=3999',
    'Patient?address-city=pleas',
    'Patient?address=pleasantville',
    'Observation?value-concept=urn:sct|M2',
    'Observation?patient.family=chal',
    'Observation?subject:Patient.identifier=urn:mrn|M2',
  ])('%s gives the same results as the plain store', async (q) => {
    const a = json(await plain.app.inject({ method: 'GET', url: `/fhir/${q}` }));
    const res = await sealed.app.inject({ method: 'GET', url: `/fhir/${q}` });
    expect(res.statusCode, res.body).toBe(200);
    const b = json(res);
    expect(ids(b).map((id) => idmap.get(id)).sort()).toEqual(ids(a).sort());
    // every form finds something, but the two that must find nothing
    if (!q.endsWith(':exact=chalmers') && !q.endsWith(':missing=true')) expect(ids(a).length, q).toBeGreaterThan(0);
  });

  // Beyond the blind indexes, with bounded decryption off (HEARTH_SEARCH_DECRYPT_BOUND=0): refused.
  it.each([
    ['Patient?family=chalmerschalmerschalmerschalmers', 'family: a search of an encrypted element is indexed up to 24 characters'],
    ['Patient?family:contains=alm', 'Supported: a prefix of 1 to 24 characters or a whole value, :exact, :missing'],
    ['Patient?birthdate=gt1980', 'Supported: a whole year, month or day'],
    ['Patient?birthdate=1974-12-25T10:00:00Z', 'Supported: a whole year, month or day'],
    ['Patient?birthdate=ap1974', 'encrypted at rest'],
    ['Patient?identifier:text=mrn', 'Supported: code, system|code'],
    ['Patient?_sort=family', 'cannot sort by family'],
    ['Patient?_sort=-birthdate', 'cannot sort by birthdate'],
    ['Observation?value-quantity=5', 'Supported: :missing only'],
    ['Observation?component-value-quantity=gt1', 'Supported: :missing only'],
    ['Observation?code-value-quantity=x$5', 'Supported: :missing only'],
    ['Observation?value-string:contains=abc', 'encrypted at rest'],
    ['Observation?patient.birthdate=lt2000', 'encrypted at rest'],
  ])('%s → 400: %s', async (q, message) => {
    const noDecrypting = await testApp({ HEARTH_SEARCH_DECRYPT_BOUND: '0' });
    const res = await noDecrypting.app.inject({ method: 'GET', url: `/fhir/${q}` });
    expect(res.statusCode).toBe(400);
    expect(json(res).issue[0].code).toBe('not-supported');
    expect(json(res).issue[0].diagnostics).toContain(message);
  });

  // With bounded decryption (the default): the same searches, answered exactly as the plain store
  // answers them — same resources, same order — by decrypting the few candidates.
  it.each([
    'Patient?family=ch',
    'Patient?family:contains=alm',
    'Patient?birthdate=gt1980',
    'Patient?birthdate=lt1980-01-01&_sort=-birthdate',
    'Patient?birthdate=ge1974-12-25',
    'Patient?_sort=family',
    'Patient?_sort=-birthdate,family',
    'Patient?_sort=given&_count=1',
    'Patient?identifier:text=mrn',
    'Observation?patient.birthdate=lt2000',
    'Observation?patient.birthdate=lt1980&_sort=-_lastUpdated',
  ])('%s is answered by bounded decryption, as the plain store answers it', async (q) => {
    const a = json(await plain.app.inject({ method: 'GET', url: `/fhir/${q}&_total=accurate` }));
    const res = await sealed.app.inject({ method: 'GET', url: `/fhir/${q}&_total=accurate` });
    expect(res.statusCode, res.body).toBe(200);
    const b = json(res);
    // (without _sort the order is by id, and the two stores' ids differ: the same set)
    const order = (list: (string | undefined)[]) => (q.includes('_sort') ? list : [...list].sort());
    expect(order(ids(b).map((id) => idmap.get(id)))).toEqual(order(ids(a)));
    expect(b.total).toBe(a.total);
  });

  it('pages a decrypted search with the same next links as any search', async () => {
    const walk = async (app: TestApp, map: (id: string) => string | undefined) => {
      const seen: (string | undefined)[] = [];
      let url: string | undefined = '/fhir/Patient?_sort=family&_count=1';
      while (url) {
        const b = json(await app.app.inject({ method: 'GET', url }));
        seen.push(...ids(b).map(map));
        url = b.link.find((l: any) => l.relation === 'next')?.url.replace(/^https?:\/\/[^/]+/, '');
      }
      return seen;
    };
    expect(await walk(sealed, (id) => idmap.get(id))).toEqual(await walk(plain, (id) => id));
  });

  it('answers "this patient\'s HbA1c above 7" and "men born before 1970" over encrypted values, for a patient token too', async () => {
    const t = await testApp();
    const man = (await create(t.app, { resourceType: 'Patient', gender: 'male', birthDate: '1960-02-03' })).id;
    await create(t.app, { resourceType: 'Patient', gender: 'male', birthDate: '1975-02-03' });
    await create(t.app, { resourceType: 'Patient', gender: 'female', birthDate: '1950-02-03' });
    const a1c = (value: number, subject = man) =>
      create(t.app, { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] }, subject: { reference: `Patient/${subject}` }, valueQuantity: { value, unit: '%' } });
    const high = (await a1c(7.4)).id;
    await a1c(6.1);
    await a1c(7.0);
    const found = async (url: string, headers: Record<string, string> = {}) => {
      const r = await t.app.inject({ method: 'GET', url, headers });
      expect(r.statusCode, r.body).toBe(200);
      return ids(json(r));
    };
    expect(await found(`/fhir/Observation?subject=Patient/${man}&code=http://loinc.org|4548-4&value-quantity=gt7`)).toEqual([high]);
    expect(await found('/fhir/Patient?birthdate=lt1970-01-01&gender=male&_count=5')).toEqual([man]);
    const patientToken = await t.token({ sub: 'pt', patient: man, scope: 'patient/*.rs' });
    expect(await found('/fhir/Observation?value-quantity=gt7', { authorization: `Bearer ${patientToken}` })).toEqual([high]);
  });

  it('over the bound, a 400 names the limit and what would narrow the search; nothing is decrypted for it', async () => {
    const small = await testApp({ HEARTH_SEARCH_DECRYPT_BOUND: '2' });
    for (let i = 0; i < 3; i++) await create(small.app, { resourceType: 'Patient', name: [{ family: `Fam${i}` }], birthDate: '1970-01-01' });
    const res = await small.app.inject({ method: 'GET', url: '/fhir/Patient?birthdate=lt1980' });
    expect(res.statusCode).toBe(400);
    expect(json(res).issue[0]).toMatchObject({ code: 'too-costly' });
    expect(json(res).issue[0].diagnostics).toMatch(/more than 2 Patient resources to decrypt \(HEARTH_SEARCH_DECRYPT_BOUND\): narrow it with a patient or subject/);
    // Narrowed by a clause the indexes answer, it is answered.
    const narrowed = json(await small.app.inject({ method: 'GET', url: '/fhir/Patient?birthdate=lt1980&family=fam1' }));
    expect(narrowed.total ?? narrowed.entry.length).toBe(1);
  });
});
