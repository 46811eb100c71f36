import { Worker } from 'node:worker_threads';
import type { CheckpointWorkerData } from './checkpoint-worker.ts';
import { stopThread, THREAD_NAMES } from './thread.ts';

/** The request-serving side of hearth.db's checkpointer thread (checkpoint-worker.ts). */
export class WorkerCheckpointer {
  readonly #worker: Worker;
  #dead = false;

  constructor(data: CheckpointWorkerData) {
    this.#worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url), { workerData: data, name: THREAD_NAMES.checkpointer });
    const die = (err: Error) => {
      this.#dead = true;
      // hearth.db's own connection checkpoints past its fallback threshold meanwhile.
      process.stderr.write(`hearth: the checkpointer thread of hearth.db stopped: ${err.message}\n`);
    };
    this.#worker.on('error', die);
    this.#worker.on('exit', (code) => {
      if (!this.#dead && code !== 0) die(new Error(`exit code ${code}`));
      this.#dead = true;
    });
  }

  async close(): Promise<void> {
    if (!this.#dead) await stopThread(this.#worker);
  }
}
