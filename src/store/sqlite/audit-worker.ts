// The audit writer thread of the embedded store. It owns the commits of the audit log (audit.db,
// its own file): the fsync of each batch blocks this thread, not the one serving requests, and
// batches form naturally — whatever arrives while a commit is on disk goes into the next one.
// Facts are built into events as they arrive; staged ones (a transaction's entries, sent while
// its commit runs on the request thread) are held built, their bodies compressed, until released
// into a batch, or dropped.
// Indexing for search happens on a thread of its own (audit-index-worker.ts), so that it never
// holds a commit up.
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditFacts } from '../../audit/audit-event.ts';
import { type AuditAppend, asyncAuditStore } from '../../audit/audit-store.ts';
import { auditAppendsOf, signedAppend } from '../../audit/audit-sink.ts';
import { packBodies } from '../../audit/log-codec.ts';
import { auditSigner } from '../../audit/signing-key.ts';
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

/** Facts to append in the next batch, to hold built, or a held set to append or drop. */
export type AuditWorkerRequest =
  | { readonly kind: 'write' | 'stage'; readonly id: number; readonly facts: AuditFacts[] }
  | { readonly kind: 'release' | 'discard'; readonly id: number };

/** A batch committed (with the log's head after it) or failed. */
export interface AuditWorkerReply {
  readonly ids: number[];
  readonly seq?: number;
  readonly error?: string;
}

const data = workerData as AuditWorkerData;
const logDb = openAuditLogDb(data.logPath);
const store = asyncAuditStore(new SqliteAuditLog(logDb));
const appendsOf = auditAppendsOf(data.keyring.kind === 'file' ? LocalKeyring.open(data.keyring.path, false) : LocalKeyring.fromJson(data.keyring.json));
const sign = auditSigner(data.audit, () => new Date());
const witness = openWitness(data.audit.witness);

let queue: { id: number; events: AuditAppend[] }[] = [];
const held = new Map<number, AuditAppend[] | Error>();
let scheduled = false;

async function flush(): Promise<void> {
  scheduled = false;
  const batch = queue;
  queue = [];
  const ids = batch.map((b) => b.id);
  try {
    const seq = await signedAppend(store, batch.flatMap((b) => b.events), sign, witness);
    parentPort?.postMessage({ ids, seq } satisfies AuditWorkerReply);
  } catch (err) {
    parentPort?.postMessage({ ids, error: (err as Error).message } satisfies AuditWorkerReply);
  }
}

/** Facts built, or why they could not be (answered to their caller, as a failed commit would be). */
function build(facts: AuditFacts[]): AuditAppend[] | Error {
  try {
    return appendsOf(facts);
  } catch (err) {
    return err as Error;
  }
}

parentPort?.on('message', (msg: AuditWorkerRequest | 'close') => {
  if (msg === 'close') {
    logDb.close();
    parentPort?.close();
    return;
  }
  if (msg.kind === 'stage') {
    const built = build(msg.facts);
    held.set(msg.id, built instanceof Error ? built : packBodies(built));
    return;
  }
  const events = msg.kind === 'write' ? build(msg.facts) : (held.get(msg.id) ?? new Error('no such staged facts'));
  held.delete(msg.id);
  if (msg.kind === 'discard') return;
  if (events instanceof Error) {
    parentPort?.postMessage({ ids: [msg.id], error: events.message } satisfies AuditWorkerReply);
    return;
  }
  queue.push({ id: msg.id, events });
  if (!scheduled) {
    scheduled = true;
    setImmediate(() => void flush());
  }
});
