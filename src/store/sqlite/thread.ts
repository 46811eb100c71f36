import { Worker } from 'node:worker_threads';

/**
 * The names of the store's threads as the operating system shows them (`top -H`, `ps -L`, each
 * thread's `/proc/<pid>/task/<tid>/comm`; Node names a worker's thread after its `name`, Linux
 * keeps 15 characters), so that an operator can tell which of a server's threads is busy.
 */
export const THREAD_NAMES = { auditWriter: 'hearth-audit', auditIndexer: 'hearth-index', checkpointer: 'hearth-checkpt' } as const;

/** Asks one of the store's threads to finish what it holds ('close') and waits until it has exited. */
export async function stopThread(worker: Worker): Promise<void> {
  const exited = new Promise((r) => worker.once('exit', r));
  worker.postMessage('close');
  await exited;
}

/**
 * One of the store's threads, running `file`: should it stop other than by `close()` (an
 * uncaught error, a non-zero exit), one line on standard error says which (`what`: "the audit
 * indexer thread") and why, and `alive` turns false.
 */
export class StoreThread {
  readonly worker: Worker;
  #dead = false;

  constructor(file: URL, options: { readonly workerData: unknown; readonly name: string }, what: string) {
    this.worker = new Worker(file, options);
    const die = (err: Error) => {
      this.#dead = true;
      process.stderr.write(`hearth: ${what} stopped: ${err.message}\n`);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => {
      if (!this.#dead && code !== 0) die(new Error(`exit code ${code}`));
      this.#dead = true;
    });
  }

  /** whether the thread is running */
  get alive(): boolean {
    return !this.#dead;
  }

  async close(): Promise<void> {
    if (!this.#dead) await stopThread(this.worker);
  }
}
