// The audit indexer thread of the embedded store: follows the audit log (audit.db) and writes
// its searchable events into the copy that auditors search (audit-index.db), on a connection
// with synchronous=NORMAL (the log is the durable record; after a power loss the mark and the
// rows it covers fall back together and are rebuilt from the log). It looks at the log's head
// every INDEX_DELAY_MS and takes in everything new, CHUNK events per transaction: the file is
// its alone to write (readers do not wait for it in WAL mode), and a large chunk writes a B-tree
// page that many events touch once (20,000 entry events: 170 us an event 500 at a time, 289 us
// 25 at a time). It yields to its event loop between chunks, and
// indexes at once when a reader asks ('index'). Appends from other processes (operator
// commands) are followed the same way. On Linux it lowers its own scheduling priority (nice is
// per thread there): when every core is busy, requests and the audit commits they wait for go
// first, and the index catches up when load eases (readiness and /metrics show the lag).
import { platform, setPriority } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { asyncAuditIndex, asyncAuditStore } from '../../audit/audit-store.ts';
import { AuditIndexer, indexingFailed } from '../../audit/indexer.ts';
import { loadFhirModel } from '../../fhir/definitions.ts';
import { SqliteAuditLog } from './sqlite-audit-log.ts';
import { AUDIT_INDEX_FILE } from './sqlite-schema.ts';
import { openAuditIndex, openAuditLogDb } from './sqlite-storage.ts';

export interface AuditIndexWorkerData {
  readonly dataDir: string;
  readonly logPath: string;
  readonly baseUrl: string;
}

/** How far the index has come. */
export interface AuditIndexWorkerReply {
  readonly indexed: number;
}

const INDEX_DELAY_MS = 200;
const CHUNK = 500;
const NICE = 10;

const data = workerData as AuditIndexWorkerData;
// Elsewhere the call would lower the whole process, the request thread included.
if (platform() === 'linux') setPriority(NICE);
const logDb = openAuditLogDb(data.logPath);
const log = new SqliteAuditLog(logDb);
const copy = openAuditIndex(join(data.dataDir, AUDIT_INDEX_FILE));
const model = loadFhirModel({ updateCreate: false });
const indexer = new AuditIndexer(asyncAuditStore(log), asyncAuditIndex(copy.index), model, data.baseUrl);
let closed = false;
let running = false;
const progress = (indexed: number) => parentPort?.postMessage({ indexed } satisfies AuditIndexWorkerReply);

/** One chunk, then (if there was one) the next; one pass at a time. */
function index(): void {
  if (closed || running) return;
  running = true;
  const pump = async () => {
    let more = false;
    try {
      more = !closed && (await indexer.step(progress, CHUNK));
    } catch (err) {
      indexingFailed(err);
    }
    if (more) setImmediate(() => void pump());
    else running = false;
  };
  void pump();
}

await indexer.applyPurges();
await indexer.catchUp(progress);
const follow = setInterval(index, INDEX_DELAY_MS);

parentPort?.on('message', async (msg: 'index' | 'close') => {
  if (msg === 'index') {
    index();
    return;
  }
  // What is committed is indexed before the thread stops (the next start would do it too).
  closed = true;
  try {
    await indexer.catchUp(progress);
  } catch (err) {
    indexingFailed(err);
  }
  clearInterval(follow);
  copy.close();
  logDb.close();
  parentPort?.close();
});
