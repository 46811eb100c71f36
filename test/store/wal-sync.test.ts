import { copyFileSync, fdatasync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it, vi } from 'vitest';
import type { Prepare } from '../../src/store/resource-store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { WalSync } from '../../src/store/sqlite/wal-sync.ts';
import { tempDir } from '../helpers/app.ts';

/** A flush the test lets finish (or fail) when it chooses: each call is one held flush. */
function heldFlushes() {
  const calls: { fd: number; finish(): void; fail(err: Error): void }[] = [];
  const flush = (fd: number) =>
    new Promise<void>((resolve, reject) => {
      // (finishing runs the real fdatasync of what was written before the call)
      calls.push({ fd, finish: () => fdatasync(fd, (err) => (err ? reject(err) : resolve())), fail: reject });
    });
  return { calls, flush };
}

/** Whether a promise has settled by the time the microtasks and I/O callbacks queued now have run. */
async function settled(p: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  let state: 'resolved' | 'rejected' | 'pending' = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await new Promise((r) => setTimeout(r, 20));
  return state;
}

const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });

describe('WalSync: hearth.db\'s commits flushed in groups, off the request thread', () => {
  const walFile = () => {
    const file = join(tempDir(), 'hearth.db-wal');
    writeFileSync(file, 'frames');
    return file;
  };

  it('nothing committed, nothing to wait for: no flush', async () => {
    const { calls, flush } = heldFlushes();
    const wal = new WalSync(walFile(), flush);
    await wal.durable();
    expect(calls).toHaveLength(0);
  });

  it('a commit waits for a flush begun after it; the commits made during a flush wait for the next, which covers them all', async () => {
    const { calls, flush } = heldFlushes();
    const wal = new WalSync(walFile(), flush);
    wal.committed();
    const first = wal.durable();
    wal.committed();
    const second = wal.durable();
    wal.committed();
    const third = wal.durable();
    // One flush at a time: the second and third commits came after the first flush began.
    expect(calls).toHaveLength(1);
    expect(await settled(first)).toBe('pending');
    calls[0].finish();
    expect(await settled(first)).toBe('resolved');
    expect(await settled(second)).toBe('pending');
    expect(calls).toHaveLength(2);
    calls[1].finish();
    expect(await settled(second)).toBe('resolved');
    expect(await settled(third)).toBe('resolved');
    // Everything is on disk: a read waits for nothing.
    await wal.durable();
    expect(calls).toHaveLength(2);
    wal.close();
  });

  it('a failed flush fails its waiters and every wait after it, naming the error and what to do', async () => {
    const { calls, flush } = heldFlushes();
    const wal = new WalSync(walFile(), flush);
    wal.committed();
    const waiting = wal.durable();
    calls[0].fail(eio);
    const message = 'hearth.db: flushing the write-ahead log to disk failed (EIO); writes since the last flush may not be on disk: restart the server';
    await expect(waiting).rejects.toThrow(message);
    await expect(wal.durable()).rejects.toThrow(message);
    expect(() => wal.check()).toThrow(message);
    expect(() => wal.flushNow()).toThrow(message);
    expect(calls).toHaveLength(1);
    wal.close();
  });
});

describe('the embedded store answers a write once its commit is on disk, and a read once what it saw is', () => {
  const prepare =
    (family: string): Prepare =>
      ({ id, versionId, lastUpdated }) => ({
        resource: { resourceType: 'Patient', id, meta: { versionId: String(versionId), lastUpdated }, name: [{ family }] },
        index: [{ param: 'family', grp: 0, code: family }],
      });

  /** A file store whose flushes are held, and a create of `family` on it: committed, not yet answered. */
  const heldCreate = (family: string) => {
    const dataDir = tempDir();
    const { calls, flush } = heldFlushes();
    const store = new SqliteStore({ dataDir, fdatasync: flush });
    const created = store.create('Patient', prepare(family));
    // (committed: another connection sees it)
    const other = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    const { id } = other.prepare('SELECT id FROM resource_versions WHERE type = \'Patient\'').get() as { id: string };
    other.close();
    return { dataDir, calls, store, created, id };
  };

  it('a create resolves after the flush that covers it; a read made after its commit waits for the same flush', async () => {
    const { calls, store, created, id } = heldCreate('Held');
    expect(await settled(created)).toBe('pending');
    const read = store.read('Patient', id);
    expect(await settled(read)).toBe('pending');
    expect(calls).toHaveLength(1);
    calls[0].finish();
    expect((await created).version.id).toBe(id);
    expect((await read)?.resource).toMatchObject({ name: [{ family: 'Held' }] });
    await store.close();
  });

  it('a refusal that rests on a commit not yet on disk (a version conflict) waits for its flush too', async () => {
    const { calls, store, created, id } = heldCreate('First');
    // Version 1 exists only in the log not yet flushed: "not version 7" must not be said before it is on disk.
    const refused = store.update('Patient', { id }, prepare('Second'), { ifMatch: 7, allowCreate: false });
    expect(await settled(refused)).toBe('pending');
    calls[0].finish();
    await created;
    await expect(refused).rejects.toMatchObject({ failure: { kind: 'version-conflict', id } });
    await store.close();
  });

  it('after a failed flush it writes nothing more and answers nothing; readiness (hasResources) fails; a restart reads what is on disk', async () => {
    const { dataDir, calls, store, created } = heldCreate('Doubt');
    calls[0].fail(eio);
    await expect(created).rejects.toThrow(/flushing the write-ahead log to disk failed \(EIO\)/);
    await expect(store.create('Patient', prepare('After'))).rejects.toThrow(/restart the server/);
    await expect(store.search({ type: 'Patient', where: [], sort: [], count: 10, total: 'none' })).rejects.toThrow(/restart the server/);
    expect(() => store.hasResources()).toThrow(/restart the server/);
    await store.close();
    // The write after the failure never reached the file; the one the flush failed for is in
    // doubt (here the page cache kept it).
    const again = new SqliteStore({ dataDir });
    const families = (await again.search({ type: 'Patient', where: [], sort: [], count: 10, total: 'none' })).matches.map((m) => (m.resource as any).name[0].family);
    expect(families).toEqual(['Doubt']);
    await again.close();
  });

  it('in memory there is no write-ahead log to flush: a create is answered at once', async () => {
    const memory = new SqliteStore({ dataDir: ':memory:' });
    await memory.create('Patient', prepare('Memory'));
    expect((await memory.search({ type: 'Patient', where: [], sort: [], count: 10, total: 'none' })).matches).toHaveLength(1);
    await memory.close();
  });
});

describe('hearth.db\'s checkpointer thread: the request thread\'s commits only append to the log', () => {
  const prepare: Prepare = ({ id, versionId, lastUpdated }) => ({
    resource: { resourceType: 'Patient', id, meta: { versionId: String(versionId), lastUpdated }, name: [{ family: 'Copied' }] },
    index: [{ param: 'family', grp: 0, code: 'copied' }],
  });
  /** The Patients hearth.db holds without its write-ahead log: what checkpoints copied into it. */
  const inDatabaseFile = (dataDir: string): number => {
    const alone = join(tempDir(), 'hearth.db');
    copyFileSync(join(dataDir, 'hearth.db'), alone);
    const db = new DatabaseSync(alone, { readOnly: true });
    // (a fresh database whose schema is still in the log has no table there yet)
    const table = db.prepare('SELECT 1 FROM sqlite_master WHERE name = \'resource_versions\'').get();
    const n = table ? (db.prepare('SELECT COUNT(*) AS n FROM resource_versions WHERE type = \'Patient\'').get() as { n: number }).n : 0;
    db.close();
    return n;
  };

  it('copies a commit into the database file within moments, where the COMMIT itself would wait for 1,000 pages of log', async () => {
    const dataDir = tempDir();
    const store = new SqliteStore({ dataDir, checkpointThread: true });
    await store.create('Patient', prepare);
    await vi.waitFor(() => expect(inDatabaseFile(dataDir)).toBe(1), { timeout: 5000, interval: 50 });
    await store.close();

    // Without the thread, one small commit stays in the log (SQLite checkpoints at 1,000 pages).
    const inline = tempDir();
    const other = new SqliteStore({ dataDir: inline });
    await other.create('Patient', prepare);
    await new Promise((r) => setTimeout(r, 500));
    expect(inDatabaseFile(inline)).toBe(0);
    await other.close();
  });
});
