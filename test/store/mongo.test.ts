import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from 'fhir/r4.js';
import { verifyChain } from '../../src/audit/chain.ts';
import { loadConfig } from '../../src/config/config.ts';
import { openStorage } from '../../src/store/open.ts';
import { COLLECTIONS } from '../../src/store/mongo/mongo-schema.ts';
import { mongoStorage } from '../../src/store/mongo/mongo-storage.ts';
import { create, FHIR_JSON, json, PLAIN, testApp } from '../helpers/app.ts';
import { CANARIES, canaryObservation, canaryPatient } from '../helpers/canaries.ts';
import { mongoTestStorage, startWireServer, testMongo, withDatabase } from '../helpers/mongo.ts';
import { startServer, stopServer } from '../helpers/server.ts';

/** Every document of every collection of the database, as stored (no driver decoding beyond BSON). */
async function rawDocuments(uri: string): Promise<string> {
  const client = new MongoClient(uri);
  try {
    const db = client.db();
    const all: unknown[] = [];
    for (const name of Object.values(COLLECTIONS)) all.push(...(await db.collection(name).find().toArray()));
    return JSON.stringify(all);
  } finally {
    await client.close();
  }
}

describe('MongoDB: only ciphertext and blind indexes reach the database', () => {
  it('holds no plaintext of any protected element, in any collection, after writes, searches and reads through the API', async () => {
    const t = await testApp({}, { mongodb: true });
    const p = await create(t.app, canaryPatient);
    await create(t.app, canaryObservation(p.id));
    const put = await t.app.inject({ method: 'PUT', url: `/fhir/Patient/${p.id}`, headers: { 'content-type': FHIR_JSON }, payload: JSON.stringify({ ...p, gender: 'other' }) });
    expect(put.statusCode).toBe(200);
    const found = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?family=Zqcanaryfam&identifier=ZQMRN98765' }));
    expect(found.total).toBe(1);
    await t.auditIndexed();
    const uri = (t.storage as unknown as { uri: string }).uri;
    const raw = await rawDocuments(uri);
    // It is all there: two Patient versions, the Observation, their audit trail.
    expect(raw).toContain('_hearthEnvelope');
    expect(raw).toContain(`Patient/${p.id}/2`);
    const b64 = Buffer.from('family=Zqcanaryfam&identifier=ZQMRN98765').toString('base64');
    for (const c of [...CANARIES, b64]) expect(raw, c).not.toContain(c);
    const back = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` }));
    expect(back).toMatchObject({ name: canaryPatient.name, birthDate: '1933-03-03', gender: 'other' });
  });
});

describe('MongoDB: races are decided by the database', () => {
  it('two concurrent If-Match updates of one version: exactly one wins, the other is 412, and one version 2 is stored', async () => {
    const t = await testApp(PLAIN, { mongodb: true });
    for (let round = 0; round < 5; round++) {
      const p = await create(t.app, { resourceType: 'Patient', gender: 'female' });
      const update = (gender: string) =>
        t.app.inject({
          method: 'PUT',
          url: `/fhir/Patient/${p.id}`,
          headers: { 'content-type': FHIR_JSON, 'if-match': 'W/"1"' },
          payload: JSON.stringify({ resourceType: 'Patient', id: p.id, gender }),
        });
      const answers = await Promise.all([update('male'), update('other')]);
      expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 412]);
      expect(json(answers.find((a) => a.statusCode === 412)!).issue[0].code).toBe('conflict');
      const winner = json(answers.find((a) => a.statusCode === 200)!).gender;
      const history = json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}/_history` }));
      expect(history.entry.map((e: any) => e.resource?.meta.versionId)).toEqual(['2', '1']);
      expect(json(await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` })).gender).toBe(winner);
    }
  });

  it('concurrent conditional creates with the same criteria store one resource', async () => {
    const t = await testApp(PLAIN, { mongodb: true });
    const attempt = () =>
      t.app.inject({
        method: 'POST',
        url: '/fhir/Patient',
        headers: { 'content-type': FHIR_JSON, 'if-none-exist': 'identifier=urn:mrn|RACE-1' },
        payload: JSON.stringify({ resourceType: 'Patient', identifier: [{ system: 'urn:mrn', value: 'RACE-1' }] }),
      });
    const answers = await Promise.all(Array.from({ length: 8 }, attempt));
    expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    const found = json(await t.app.inject({ method: 'GET', url: '/fhir/Patient?identifier=urn:mrn|RACE-1' }));
    expect(found.total).toBe(1);
    // After it is gone, the same criteria may create again.
    await t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${found.entry[0].resource.id}` });
    expect((await attempt()).statusCode).toBe(201);
  });
});

const kat = (n: number, who: string): AuditEvent => ({
  resourceType: 'AuditEvent',
  id: `${who}-${n}`,
  recorded: '2026-01-01T00:00:00.000Z',
  type: { code: 'rest' },
  agent: [{ requestor: true, name: who }],
  source: { observer: { display: who } },
});

describe('MongoDB: several Hearth instances', () => {
  // Across instances the database alone decides (write conflicts under snapshot isolation). The
  // wire-protocol test server does not detect conflicting updates in concurrent transactions, so
  // this runs against a real replica set only (HEARTH_TEST_MONGODB_URI).
  it.runIf(process.env.HEARTH_TEST_MONGODB_URI !== undefined)('two instances updating one version at once: one wins, the other is a version conflict', async () => {
    const a = await mongoTestStorage();
    const b = await mongoTestStorage(undefined, new URL(a.uri).pathname.slice(1));
    try {
      const prep = (v: { id: string; versionId: number }) => ({ resource: { resourceType: 'Patient', id: v.id, meta: { versionId: String(v.versionId) } }, index: [] });
      for (let round = 0; round < 10; round++) {
        const w = await a.resources.create('Patient', prep);
        const r = await Promise.allSettled([a, b].map((s) => s.resources.update('Patient', { id: w.version.id }, prep, { ifMatch: 1, allowCreate: false })));
        expect(r.map((x) => x.status).sort()).toEqual(['fulfilled', 'rejected']);
        expect((await a.resources.read('Patient', w.version.id))?.versionId).toBe(2);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two instances appending to the audit log at once build one linear chain that verifies, every event in it once', async () => {
    const a = await mongoTestStorage();
    const database = new URL(a.uri).pathname.slice(1);
    const b = await mongoTestStorage(undefined, database);
    try {
      const batches = (s: typeof a, who: string) =>
        Promise.all(Array.from({ length: 12 }, (_, k) => s.audit.appendAudit([0, 1, 2].map((i) => ({ resource: kat(k * 3 + i, who) })))));
      await Promise.all([batches(a, 'a'), batches(b, 'b')]);
      const chain = await Array.fromAsync(a.audit.chain());
      expect(chain.map((l) => l.seq)).toEqual(Array.from({ length: 72 }, (_, i) => i + 1));
      expect(new Set(chain.map((l) => l.id)).size).toBe(72);
      expect(await verifyChain(b.audit, undefined)).toMatchObject({ ok: true, events: 72 });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('MongoDB: the deployment is checked at start', () => {
  // Started when the suite runs (not when it is collected): a filtered run that skips it starts none.
  let standalone: ReturnType<typeof startWireServer>;
  beforeAll(() => {
    standalone = startWireServer(true);
  });
  afterAll(async () => (await standalone).stop());

  it('refuses a standalone server unless told it is for development, and names the setting', async () => {
    const uri = withDatabase((await standalone).uri);
    await expect(mongoStorage({ uri, requireReplicaSet: true })).rejects.toThrow(
      /HEARTH_MONGODB_URI names a standalone MongoDB server: Hearth needs a replica set .* HEARTH_MONGODB_REQUIRE_REPLICA_SET=false for development only/,
    );
    const config = loadConfig({ HEARTH_MONGODB_URI: uri, HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '127.0.0.1' });
    await expect(openStorage(config)).rejects.toMatchObject({ name: 'ConfigError', problems: [{ name: 'HEARTH_MONGODB_URI' }] });
    // Told so, it serves (each step of a write on its own: no transactions on a standalone server).
    const dev = await mongoStorage({ uri, requireReplicaSet: false });
    try {
      const w = await dev.resources.create('Patient', (v) => ({ resource: { resourceType: 'Patient', id: v.id }, index: [{ param: '_id', grp: 0, code: v.id }] }));
      expect((await dev.resources.read('Patient', w.version.id))?.versionId).toBe(1);
    } finally {
      await dev.close();
    }
  });

  it('stops the start with one clear line when MongoDB cannot be reached, never echoing the password', async () => {
    const config = loadConfig({ HEARTH_MONGODB_URI: 'mongodb://hearth:s3cret@127.0.0.1:9/hearth', HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '127.0.0.1' });
    const opening = mongoStorage({ uri: config.mongodb!.uri, requireReplicaSet: true, serverSelectionTimeoutMS: 300 });
    const err = await opening.catch((e: Error) => e);
    expect(String((err as Error).message)).toMatch(/^cannot reach MongoDB at HEARTH_MONGODB_URI: /);
    expect(String((err as Error).message)).not.toContain('s3cret');
  });
});

describe('MongoDB: npm start with HEARTH_MONGODB_URI', () => {
  it('serves the FHIR API with authorization and audit from a real server process', async () => {
    const server = await testMongo();
    const uri = withDatabase(server.uri);
    const running = await startServer({ HEARTH_MONGODB_URI: uri, HEARTH_DATA_DIR: (await import('../helpers/app.ts')).tempDir() });
    try {
      const auth = { authorization: `Bearer ${running.token}`, 'content-type': FHIR_JSON };
      const created = await fetch(`${running.base}/Patient`, { method: 'POST', headers: auth, body: JSON.stringify({ resourceType: 'Patient', gender: 'female' }) });
      expect(created.status).toBe(201);
      const id = ((await created.json()) as { id: string }).id;
      expect((await fetch(`${running.base}/Patient/${id}`, { headers: auth })).status).toBe(200);
      expect((await fetch(`${running.base}/Patient/${id}`)).status).toBe(401);
      const raw = await rawDocuments(uri);
      expect(raw).toContain(`Patient/${id}`);
      // (the log's bodies are canonical JSON strings inside the documents)
      expect(raw).toContain('\\"action\\":\\"C\\"');
      expect(running.output()).toContain('"store":"mongodb"');
      expect(running.output()).not.toContain(uri);
    } finally {
      await stopServer(running);
    }
  });
});
