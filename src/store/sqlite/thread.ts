import type { Worker } from 'node:worker_threads';

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
