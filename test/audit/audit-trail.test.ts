import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { DatabaseSync } from 'node:sqlite';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/audit/chain.ts';
import { loadPublicKey } from '../../src/audit/signing-key.ts';
import { readWitness, verifyWitness } from '../../src/audit/witness.ts';
import { buildAuditEvent } from '../../src/audit/audit-event.ts';
import { auditAppendOf } from '../../src/audit/audit-sink.ts';
import { loadDefinitions, openKeyring } from '../../src/compose.ts';
import { decodeBody, encodeBody } from '../../src/audit/log-codec.ts';
import { sqliteStorage } from '../../src/store/sqlite/sqlite-storage.ts';
import { create, json, post, type TestApp, tempDir, testApp } from '../helpers/app.ts';
import { startServer } from '../helpers/server.ts';

const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const audit = async (t: TestApp, requestId: string) => {
  await t.auditIndexed();
  return t.store.read('AuditEvent', requestId).then((v) => v?.resource as any);
};

describe('one AuditEvent per request (IHE BALP)', () => {
  it('records a read with the user, client, address, scopes, token jti, patient and versioned entity', async () => {
    const t = await testApp();
    const p = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Audited' }] });
    const tok = await t.token({ sub: 'u-17', client_id: 'chart-app', fhirUser: 'Practitioner/dr9', role: 'provider', scope: 'user/*.rs openid', purpose_of_use: 'TREAT' });
    const res = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}`, headers: { authorization: `Bearer ${tok}` }, remoteAddress: '10.1.2.3' });
    expect(res.statusCode).toBe(200);
    const e = await audit(t, res.headers['x-request-id'] as string);
    expect(e).toMatchObject({
      resourceType: 'AuditEvent',
      id: res.headers['x-request-id'],
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
      subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read' }],
      action: 'R',
      outcome: '0',
      source: { site: 'http://127.0.0.1:8080/fhir', observer: { display: 'Hearth' } },
    });
    expect(e.agent[0]).toMatchObject({
      who: { reference: 'Practitioner/dr9' },
      altId: 'u-17',
      requestor: true,
      network: { address: '10.1.2.3', type: '2' },
      role: [{ coding: [{ system: 'urn:hearth:role', code: 'provider' }] }],
      purposeOfUse: [{ coding: [{ code: 'TREAT' }] }],
    });
    expect(e.agent[0].policy).toEqual(expect.arrayContaining(['urn:hearth:scope:user/*.rs', expect.stringMatching(/^urn:hearth:token:jti-/)]));
    expect(e.agent[1]).toMatchObject({ who: { identifier: { value: 'chart-app' } }, requestor: false });
    expect(e.entity).toEqual([
      { what: { reference: `Patient/${p.id}` }, type: expect.objectContaining({ code: '1' }), role: expect.objectContaining({ code: '1' }) },
      { what: { reference: `Patient/${p.id}/_history/1` }, type: expect.objectContaining({ code: '2' }), role: expect.objectContaining({ code: '4' }) },
    ]);
    // references only: no resource content, no token
    expect(JSON.stringify(e)).not.toContain('Audited');
    expect(JSON.stringify(e)).not.toContain(tok);
  });

  it('records writes as before/after references and searches as a base64 query with the ids returned', async () => {
    const t = await testApp();
    const p = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Written' }] });
    const o = await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${p.id}` } });
    const upd = await t.app.inject({ method: 'PUT', url: `/fhir/Observation/${o.id}`, headers: { 'content-type': 'application/fhir+json' }, payload: JSON.stringify({ ...o, status: 'amended' }) });
    const u = await audit(t, upd.headers['x-request-id'] as string);
    expect(u.action).toBe('U');
    expect(u.entity.map((x: any) => [x.what.reference, x.role.code, x.detail?.[0].valueString])).toEqual([
      [`Patient/${p.id}`, '1', undefined],
      [`Observation/${o.id}/_history/1`, '4', 'before'],
      [`Observation/${o.id}/_history/2`, '4', 'after'],
    ]);
    const del = await t.app.inject({ method: 'DELETE', url: `/fhir/Observation/${o.id}` });
    const d = await audit(t, del.headers['x-request-id'] as string);
    expect(d.action).toBe('D');
    expect(d.entity.map((x: any) => x.what.reference)).toEqual([`Patient/${p.id}`, `Observation/${o.id}/_history/2`, `Observation/${o.id}/_history/3`]);
    const search = await t.app.inject({ method: 'GET', url: '/fhir/Patient?family=wri' });
    // At rest the query is sealed (it can name a patient); auditors read it through the API.
    const stored = await audit(t, search.headers['x-request-id'] as string);
    expect(JSON.stringify(stored)).not.toContain(Buffer.from('family=wri').toString('base64'));
    expect(stored._hearthEnvelope.kek).toBe('audit:1');
    const s = json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent/${search.headers['x-request-id']}` }));
    expect(s.action).toBe('E');
    expect(s.subtype[0].code).toBe('search-type');
    const query = s.entity.find((x: any) => x.role.code === '24');
    expect(Buffer.from(query.query, 'base64').toString()).toBe('family=wri');
    expect(s.entity.filter((x: any) => x.role.code === '4').map((x: any) => x.what.reference)).toEqual([`Patient/${p.id}/_history/1`]);
  });

  it('records refusals: 401, 403, compartment 404, validation 400, server 500', async () => {
    const t = await testApp();
    const other = await create(t.app, { resourceType: 'Patient' });
    const patientTok = await t.token({ sub: 'pat', patient: 'me', scope: 'patient/*.rs' });
    const cases: [() => Promise<any>, number, string][] = [
      [() => t.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: '' } }), 401, 'login'],
      [() => t.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: 'Bearer nope.nope.nope' } }), 401, 'login'],
      [() => t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${other.id}`, headers: { authorization: `Bearer ${patientTok}` } }), 403, 'forbidden'],
      [() => t.app.inject({ method: 'GET', url: `/fhir/Patient/${other.id}`, headers: { authorization: `Bearer ${patientTok}` } }), 404, 'not-found'],
      [() => post(t.app, '/fhir/Patient', { resourceType: 'Patient', gender: 'robot' }), 400, 'value'],
    ];
    for (const [send, status, code] of cases) {
      const res = await send();
      expect(res.statusCode).toBe(status);
      const e = await audit(t, res.headers['x-request-id']);
      expect(e, `${status}`).toMatchObject({ outcome: '4', outcomeDesc: `${status} ${code}` });
    }
    const unauth = await audit(t, (await cases[0][0]()).headers['x-request-id']);
    expect(unauth.agent[0]).toMatchObject({ name: 'unauthenticated', requestor: true });
    const denied = await audit(t, (await cases[3][0]()).headers['x-request-id']);
    expect(denied.entity[0].what.reference).toBe(`Patient/${other.id}`);
    t.store.failWith('read', new Error('disk on fire'));
    const fault = await t.raw.inject({ method: 'GET', url: '/fhir/Observation/x', headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(fault.statusCode).toBe(500);
    const history = await t.store.history({ type: 'AuditEvent', count: 1 });
    expect(history.versions[0].resource).toMatchObject({ id: fault.headers['x-request-id'], outcome: '8', outcomeDesc: '500 exception' });
  });

  it('every AuditEvent it writes validates against the R4 schema', async () => {
    const t = await testApp();
    const p = await create(t.app, { resourceType: 'Patient' });
    await t.app.inject({ method: 'GET', url: `/fhir/Patient/${p.id}` });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient?_count=1' });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: '' } });
    await t.app.inject({ method: 'DELETE', url: `/fhir/Patient/${p.id}` });
    await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent' });
    const { validator } = loadDefinitions(false);
    const all = json(await t.app.inject({ method: 'GET', url: '/fhir/AuditEvent?_count=100' }));
    expect(all.entry.length).toBe(6);
    for (const e of all.entry) expect(() => validator.validate(e.resource, 'AuditEvent')).not.toThrow();
  });

  it('fails closed: when the audit write fails the response is a 503 with no resource content', async () => {
    let failing = false;
    const t = await testApp({}, {
      // The failure is injected at the AuditStore port, the way a full disk or a revoked grant would show.
      wrapAudit: (real) =>
        new Proxy(real, {
          get(target, prop) {
            if (prop === 'appendAudit' && failing) return async () => Promise.reject(new Error('SQLITE_FULL'));
            const v = Reflect.get(target, prop, target);
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }),
    });
    const seed = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Secretname' }] });
    failing = true;
    // Also where no route's hooks run (a refusal before routing, a path outside the API) and on a public route.
    const anywhere = ['/fhir/Patient/%E0%A4%A', '/outside', '/fhir/metadata'];
    for (const url of [`/fhir/Patient/${seed.id}`, '/fhir/Patient?family=secret', `/fhir/Patient/${seed.id}/_history`, ...anywhere]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(503);
      expect(res.body).not.toContain('Secretname');
      expect(res.headers.etag).toBeUndefined();
      expect(res.headers['last-modified']).toBeUndefined();
      expect(res.headers['retry-after']).toBe('5');
      expect(json(res).issue[0]).toMatchObject({ code: 'transient' });
      expect(json(res).issue[0].diagnostics).toContain(res.headers['x-request-id']);
    }
    const write = await post(t.app, '/fhir/Patient', { resourceType: 'Patient', name: [{ family: 'Secretname' }] });
    expect(write.statusCode).toBe(503);
    expect(write.headers.location).toBeUndefined();
    expect(write.body).not.toContain('Secretname');
    failing = false;
    expect((await t.app.inject({ method: 'GET', url: `/fhir/Patient/${seed.id}` })).statusCode).toBe(200);
  });

  it('names requests (and so their AuditEvents) by time-ordered version 7 UUIDs, each after the one before', async () => {
    const t = await testApp();
    const p = await create(t.app, { resourceType: 'Patient', name: [{ family: 'Ordered' }] });
    const before = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await t.app.inject({ method: 'GET', url: i % 2 ? '/fhir/metadata' : `/fhir/Patient/${p.id}` });
      ids.push(res.headers['x-request-id'] as string);
    }
    const after = Date.now();
    // See: RFC 9562 §5.7 (48-bit Unix milliseconds, version 7, the variant bits 10)
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const ms = Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(after);
    }
    // in order even within one millisecond (the counter after the time), so each is appended at the end of an index of them
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
    expect((await audit(t, ids[0]))?.id).toBe(ids[0]);
  });
});

describe('append-only', () => {
  it('refuses AuditEvent create, update and delete through the API (405) and through the store port', async () => {
    const t = await testApp();
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    const [e] = (await t.store.history({ type: 'AuditEvent', count: 1 })).versions;
    for (const [method, url] of [['POST', '/fhir/AuditEvent'], ['PUT', `/fhir/AuditEvent/${e.id}`], ['DELETE', `/fhir/AuditEvent/${e.id}`]] as const) {
      const res = await t.app.inject({ method, url, headers: { 'content-type': 'application/fhir+json' }, payload: JSON.stringify(e.resource) });
      expect(res.statusCode).toBe(405);
    }
    await expect(t.store.delete('AuditEvent', e.id)).rejects.toThrow('only through the AuditStore');
    await expect(t.store.create('AuditEvent', () => ({ resource: {}, index: [] }))).rejects.toThrow('only through the AuditStore');
  });

  it('refuses UPDATE and DELETE of audit rows in the raw database, by trigger', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    await t.app.close();
    // The log in its own file; its searchable copy in audit-index.db is derived (audit verify compares the two).
    const db = new DatabaseSync(join(dataDir, 'audit.db'));
    expect((db.prepare('SELECT COUNT(*) AS n FROM audit_log').get() as { n: number }).n).toBe(1);
    expect(() => db.exec('UPDATE audit_log SET hash = hash')).toThrow('the audit log is append-only');
    expect(() => db.exec('UPDATE audit_blocks SET body = x\'00\'')).toThrow('the audit log is append-only');
    expect(() => db.exec('DELETE FROM audit_blocks')).toThrow('the audit log is append-only');
    expect(() => db.exec('DELETE FROM audit_log')).toThrow('the audit log is append-only');
    expect(() => db.exec('DELETE FROM audit_checkpoints')).toThrow('append-only');
    db.close();
  });
});

describe('tamper evidence: hearth audit verify names the first broken place', () => {
  // The witness lives outside the data directory, as it should in a deployment.
  const witnessOf = new Map<string, string>();
  async function trail(n: number, dataDir = tempDir()) {
    const witness = witnessOf.get(dataDir) ?? join(tempDir(), 'witness.log');
    witnessOf.set(dataDir, witness);
    const t = await testApp({ HEARTH_AUDIT_WITNESS: witness }, { dataDir });
    for (let i = 0; i < n; i++) await t.app.inject({ method: 'GET', url: `/fhir/Patient?_count=${i}` });
    await t.app.close();
    return dataDir;
  }
  const verify = (dataDir: string, ...args: string[]) => {
    const env = { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: dataDir, HEARTH_AUDIT_WITNESS: witnessOf.get(dataDir) ?? '-' };
    const out = spawnSync(process.execPath, [cli, 'audit', 'verify', ...args], { env, encoding: 'utf8' });
    return { code: out.status, text: out.stdout + out.stderr };
  };
  /** What an attacker with the database files can do: drop the triggers, then edit the log (audit.db) or its index (audit-index.db). */
  const tamper = (dataDir: string, sql: string | ((db: DatabaseSync) => void), file = 'audit.db') => {
    const db = new DatabaseSync(join(dataDir, file));
    for (const { name } of db.prepare('SELECT name FROM sqlite_master WHERE type = \'trigger\'').all() as { name: string }[]) db.exec(`DROP TRIGGER ${name}`);
    if (typeof sql === 'string') db.exec(sql);
    else sql(db);
    db.close();
  };
  /** Cuts the log after `seq` with its signed heads, and the index with it: nothing left over to show it. */
  const cutTail = (dataDir: string, seq: number) => {
    let ids: string[] = [];
    tamper(dataDir, (db) => {
      ids = (db.prepare('SELECT id FROM audit_log WHERE seq > ?').all(seq) as { id: string }[]).map((r) => r.id);
      db.exec(`DELETE FROM audit_log WHERE seq > ${seq}; DELETE FROM audit_blocks WHERE first_seq > ${seq}; DELETE FROM audit_checkpoints WHERE seq > ${seq}`);
    });
    tamper(dataDir, (db) => {
      for (const id of ids) db.prepare('DELETE FROM resource_versions WHERE type = \'AuditEvent\' AND id = ?').run(id);
      db.prepare('UPDATE audit_indexed SET seq = ?').run(seq);
    }, 'audit-index.db');
  };
  /** Edits one event inside its compressed block (same length, so that its neighbours stay in place). */
  const editBody = (seq: number, edit: (canonical: string) => string) => (db: DatabaseSync) => {
    const { block, at, len } = db.prepare('SELECT block, at, len FROM audit_log WHERE seq = ?').get(seq) as { block: number; at: number; len: number };
    const text = decodeBody((db.prepare('SELECT body FROM audit_blocks WHERE first_seq = ?').get(block) as { body: Uint8Array }).body);
    const edited = Buffer.from(edit(text.subarray(at, at + len).toString('utf8')), 'utf8');
    db.prepare('UPDATE audit_blocks SET body = ? WHERE first_seq = ?').run(encodeBody(Buffer.concat([text.subarray(0, at), edited, text.subarray(at + len)])), block);
  };

  it('passes on an untouched chain, with its signed checkpoints', async () => {
    const dataDir = await trail(10);
    const r = verify(dataDir);
    expect(r.code).toBe(0);
    // The head of every batch is signed: each request here was a batch of its own.
    expect(r.text).toMatch(/^audit chain intact: 10 events, 10 signed checkpoints verified, head seq 10 [0-9a-f]{64}\n$/);
    const w = verify(dataDir, '--witness', witnessOf.get(dataDir)!);
    // The first verify appended its own event (seq 11) and published that head too.
    expect(w.text).toMatch(/^audit chain intact: 11 events, 11 signed checkpoints verified, 11 witnessed heads matched, head seq 11 [0-9a-f]{64}\n$/);
  });

  const dbFiles = (dir: string) => ['hearth.db', 'audit.db', 'audit-index.db'].flatMap((f) => [f, `${f}-wal`, `${f}-shm`]).map((f) => join(dir, f));

  it('a tail cut together with its signed heads passes the database alone, and fails against the witness', async () => {
    const dataDir = await trail(10);
    cutTail(dataDir, 8);
    const r = verify(dataDir, '--witness', witnessOf.get(dataDir)!);
    expect(r.code).toBe(1);
    expect(r.text).toContain('audit chain BROKEN at the witness saw seq 9 but the chain ends at seq 8: its tail was cut or it was rolled back');
    // What the database alone can show: nothing (that verification appended seq 9 anew).
    expect(verify(dataDir).text).toMatch(/^audit chain intact: 9 events/);
  });

  it('a rollback to an older copy of the database is named by the witness', async () => {
    const dataDir = await trail(5);
    const backup = tempDir();
    for (const f of dbFiles(dataDir)) if (existsSync(f)) copyFileSync(f, join(backup, basename(f)));
    expect(verify(dataDir).code).toBe(0);
    expect(verify(dataDir).code).toBe(0);
    for (const f of dbFiles(dataDir)) rmSync(f, { force: true });
    for (const f of dbFiles(backup)) if (existsSync(f)) copyFileSync(f, join(dataDir, basename(f)));
    const r = verify(dataDir, '--witness', witnessOf.get(dataDir)!);
    expect(r.code).toBe(1);
    expect(r.text).toContain('the witness saw seq 6 but the chain ends at seq 5');
  });

  it('a log replaced by another, signed with the same key, is named by the witness', async () => {
    const dataDir = await trail(3);
    for (const f of dbFiles(dataDir)) rmSync(f, { force: true });
    await trail(3, dataDir);
    const r = verify(dataDir, '--witness', witnessOf.get(dataDir)!);
    expect(r.code).toBe(1);
    expect(r.text).toContain('seq 1: the chain differs from what the witness saw: rolled back to another copy or replaced');
  });

  it('a witness head with a forged signature is refused', async () => {
    const dataDir = await trail(2);
    const file = witnessOf.get(dataDir)!;
    writeFileSync(file, readFileSync(file, 'utf8').replace(/"signature":"[^"]+"/, '"signature":"AAAA"'));
    expect(verify(dataDir, '--witness', file).text).toContain('witness head at seq 1: bad signature');
  });

  const tampering: [string, string | ((db: DatabaseSync) => void), string, string?][] = [
    ['an edited event', editBody(5, (b) => b.replace('"outcome":"0"', '"outcome":"4"')), 'seq 5: AuditEvent/'],
    ['an event body that cannot be read', 'UPDATE audit_blocks SET body = x\'00\' WHERE first_seq = (SELECT block FROM audit_log WHERE seq = 6)', 'seq 6: AuditEvent/'],
    ['an event\'s block removed', 'DELETE FROM audit_blocks WHERE first_seq = (SELECT block FROM audit_log WHERE seq = 7)', 'seq 7: AuditEvent/'],
    ['a deleted chain link', 'DELETE FROM audit_log WHERE seq = 3', 'seq 3: missing'],
    ['an event relabelled with another id', 'UPDATE audit_log SET id = (SELECT id FROM audit_log WHERE seq = 7) WHERE seq = 4', 'seq 4: holds the wrong event'],
    ['links reordered with their hashes', `UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -1;`, 'seq 2: does not follow seq 1'],
    ['the tail cut off below a checkpoint', 'DELETE FROM audit_log WHERE seq > 8; DELETE FROM audit_blocks WHERE first_seq > 8', 'beyond the head (seq 8): events were removed from the end'],
    ['the tail\'s links cut, their bodies left behind', 'DELETE FROM audit_log WHERE seq > 8', 'beyond the head (seq 8): events were removed from the end'],
    ['an event inserted into the search index behind the chain', 'INSERT INTO resource_versions (type, id, version, last_updated, deleted, current, body) VALUES (\'AuditEvent\', \'forged\', 1, \'2026-01-01T00:00:00Z\', 0, 1, \'{}\')', 'AuditEvent/forged is searchable but not in the chain', 'audit-index.db'],
    ['an event removed from the search index', 'DELETE FROM resource_versions WHERE rid = (SELECT MIN(rid) FROM resource_versions WHERE type = \'AuditEvent\')', 'is in the chain but missing from the search index', 'audit-index.db'],
    ['a forged checkpoint signature', 'UPDATE audit_checkpoints SET signature = \'AAAA\' WHERE seq = 5', 'checkpoint at seq 5: bad signature'],
    ['a checkpoint moved to another hash', 'UPDATE audit_checkpoints SET hash = (SELECT lower(hex(hash)) FROM audit_log WHERE seq = 2) WHERE seq = 5', 'checkpoint at seq 5: hash does not match the chain'],
  ];
  it.each(tampering)('fails on %s', async (_name, sql, place, file) => {
    const dataDir = await trail(10);
    tamper(dataDir, sql, file);
    const r = verify(dataDir);
    expect(r.code).toBe(1);
    expect(r.text).toContain('audit chain BROKEN at');
    expect(r.text).toContain(place);
  });

  // The same walk in stretches on threads of their own (what a long chain gets), joined after.
  it.each(tampering)('fails on %s, walked in three stretches at once', async (_name, sql, place, file) => {
    const dataDir = await trail(10);
    tamper(dataDir, sql, file);
    const r = verify(dataDir, '--threads', '3');
    expect(r.code).toBe(1);
    expect(r.text).toContain('audit chain BROKEN at');
    expect(r.text).toContain(place);
  });

  it('walked in stretches, an intact chain passes with the same summary', async () => {
    const dataDir = await trail(10);
    expect(verify(dataDir, '--threads', '4').text).toMatch(/^audit chain intact: 10 events, 10 signed checkpoints verified, head seq 10 [0-9a-f]{64}\n$/);
    const w = verify(dataDir, '--threads', '2', '--witness', witnessOf.get(dataDir)!);
    expect(w.text).toMatch(/^audit chain intact: 11 events, 11 signed checkpoints verified, 11 witnessed heads matched, head seq 11 [0-9a-f]{64}\n$/);
    expect(verify(dataDir, '--threads', '0')).toEqual({ code: 64, text: expect.stringContaining('--threads must be a whole number from 1 to 64, got "0"') });
  });

  it('verifies the chain in process too, against the public key', async () => {
    const dataDir = await trail(3);
    const store = sqliteStorage({ dataDir });
    const r = await verifyChain(store.audit, loadPublicKey(join(dataDir, 'keys', 'audit-signing-key.pub.pem')), undefined, store.auditIndex);
    expect(await verifyWitness(store.audit, readWitness(readFileSync(witnessOf.get(dataDir)!, 'utf8')), loadPublicKey(join(dataDir, 'keys', 'audit-signing-key.pub.pem')))).toEqual({ ok: true, heads: 3 });
    expect(r).toMatchObject({ ok: true, events: 3 });
    await store.close();
  });
});

describe('retention', () => {
  it('purges only events older than the retention, records the purge in the chain, and still verifies', async () => {
    const dataDir = tempDir();
    const t = await testApp({ HEARTH_AUDIT_RETENTION_DAYS: '30' }, { dataDir });
    for (let i = 0; i < 5; i++) await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    await t.app.close();
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [cli, 'audit', ...args], {
        env: { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: dataDir, HEARTH_AUDIT_RETENTION_DAYS: '30', ...env },
        encoding: 'utf8',
      });
    // The test clock recorded the events in January 2026; today is later than that by more than 30 days.
    const early = run(['purge', '--before', '2999-01-01']);
    expect(early.status).toBe(64);
    expect(early.stderr).toContain('inside the retention period');
    const keepAll = run(['purge'], { HEARTH_AUDIT_RETENTION_DAYS: '36500' });
    expect(keepAll.stdout).toContain('purged 0 AuditEvents');
    const purged = run(['purge']);
    expect(purged.status).toBe(0);
    expect(purged.stdout).toMatch(/^purged 5 AuditEvents recorded before .* \(through seq 5\)/);
    const v = run(['verify']);
    expect(v.status).toBe(0);
    // The two purge events (the one that removed nothing is kept: it is recent) remain, chained and signed.
    expect(v.stdout).toMatch(/^audit chain intact: 2 events, 2 signed checkpoints verified/);
    const store = sqliteStorage({ dataDir });
    const remaining = (await store.resources.history({ type: 'AuditEvent', count: 10 })).versions.map((x) => x.resource as any);
    // newest first: the verification itself (reading the audit log is audited), then the two purges
    expect(remaining.map((e) => [e.type.code, e.action, e.entity[0].description.split(':')[0].split(' of ')[0]])).toEqual([
      ['110101', 'R', 'verified'],
      ['110101', 'D', 'retention purge'],
      ['110101', 'D', 'retention purge'],
    ]);
    expect(remaining[1].entity[0].description).toContain('retention purge of 5 AuditEvents');
    await store.close();
  });
});

describe('the signing key and the witness, apart from the data', () => {
  it('creates the signing key where HEARTH_AUDIT_SIGNING_KEY says, not in the data directory, and verify finds its public key', async () => {
    const dataDir = tempDir();
    const keyPath = join(tempDir(), 'audit-key.pem');
    const t = await testApp({ HEARTH_AUDIT_SIGNING_KEY: keyPath }, { dataDir });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    await t.app.close();
    expect(existsSync(keyPath)).toBe(true);
    expect(existsSync(keyPath.replace(/\.pem$/, '.pub.pem'))).toBe(true);
    expect(existsSync(join(dataDir, 'keys', 'audit-signing-key.pem'))).toBe(false);
    const out = spawnSync(process.execPath, [cli, 'audit', 'verify'], {
      env: { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: dataDir, HEARTH_AUDIT_SIGNING_KEY: keyPath },
      encoding: 'utf8',
    });
    expect(out.stdout).toMatch(/^audit chain intact: 1 events, 1 signed checkpoints verified/);
  });

  it('publishes each signed head on standard output for a log collector, from the writer thread', async () => {
    const dataDir = tempDir();
    const server = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_AUDIT_WITNESS: '-', HEARTH_LOG_LEVEL: 'warn' });
    try {
      for (let i = 0; i < 3; i++) await fetch(`${server.base}/Patient`, { headers: { authorization: `Bearer ${server.token}` } });
    } finally {
      server.child.kill('SIGTERM');
      await once(server.child, 'exit');
    }
    const heads = readWitness(server.output());
    expect(heads.map((h) => h.seq)).toEqual([1, 2, 3]);
    const store = sqliteStorage({ dataDir });
    expect(await verifyWitness(store.audit, heads, loadPublicKey(join(dataDir, 'keys', 'audit-signing-key.pub.pem')))).toEqual({ ok: true, heads: 3 });
    await store.close();
  });

  it.each([
    ['HEARTH_AUDIT_SIGNING_KEY', '/no/such/dir/key.pem', 'the directory /no/such/dir does not exist'],
    ['HEARTH_AUDIT_SIGNING_KEY', 'key.txt', 'must be a path ending in .pem'],
    ['HEARTH_AUDIT_WITNESS', '/no/such/dir/witness.log', 'the directory /no/such/dir does not exist'],
  ])('refuses %s=%s', async (name, value, message) => {
    await expect(testApp({ [name]: value })).rejects.toThrow(message);
  });
});

describe('write-ahead audit of writes', () => {
  it('records the attempt before the store is called: a write that fails in the store still names its writer', async () => {
    const t = await testApp();
    t.store.failWith('create', new Error('disk full'));
    const res = await post(t.app, '/fhir/Patient', { resourceType: 'Patient' });
    expect(res.statusCode).toBe(500);
    const id = res.headers['x-request-id'] as string;
    const chain = (await Array.fromAsync(t.storage.audit.chain())).map((l) => l.id);
    expect(chain.slice(-2)).toEqual([`${id}.attempt`, id]);
    const attempt = JSON.parse((await Array.fromAsync(t.storage.audit.chain())).at(-2)!.body!);
    expect(attempt).toMatchObject({ action: 'C', subtype: [{ code: 'create' }, { system: 'urn:hearth:audit-phase', code: 'attempt' }] });
    expect(attempt.agent[0].name).toBe('test-system');
    expect(attempt.outcome).toBeUndefined();
    // The attempt is in the chain, not among the AuditEvents auditors read and search.
    expect((await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent/${id}.attempt` })).statusCode).toBe(404);
    expect(json(await t.app.inject({ method: 'GET', url: `/fhir/AuditEvent?_id=${id}.attempt` })).total).toBe(0);
    expect(await audit(t, id)).toMatchObject({ outcome: '8' });
  });

  it('reads and searches leave no attempt; a create leaves its attempt, then its event, and the version names the request', async () => {
    const t = await testApp();
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    const res = await post(t.app, '/fhir/Patient', { resourceType: 'Patient' });
    const id = res.headers['x-request-id'] as string;
    expect((await Array.fromAsync(t.storage.audit.chain())).map((l) => l.id).filter((x) => x.endsWith('.attempt'))).toEqual([`${id}.attempt`]);
    expect(await t.storage.resources.writtenBy(id)).toEqual([{ type: 'Patient', id: json(res).id, versionId: 1, deleted: false, writeId: id }]);
  });

  it('recovery at start-up records the outcome of open attempts from what the store holds', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    // What a crash leaves: two attempts durable, one write committed, neither request's own event.
    const writer = auditAppendOf(openKeyring(t.config, false));
    const attempt = (requestId: string) =>
      writer(buildAuditEvent({ requestId, recorded: t.now(), interaction: 'create', resourceType: 'Patient', status: 0, entities: [], patients: [], server: { baseUrl: t.config.baseUrl, name: 'Hearth' }, principal: { issuer: 'i', subject: 'nurse-9', grants: [], scopes: [], expiresAt: 0 }, phase: 'attempt' }), false);
    await t.storage.audit.appendAudit([attempt('crash-committed'), attempt('crash-lost')]);
    await t.storage.resources.create('Patient', (v) => ({ resource: { resourceType: 'Patient', id: v.id, meta: { versionId: '1', lastUpdated: v.lastUpdated } }, index: [], writeId: 'crash-committed' }));
    expect((await t.storage.audit.openAttempts()).map((o) => o.requestId)).toEqual(['crash-committed', 'crash-lost']);
    await t.app.close();
    const again = await testApp({}, { dataDir });
    expect((await again.storage.audit.openAttempts())).toEqual([]);
    const committed = await audit(again, 'crash-committed');
    const [written] = await again.storage.resources.writtenBy('crash-committed');
    expect(committed).toMatchObject({ action: 'C', outcome: '0', agent: [{ name: 'nurse-9' }], subtype: [{ code: 'create' }, { system: 'urn:hearth:audit-phase', code: 'recovered' }] });
    expect(committed.entity.map((e: any) => e.what.reference)).toEqual([`Patient/${written.id}/_history/1`]);
    expect(await audit(again, 'crash-lost')).toMatchObject({ outcome: '8', agent: [{ name: 'nurse-9' }] });
  });

  it('recovery gives each entry of a transaction cut short after its commit its own event, from the transaction\'s one attempt', async () => {
    const dataDir = tempDir();
    const t = await testApp({}, { dataDir });
    const writer = auditAppendOf(openKeyring(t.config, false));
    const principal = { issuer: 'i', subject: 'feed-1', clientId: 'ehr', grants: [], scopes: ['system/*.cud'], expiresAt: 0 };
    const server = { baseUrl: t.config.baseUrl, name: 'Hearth' };
    await t.storage.audit.appendAudit([writer(buildAuditEvent({ requestId: 'crash-tx', recorded: t.now(), interaction: 'transaction', status: 0, entities: [], patients: [], server, principal, phase: 'attempt' }), false)]);
    const existing = await t.storage.resources.create('Patient', (v) => ({ resource: { resourceType: 'Patient', id: v.id, meta: { versionId: '1', lastUpdated: v.lastUpdated } }, index: [] }));
    const at = t.now().toISOString();
    const body = (id: string, versionId: number) => ({ resource: { resourceType: 'Patient', id, meta: { versionId: String(versionId), lastUpdated: at } }, index: [] });
    // The transaction committed (entry 0 a create, entry 3 an update), its events did not reach the log.
    await t.storage.resources.commit([
      { type: 'Patient', id: 'tx-made', expect: undefined, versionId: 1, lastUpdated: at, content: body('tx-made', 1), writeId: 'crash-tx.0' },
      { type: 'Patient', id: existing.version.id, expect: 1, versionId: 2, lastUpdated: at, content: body(existing.version.id, 2), writeId: 'crash-tx.3' },
    ]);
    // Entry 3's own event reached the log before the crash (the Bundle's did not): it keeps it.
    await t.storage.audit.appendAudit([
      writer(buildAuditEvent({ requestId: 'crash-tx.3', recorded: t.now(), interaction: 'update', resourceType: 'Patient', status: 200, entities: [], patients: [], server, principal, partOf: 'crash-tx' })),
    ]);
    await t.app.close();
    const again = await testApp({}, { dataDir });
    expect(await again.storage.audit.openAttempts()).toEqual([]);
    const ids = (await Array.fromAsync(again.storage.audit.chain())).map((l) => l.id).filter((id) => id.startsWith('crash-tx'));
    expect(ids).toEqual(['crash-tx.attempt', 'crash-tx.3', 'crash-tx', 'crash-tx.0']);
    const bundle = await audit(again, 'crash-tx');
    expect(bundle).toMatchObject({ outcome: '0', agent: [{ name: 'feed-1' }, { name: 'ehr' }], subtype: [{ code: 'transaction' }, { code: 'recovered' }] });
    expect(bundle.entity.map((e: any) => e.what.reference)).toEqual(['Patient/tx-made/_history/1', `Patient/${existing.version.id}/_history/2`]);
    const created = await audit(again, 'crash-tx.0');
    expect(created).toMatchObject({ action: 'C', outcome: '0', agent: [{ name: 'feed-1' }, { name: 'ehr' }], subtype: [{ code: 'create' }, { code: 'recovered' }] });
    expect(created.entity.map((e: any) => e.what.reference ?? e.what.identifier.value)).toEqual(['Patient/tx-made/_history/1', 'crash-tx']);
    // (entry 3's event is the one it had, not a recovered one)
    expect(await audit(again, 'crash-tx.3')).toMatchObject({ action: 'U', outcome: '0', subtype: [{ code: 'update' }] });
    // linked to the transaction's event as entries are: by the X-Request-Id entity
    const linked = json(await again.app.inject({ method: 'GET', url: `/fhir/AuditEvent?entity:identifier=${encodeURIComponent('urn:hearth:request|crash-tx')}&_sort=_id` }));
    expect(linked.entry.map((e: any) => e.resource.id)).toEqual(['crash-tx.0', 'crash-tx.3']);
  });
});
