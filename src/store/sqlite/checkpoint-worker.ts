// The checkpointer thread of the embedded store (a server's): copies the frames of hearth.db's
// write-ahead log into the database file, so that the request thread's commits only append to
// the log. Without it, the COMMIT that takes the log past SQLite's threshold (1,000 pages: every
// dozen or so encrypted creates) copies them itself, flushing the log and the database, while
// every other request waits. Measured on creates at 10 connections, alternating: a COMMIT's mean
// 0.75–1.13 ms and p99 7.6–11.9 ms with the checkpoints in it, 0.42–0.56 ms and 1.8–4.2 ms here.
//
// A PASSIVE checkpoint waits for no reader and no writer; the connection that runs it flushes the
// log before copying and the database after (synchronous FULL or NORMAL alike), so nothing a
// power cut could take back reaches hearth.db. The log starts over when a write transaction
// finds every frame copied; under steady writes that is rare (a commit lands while the copy
// runs), so the COMMIT that takes the log past SqliteStore's FALLBACK_CHECKPOINT copies what
// this thread has not yet (at most the last CHECKPOINT_MS of commits) and the log starts over
// there. The same threshold bounds the log should this thread stop.
// See: https://www.sqlite.org/c3ref/wal_checkpoint_v2.html and https://www.sqlite.org/wal.html#ckpt
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointWorkerData {
  /** hearth.db */
  readonly path: string;
  /** how often to checkpoint, in ms */
  readonly everyMs: number;
}

const data = workerData as CheckpointWorkerData;
const db = new DatabaseSync(data.path);
const checkpoint = db.prepare('PRAGMA main.wal_checkpoint(PASSIVE)');
let failed = false;
const timer = setInterval(() => {
  try {
    checkpoint.get();
    failed = false;
  } catch (err) {
    // (once a failure, not every tick of it; the request thread's connection checkpoints meanwhile)
    if (!failed) process.stderr.write(`hearth: checkpointing hearth.db failed: ${(err as Error).message}\n`);
    failed = true;
  }
}, data.everyMs);

parentPort?.on('message', (msg: 'close') => {
  if (msg !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
