// The audit writer thread of the embedded store: its own connection to the database file, so
// that the fsync of each audit commit blocks this thread, not the one serving requests. Batches
// form naturally: whatever arrives while a commit is on disk goes into the next one.
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditFacts } from '../../audit/audit-event.ts';
import { storeWriter } from '../../audit/audit-sink.ts';
import { checkpointSigner, loadSigningKey } from '../../audit/signing-key.ts';
import { openWitness } from '../../audit/witness.ts';
import type { AuditConfig } from '../../config/config.ts';
import { LocalKeyring } from '../../crypto/keyring.ts';
import { loadFhirModel } from '../../fhir/definitions.ts';
import { SqliteAuditStore } from './sqlite-audit-store.ts';

export interface AuditWorkerData {
  readonly dbPath: string;
  readonly dataDir: string;
  readonly baseUrl: string;
  readonly audit: AuditConfig;
  readonly keyring: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'env'; readonly json: string };
}

export interface AuditWorkerRequest {
  readonly id: number;
  readonly facts: AuditFacts[];
}

export type AuditWorkerReply = { readonly ids: number[]; readonly error?: string };

const data = workerData as AuditWorkerData;
const db = new DatabaseSync(data.dbPath);
db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;');
const transaction = <T>(work: () => T): T => {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = work();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
};
const write = storeWriter(
  new SqliteAuditStore(db, transaction),
  loadFhirModel({ updateCreate: false }),
  data.baseUrl,
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
    await write(batch.flatMap((b) => b.facts));
    parentPort?.postMessage({ ids } satisfies AuditWorkerReply);
  } catch (err) {
    parentPort?.postMessage({ ids, error: (err as Error).message } satisfies AuditWorkerReply);
  }
}

parentPort?.on('message', (msg: AuditWorkerRequest | 'close') => {
  if (msg === 'close') {
    db.close();
    parentPort?.close();
    return;
  }
  queue.push(msg);
  if (!scheduled) {
    scheduled = true;
    setImmediate(() => void flush());
  }
});
