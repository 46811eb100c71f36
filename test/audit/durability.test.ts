import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, fdatasync as fsFdatasync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it, vi } from 'vitest';
import { sqliteStorage } from '../../src/store/sqlite/sqlite-storage.ts';
import { json, post, put, tempDir, testApp } from '../helpers/app.ts';
import { type RunningServer, startServer, stopServer } from '../helpers/server.ts';

const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const verify = (dataDir: string) =>
  spawnSync(process.execPath, [cli, 'audit', 'verify'], { env: { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: dataDir }, encoding: 'utf8' });

interface Sent {
  id: string;
  status: number;
}

/** One mixed request: valid and invalid writes, reads, searches, refusals. */
/**
 * `writers` clients each call `write(w, i)` for i = 0, 1, … until the server is sent `signal`
 * (SIGKILL unless told) after `ms`; a client stops when its connection dies with the server.
 */
async function writeUntilKilled(
  server: RunningServer,
  ms: number,
  writers: number,
  write: (w: number, i: number) => Promise<void>,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<void> {
  let stop = false;
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      try {
        await write(w, i);
      } catch {
        return; // the connection died with the server
      }
    }
  });
  await new Promise((r) => setTimeout(r, ms));
  server.child.kill(signal);
  stop = true;
  await Promise.all(loops);
}

function mixed(base: string, token: string, i: number, created: string[]): Promise<Response> {
  const auth = { authorization: `Bearer ${token}` };
  const json = { ...auth, 'content-type': 'application/fhir+json' };
  switch (i % 6) {
    case 0:
      return fetch(`${base}/Patient`, { method: 'POST', headers: json, body: JSON.stringify({ resourceType: 'Patient', name: [{ family: `Load${i}` }] }) });
    case 1:
      return fetch(`${base}/Patient`, { method: 'POST', headers: json, body: '{"resourceType":"Patient","gender":"robot"}' });
    case 2:
      return fetch(`${base}/Patient/${created[i % Math.max(created.length, 1)] ?? 'none'}`, { headers: auth });
    case 3:
      return fetch(`${base}/Patient?family=load&_count=5`, { headers: auth });
    case 4:
      return fetch(`${base}/Patient`, { headers: { authorization: 'Bearer forged.token.here' } });
    default:
      return fetch(`${base}/Observation/missing-${i}`, { headers: auth });
  }
}

describe('the audit trail under load and crash', () => {
  it('N mixed requests over HTTP leave exactly N AuditEvents, each with its outcome', async () => {
    const dataDir = tempDir();
    const server = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
    const N = 300;
    const sent: Sent[] = [];
    const created: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 25 }, async () => {
        while (next < N) {
          const i = next++;
          const res = await mixed(server.base, server.token, i, created);
          const body = await res.text();
          if (res.status === 201) created.push(JSON.parse(body).id);
          sent.push({ id: res.headers.get('x-request-id')!, status: res.status });
        }
      }),
    );
    expect(sent).toHaveLength(N);
    expect(new Set(sent.map((s) => s.status))).toEqual(new Set([201, 400, 200, 401, 404]));
    // Exactly N: the auditor's own count request is the N+1st and not in its own result.
    const count = await fetch(`${server.base}/AuditEvent?_summary=count`, { headers: { authorization: `Bearer ${server.token}` } });
    expect(((await count.json()) as any).total).toBe(N);
    for (const s of sent.filter((_, k) => k % 10 === 0)) {
      const e: any = await (await fetch(`${server.base}/AuditEvent/${s.id}`, { headers: { authorization: `Bearer ${server.token}` } })).json();
      expect(e.outcome, `${s.status}`).toBe(s.status < 400 ? '0' : '4');
    }
    expect(await stopServer(server)).toBe(0);
    const v = verify(dataDir);
    expect(v.status).toBe(0);
    // N events, the count request, the N/10 reads of events, and the write-ahead attempts of the N/6 valid creates.
    expect(v.stdout).toContain(`audit chain intact: ${N + 1 + N / 10 + N / 6} events`);
  });

  it.each([
    ['SIGTERM', 'stopped with SIGTERM mid-load: it exits 0 after the requests in flight, with no 5xx'],
    ['SIGKILL', 'killed with SIGKILL mid-load'],
  ] as [NodeJS.Signals, string][])('%s — %s; every answer a client received has its AuditEvent, every 201 is stored, the chain verifies', async (signal) => {
    const dataDir = tempDir();
    const server = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
    const received: Sent[] = [];
    const created: string[] = [];
    let n = 0;
    const exited = new Promise<number | null>((r) => server.child.once('exit', (code) => r(code)));
    await writeUntilKilled(
      server,
      800,
      20,
      async () => {
        const res = await mixed(server.base, server.token, n++, created);
        const body = await res.text();
        if (res.status === 201) created.push(JSON.parse(body).id);
        received.push({ id: res.headers.get('x-request-id')!, status: res.status });
      },
      signal,
    );
    expect(received.length).toBeGreaterThan(50);
    if (signal === 'SIGTERM') {
      expect(await exited).toBe(0);
      expect(received.filter((s) => s.status >= 500)).toEqual([]);
    }

    const again = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
    const auth = { authorization: `Bearer ${again.token}` };
    const missing: Sent[] = [];
    for (const s of received) {
      const res = await fetch(`${again.base}/AuditEvent/${s.id}`, { headers: auth });
      if (res.status !== 200) missing.push(s);
      else expect(((await res.json()) as any).outcome).toBe(s.status < 400 ? '0' : '4');
    }
    expect(missing).toEqual([]);
    for (const id of created) expect((await fetch(`${again.base}/Patient/${id}`, { headers: auth })).status).toBe(200);
    expect(await stopServer(again)).toBe(0);
    const v = verify(dataDir);
    expect(v.stdout + v.stderr).toMatch(/^audit chain intact/);
    expect(v.status).toBe(0);
  });
});

describe('write-ahead audit: no committed write without the AuditEvent of who made it', () => {
  it('killed with SIGKILL during mixed writes, then restarted: every stored version has an AuditEvent naming its writer', async () => {
    // The kill must catch writes between their write-ahead attempt and their outcome for recovery
    // to have work; on a loaded machine it may land when none is there: then the crash is repeated.
    let dataDir = '';
    let acknowledged: string[] = [];
    for (let crash = 0; crash < 6; crash++) {
      ({ dataDir, acknowledged } = await crashDuringWrites());
      // The restart resolves what the crash left open, before it takes requests.
      const again = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
      expect(await stopServer(again)).toBe(0);
      if (again.output().includes('"recovered":')) break;
    }
    const versions = patientVersions(dataDir);
    expect(new Set(versions.map(actionOf))).toEqual(new Set(['C', 'U', 'D']));
    expect(versions.length).toBeGreaterThanOrEqual(acknowledged.length);
    // The events from the log itself (audit.db).
    const log = sqliteStorage({ dataDir });
    expect(await unnamedVersions(versions, log.audit, 'ops')).toEqual([]);
    // Every acknowledged create has its own event, and no attempt is left without one.
    for (const id of acknowledged) expect(await log.audit.body(id), id).toBeDefined();
    expect((await log.audit.openAttempts())).toEqual([]);
    // With 20 writers in flight at the kill, some attempts were open: recovery resolved them.
    const recovered = (await Array.fromAsync(log.audit.chain())).filter((l) => l.body?.includes('"code":"recovered"'));
    expect(recovered.length).toBeGreaterThan(0);
    // The indexer caught up with everything the log held after the crash (recovery's events too).
    const { seq } = await log.audit.head();
    expect(await log.auditIndex.indexedThrough()).toBe(seq);
    expect(await Array.fromAsync(log.auditIndex.ids())).toEqual(await Array.fromAsync(log.audit.searchableIds(seq)));
    await log.close();
    expect(verify(dataDir).status).toBe(0);
  }, 120_000); // (each crash and restart takes ~7 s; the crash may be repeated)
});

interface PatientVersion {
  id: string;
  version: number;
  deleted: number;
  write_id: string | null;
}

/** Every Patient version hearth.db holds, read from the file itself. */
function patientVersions(dataDir: string): PatientVersion[] {
  const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
  const versions = db.prepare('SELECT id, version, deleted, write_id FROM resource_versions WHERE type = \'Patient\'').all() as unknown as PatientVersion[];
  db.close();
  return versions;
}

const actionOf = (v: PatientVersion) => (v.version === 1 ? 'C' : v.deleted ? 'D' : 'U');

/**
 * The versions whose writing request has no AuditEvent in the log naming that version with the
 * right action and a success outcome (and `agent` as its first agent's name, when given).
 */
async function unnamedVersions(
  versions: readonly PatientVersion[],
  audit: { body(id: string): Promise<string | undefined> },
  agent?: string,
): Promise<string[]> {
  const unnamed: string[] = [];
  for (const v of versions) {
    const row = v.write_id ? await audit.body(v.write_id) : undefined;
    const event = row && JSON.parse(row);
    const names = (agent === undefined || event?.agent?.[0]?.name === agent) && event?.action === actionOf(v) && event.outcome === '0';
    const version = JSON.stringify(event?.entity ?? []).includes(`Patient/${v.id}/_history/${v.version}`);
    if (!names || !version) unnamed.push(`Patient/${v.id}/_history/${v.version} (${v.write_id})`);
  }
  return unnamed;
}

/** Mixed writes from 20 writers into a fresh data directory until the server is killed (SIGKILL). */
async function crashDuringWrites(): Promise<{ dataDir: string; acknowledged: string[] }> {
  const dataDir = tempDir();
  const server = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
  const json = { authorization: `Bearer ${server.token}`, 'content-type': 'application/fhir+json' };
  const acknowledged: string[] = [];
  // Creates, updates of what was created, and deletes, from 20 writers at once.
  const last: (string | undefined)[] = [];
  await writeUntilKilled(server, 1000, 20, async (w, i) => {
    const id = last[w];
    const write = !id || i % 3 === 0
      ? { method: 'POST', url: `${server.base}/Patient`, body: JSON.stringify({ resourceType: 'Patient', name: [{ family: `Crash${w}x${i}` }] }), ok: 201 }
      : i % 3 === 1
        ? { method: 'PUT', url: `${server.base}/Patient/${id}`, body: JSON.stringify({ resourceType: 'Patient', id, name: [{ family: `Again${w}x${i}` }] }), ok: 200 }
        : { method: 'DELETE', url: `${server.base}/Patient/${id}`, body: undefined, ok: 204 };
    const headers = write.body ? json : { authorization: json.authorization };
    const res = await fetch(write.url, { method: write.method, headers, body: write.body });
    const text = await res.text();
    if (res.status === write.ok) acknowledged.push(res.headers.get('x-request-id')!);
    if (res.status === 201) last[w] = (JSON.parse(text) as { id: string }).id;
    if (write.method === 'DELETE') last[w] = undefined;
  });
  expect(acknowledged.length).toBeGreaterThan(20);
  return { dataDir, acknowledged };
}

describe('transactions under a crash: all or nothing, with their AuditEvents', () => {
  it('killed with SIGKILL during a stream of transactions, then restarted: each is wholly present with its AuditEvents or wholly absent', async () => {
    let dataDir = '';
    let acknowledged: string[] = [];
    for (let crash = 0; crash < 3; crash++) {
      ({ dataDir, acknowledged } = await crashDuringTransactions());
      const again = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
      expect(await stopServer(again)).toBe(0);
      if (again.output().includes('"recovered":')) break;
    }
    const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    const rows = db.prepare('SELECT type, id, version, body, write_id FROM resource_versions WHERE type IN (\'Patient\', \'Observation\')').all() as {
      type: string;
      id: string;
      version: number;
      body: string;
      write_id: string;
    }[];
    db.close();
    // The versions of one transaction carry its request id and the entry's index: group them.
    const byTransaction = new Map<string, typeof rows>();
    for (const r of rows) {
      const tx = r.write_id.replace(/\.\d+$/, '');
      byTransaction.set(tx, [...(byTransaction.get(tx) ?? []), r]);
    }
    expect(byTransaction.size).toBeGreaterThan(5);
    const partial: string[] = [];
    for (const [tx, versions] of byTransaction) {
      const patient = versions.find((v) => v.type === 'Patient');
      const subjects = versions.filter((v) => v.type === 'Observation').map((v) => JSON.parse(v.body).subject.reference);
      if (versions.length !== 6 || !patient || subjects.some((s) => s !== `Patient/${patient.id}`)) partial.push(`${tx}: ${versions.length} versions`);
    }
    expect(partial).toEqual([]);
    for (const tx of acknowledged) expect(byTransaction.get(tx), tx).toHaveLength(6);
    // Every version's entry has its AuditEvent with a success outcome; no attempt is left open.
    const log = sqliteStorage({ dataDir });
    const unnamed: string[] = [];
    for (const r of rows) {
      const body = await log.audit.body(r.write_id);
      const event = body && JSON.parse(body);
      const ok = event?.outcome === '0' && event.action === 'C' && JSON.stringify(event.entity).includes(`${r.type}/${r.id}/_history/1`);
      if (!ok) unnamed.push(`${r.type}/${r.id} (${r.write_id})`);
    }
    expect(unnamed).toEqual([]);
    expect(await log.audit.openAttempts()).toEqual([]);
    await log.close();
    expect(verify(dataDir).status).toBe(0);
  }, 90_000); // (each crash and restart takes ~7 s; the crash may be repeated)
});

/** Transactions of a Patient and five Observations referencing it by urn:uuid, from 8 writers, until the server is killed. */
async function crashDuringTransactions(): Promise<{ dataDir: string; acknowledged: string[] }> {
  const dataDir = tempDir();
  const server = await startServer({ HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
  const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/fhir+json' };
  const acknowledged: string[] = [];
  await writeUntilKilled(server, 1500, 8, async (w, i) => {
    const patientUrl = `urn:uuid:${randomUUID()}`;
    const entry = [
      { fullUrl: patientUrl, request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', name: [{ family: `Tx${w}x${i}` }] } },
      ...Array.from({ length: 5 }, (_, n) => ({
        request: { method: 'POST', url: 'Observation' },
        resource: { resourceType: 'Observation', status: 'final', code: { text: `tx${n}` }, subject: { reference: patientUrl }, valueQuantity: { value: n } },
      })),
    ];
    const res = await fetch(server.base, { method: 'POST', headers, body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }) });
    await res.text();
    if (res.status === 200) acknowledged.push(res.headers.get('x-request-id')!);
  });
  expect(acknowledged.length).toBeGreaterThan(3);
  return { dataDir, acknowledged };
}

describe('a power cut, modelled: what no flush of hearth.db covered is lost, and nothing that was acknowledged', () => {
  it('every acknowledged write survives with its AuditEvent; the writes the cut caught are recovered as not written', async () => {
    // The model: a flush of hearth.db's write-ahead log makes durable what hearth.db and its WAL
    // held when it began (each flush here copies both then); once it has finished, that copy is
    // what a power cut leaves. The audit log (synchronous=FULL) is copied whole at the cut.
    const dataDir = tempDir();
    const copies = tempDir();
    let flushes = 0;
    let lastDurable: string | undefined;
    let cutting = false;
    let cut: ((err: Error) => void) | undefined;
    const fdatasync = (fd: number) => {
      // The cut: this flush never finishes (its waiters are failed once the files are copied).
      if (cutting) return new Promise<void>((_, reject) => (cut ??= reject));
      const copy = join(copies, String(flushes++));
      mkdirSync(copy);
      for (const f of ['hearth.db', 'hearth.db-wal']) copyFileSync(join(dataDir, f), join(copy, f));
      return new Promise<void>((resolve, reject) => fsFdatasync(fd, (err) => (err ? reject(err) : ((lastDurable = copy), resolve()))));
    };
    const { app } = await testApp({}, { dataDir, fdatasync });
    const acknowledged: { id: string; status: number }[] = [];
    let stop = false;
    const writers = Array.from({ length: 10 }, async (_, w) => {
      let mine: string | undefined;
      for (let i = 0; !stop; i++) {
        const res = !mine || i % 3 === 0
          ? await post(app, '/fhir/Patient', { resourceType: 'Patient', name: [{ family: `Cut${w}x${i}` }] })
          : i % 3 === 1
            ? await put(app, `/fhir/Patient/${mine}`, { resourceType: 'Patient', id: mine, name: [{ family: `Again${w}x${i}` }] })
            : await app.inject({ method: 'DELETE', url: `/fhir/Patient/${mine}` });
        if (res.statusCode < 300) acknowledged.push({ id: res.headers['x-request-id'] as string, status: res.statusCode });
        if (res.statusCode === 201) mine = json(res).id;
        if (res.statusCode === 204) mine = undefined;
      }
    });
    await new Promise((r) => setTimeout(r, 800));
    cutting = true;
    await vi.waitFor(() => expect(cut).toBeDefined(), { timeout: 10_000 });
    stop = true;
    // The writes in flight commit, write their attempts and wait for the flush; then nothing moves.
    await new Promise((r) => setTimeout(r, 300));
    const liveVersions = patientVersions(dataDir).length;
    const after = tempDir();
    cpSync(dataDir, after, { recursive: true, filter: (src) => !/(hearth\.db|audit-index\.db)(-wal|-shm)?$|-shm$/.test(src) });
    for (const f of ['hearth.db', 'hearth.db-wal']) copyFileSync(join(lastDurable!, f), join(after, f));
    // The process dies with the power: what it still answers (503s, 500s) no client counts.
    cut!(Object.assign(new Error('power cut'), { code: 'EIO' }));
    await Promise.all(writers);
    await app.close();
    expect(acknowledged.length).toBeGreaterThan(20);

    // The restart recovers the attempts the cut left open before it takes requests.
    const again = await testApp({}, { dataDir: after });
    const versions = patientVersions(after);
    // The cut took back writes that had committed and were not yet flushed.
    expect(versions.length).toBeLessThan(liveVersions);
    expect(await unnamedVersions(versions, again.storage.audit)).toEqual([]);
    // Every acknowledged write is stored, with its own event's success.
    const stored = new Set(versions.map((v) => v.write_id));
    expect(acknowledged.filter((a) => !stored.has(a.id))).toEqual([]);
    for (const a of acknowledged) expect(JSON.parse((await again.storage.audit.body(a.id)) ?? 'null')?.outcome, a.id).toBe('0');
    const latest = new Map<string, PatientVersion>();
    for (const v of versions) if ((latest.get(v.id)?.version ?? 0) < v.version) latest.set(v.id, v);
    const live = [...latest.values()].filter((v) => !v.deleted);
    expect(live.length).toBeGreaterThan(0);
    for (const v of live) expect((await again.app.inject({ method: 'GET', url: `/fhir/Patient/${v.id}` })).statusCode).toBe(200);
    // The writes the cut caught: recovered as not written; no attempt is left open.
    expect(await again.storage.audit.openAttempts()).toEqual([]);
    const recovered = (await Array.fromAsync(again.storage.audit.chain())).filter((l) => l.body?.includes('the server stopped before the write committed'));
    expect(recovered.length).toBeGreaterThan(0);
  }, 60_000);
});
