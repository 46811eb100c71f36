import { StoreThread, THREAD_NAMES } from './thread.ts';
import type { AuditIndexWorkerData, AuditIndexWorkerReply } from './audit-index-worker.ts';

/** The request-serving side of the audit indexer thread: hears its progress, asks it to run now. */
export class WorkerAuditIndexer {
  // Should it stop, readers wait out HEARTH_AUDIT_INDEX_WAIT_MS and get 503: the log itself is unaffected.
  readonly #thread: StoreThread;

  /** `indexed` hears how far the thread has indexed the log. */
  constructor(data: AuditIndexWorkerData, indexed: (seq: number) => void) {
    this.#thread = new StoreThread(
      new URL('./audit-index-worker.ts', import.meta.url),
      { workerData: data, name: THREAD_NAMES.auditIndexer },
      'the audit indexer thread',
    );
    this.#thread.worker.on('message', (reply: AuditIndexWorkerReply) => indexed(reply.indexed));
  }

  /** whether the thread is running */
  get alive(): boolean {
    return this.#thread.alive;
  }

  /** Asks the thread to index what the log holds now (a reader is waiting, or recovery appended). */
  nudge(): void {
    if (this.#thread.alive) this.#thread.worker.postMessage('index');
  }

  close(): Promise<void> {
    return this.#thread.close();
  }
}
