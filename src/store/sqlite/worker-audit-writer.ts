import { Worker } from 'node:worker_threads';
import { stopThread, THREAD_NAMES } from './thread.ts';
import type { AuditFacts } from '../../audit/audit-event.ts';
import type { StagedFacts } from '../../audit/audit-sink.ts';
import type { AuditWorkerData, AuditWorkerReply, AuditWorkerRequest } from './audit-worker.ts';

/**
 * The request-serving side of the audit writer thread: posts batches of facts and resolves each
 * when the thread reports its commit. If the thread dies, everything pending fails (closed).
 */
export class WorkerAuditWriter {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (seq: number | undefined) => void; reject: (err: Error) => void }>();
  #next = 1;
  #dead: Error | undefined;

  constructor(data: AuditWorkerData) {
    this.#worker = new Worker(new URL('./audit-worker.ts', import.meta.url), { workerData: data, name: THREAD_NAMES.auditWriter });
    this.#worker.on('message', (reply: AuditWorkerReply) => {
      for (const id of reply.ids) {
        const p = this.#pending.get(id);
        this.#pending.delete(id);
        if (reply.error) p?.reject(new Error(`audit write failed: ${reply.error}`));
        else p?.resolve(reply.seq);
      }
    });
    const die = (err: Error) => {
      this.#dead = err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', die);
    this.#worker.on('exit', (code) => die(new Error(`audit writer thread exited (${code})`)));
  }

  /** whether the thread is running (false once it died: every audit write then fails closed) */
  get alive(): boolean {
    return this.#dead === undefined;
  }

  write = (facts: readonly AuditFacts[]): Promise<number | undefined> => {
    const id = this.#next++;
    return this.#send({ kind: 'write', id, facts: [...facts] });
  };

  /** Facts the thread builds now and appends on `commit` (or drops on `discard`): see AuditStager. */
  stage = (facts: readonly AuditFacts[]): StagedFacts => {
    const id = this.#next++;
    if (!this.#dead) this.#worker.postMessage({ kind: 'stage', id, facts: [...facts] } satisfies AuditWorkerRequest);
    return {
      commit: () => this.#send({ kind: 'release', id }),
      discard: () => {
        if (!this.#dead) this.#worker.postMessage({ kind: 'discard', id } satisfies AuditWorkerRequest);
      },
    };
  };

  /** Posts a request answered by a commit (or its failure). */
  #send(request: AuditWorkerRequest): Promise<number | undefined> {
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      this.#pending.set(request.id, { resolve, reject });
      this.#worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    if (!this.#dead) await stopThread(this.#worker);
  }
}
