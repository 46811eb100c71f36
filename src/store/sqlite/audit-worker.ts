// The audit writer thread of the embedded store. It owns the commits of the audit log (audit.db,
// its own file): the fsync of each batch blocks this thread, not the one serving requests, and
// batches form naturally — whatever arrives while a commit is on disk goes into the next one.
// Indexing for search happens on a thread of its own (audit-index-worker.ts), so that it never
// holds a commit up.
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditFacts } from '../../audit/audit-event.ts';
import { asyncAuditStore } from '../../audit/audit-store.ts';
import { storeWriter } from '../../audit/audit-sink.ts';
import { checkpointSigner, loadSigningKey } from '../../audit/signing-key.ts';
import { openWitness } from '../../audit/witness.ts';
import type { AuditConfig } from '../../config/config.ts';
import { LocalKeyring } from '../../crypto/keyring.ts';
import { SqliteAuditLog } from './sqlite-audit-log.ts';
import { openAuditLogDb } from './sqlite-storage.ts';

export interface AuditWorkerData {
  readonly logPath: string;
  readonly audit: AuditConfig;
  readonly keyring: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'env'; readonly json: string };
}

export interface AuditWorkerRequest {
  readonly id: number;
  readonly facts: AuditFacts[];
}

/** A batch committed (with the log's head after it) or failed. */
export interface AuditWorkerReply {
  readonly ids: number[];
  readonly seq?: number;
  readonly error?: string;
}

const data = workerData as AuditWorkerData;
const logDb = openAuditLogDb(data.logPath);
const log = new SqliteAuditLog(logDb);
const write = storeWriter(
  asyncAuditStore(log),
  data.keyring.kind === 'file' ? LocalKeyring.open(data.keyring.path, false) : LocalKeyring.fromJson(data.keyring.json),
  checkpointSigner(loadSigningKey(data.audit.signingKey), () => new Date()),
  openWitness(data.audit.witness),
);

let queue: AuditWorkerRequest[] = [];
let scheduled = false;

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
}

parentPort?.on('message', (msg: AuditWorkerRequest | 'close') => {
  if (msg === 'close') {
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
