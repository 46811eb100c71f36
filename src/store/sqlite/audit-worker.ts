// The audit writer thread of the embedded store. It owns the commits of the audit log (audit.db,
// its own file): the fsync of each batch blocks this thread, not the one serving requests, and
// batches form naturally — whatever arrives while a commit is on disk goes into the next one.
// Behind each commit, once it is acknowledged, it indexes the new events into the searchable
// copy in hearth.db (a connection with synchronous=NORMAL: the log is the durable record, the
// index is rebuilt from it after a crash). It also follows appends made by other processes
// (operator commands) by looking at the log's head every second.
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditFacts } from '../../audit/audit-event.ts';
import { storeWriter } from '../../audit/audit-sink.ts';
import { AuditIndexer } from '../../audit/indexer.ts';
import { checkpointSigner, loadSigningKey } from '../../audit/signing-key.ts';
import { openWitness } from '../../audit/witness.ts';
import type { AuditConfig } from '../../config/config.ts';
import { LocalKeyring } from '../../crypto/keyring.ts';
import { loadFhirModel } from '../../fhir/definitions.ts';
import { SqliteAuditLog } from './sqlite-audit-log.ts';
import { openAuditLogDb } from './sqlite-storage.ts';
import { SqliteStore } from './sqlite-store.ts';

export interface AuditWorkerData {
  readonly dataDir: string;
  readonly logPath: string;
  readonly baseUrl: string;
  readonly audit: AuditConfig;
  readonly keyring: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'env'; readonly json: string };
}

export interface AuditWorkerRequest {
  readonly id: number;
  readonly facts: AuditFacts[];
}

/** A batch committed (with the log's head after it) or failed; or how far the index has come. */
export type AuditWorkerReply = { readonly ids: number[]; readonly seq?: number; readonly error?: string } | { readonly indexed: number };

const FOLLOW_MS = 1000;

const data = workerData as AuditWorkerData;
const logDb = openAuditLogDb(data.logPath);
const log = new SqliteAuditLog(logDb);
const resources = new SqliteStore({ dataDir: data.dataDir, synchronous: 'NORMAL' });
const write = storeWriter(
  log,
  data.keyring.kind === 'file' ? LocalKeyring.open(data.keyring.path, false) : LocalKeyring.fromJson(data.keyring.json),
  checkpointSigner(loadSigningKey(data.audit.signingKey), () => new Date()),
  openWitness(data.audit.witness),
);
const indexer = new AuditIndexer(log, resources.auditIndex(), loadFhirModel({ updateCreate: false }), data.baseUrl);

let queue: AuditWorkerRequest[] = [];
let scheduled = false;
let closed = false;

function index(): void {
  if (closed) return;
  try {
    indexer.catchUp((indexed) => parentPort?.postMessage({ indexed } satisfies AuditWorkerReply));
  } catch (err) {
    // The log holds the events; the next pass (or the next start) indexes them.
    process.stderr.write(`hearth: the audit indexer fell behind: ${(err as Error).message}\n`);
  }
}

async function flush(): Promise<void> {
  scheduled = false;
  const batch = queue;
  queue = [];
  const ids = batch.map((b) => b.id);
  try {
    const seq = await write(batch.flatMap((b) => b.facts));
    parentPort?.postMessage({ ids, seq } satisfies AuditWorkerReply);
  } catch (err) {
    parentPort?.postMessage({ ids, error: (err as Error).message } satisfies AuditWorkerReply);
  }
  // Behind the acknowledgement: the responses are on their way while this batch is indexed.
  index();
}

indexer.applyPurges();
index();
const follow = setInterval(index, FOLLOW_MS);

parentPort?.on('message', (msg: AuditWorkerRequest | 'close' | 'index') => {
  if (msg === 'index') {
    index();
    return;
  }
  if (msg === 'close') {
    closed = true;
    clearInterval(follow);
    void resources.close();
    logDb.close();
    parentPort?.close();
    return;
  }
  queue.push(msg);
  if (!scheduled) {
    scheduled = true;
    setImmediate(() => void flush());
  }
});
