import { Worker } from 'node:worker_threads';
import { stopThread, THREAD_NAMES } from './thread.ts';
import type { AuditIndexWorkerData, AuditIndexWorkerReply } from './audit-index-worker.ts';

/** The request-serving side of the audit indexer thread: hears its progress, asks it to run now. */
export class WorkerAuditIndexer {
  readonly #worker: Worker;
  #dead = false;

  /** `indexed` hears how far the thread has indexed the log. */
  constructor(data: AuditIndexWorkerData, indexed: (seq: number) => void) {
    this.#worker = new Worker(new URL('./audit-index-worker.ts', import.meta.url), { workerData: data, name: THREAD_NAMES.auditIndexer });
    this.#worker.on('message', (reply: AuditIndexWorkerReply) => indexed(reply.indexed));
    const die = (err: Error) => {
      this.#dead = true;
      // Readers then wait out HEARTH_AUDIT_INDEX_WAIT_MS and get 503: the log itself is unaffected.
      process.stderr.write(`hearth: the audit indexer thread stopped: ${err.message}\n`);
    };
    this.#worker.on('error', die);
    this.#worker.on('exit', (code) => {
      if (!this.#dead && code !== 0) die(new Error(`exit code ${code}`));
      this.#dead = true;
    });
  }

  /** whether the thread is running */
  get alive(): boolean {
    return !this.#dead;
  }

  /** Asks the thread to index what the log holds now (a reader is waiting, or recovery appended). */
  nudge(): void {
    if (!this.#dead) this.#worker.postMessage('index');
  }

  async close(): Promise<void> {
    if (!this.#dead) await stopThread(this.#worker);
  }
}
