import type { Worker } from 'node:worker_threads';

/** Asks one of the store's threads to finish what it holds ('close') and waits until it has exited. */
export async function stopThread(worker: Worker): Promise<void> {
  const exited = new Promise((r) => worker.once('exit', r));
  worker.postMessage('close');
  await exited;
}
