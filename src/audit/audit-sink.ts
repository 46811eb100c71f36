import type { AuditEvent } from 'fhir/r4.js';
import type { IndexEntry } from '../store/resource-store.ts';
import { type AuditFacts, buildAuditEvent } from './audit-event.ts';
import type { AuditAppend, AuditStore, CheckpointSigner } from './audit-store.ts';

const MAX_BATCH = 2000;

/**
 * The durable audit sink with group commit: events recorded while a commit is in flight wait for
 * the next one, so many concurrent requests share one durable write. `record` resolves only once
 * its event is committed, and rejects if the commit fails — callers fail closed on that.
 */
export class AuditSink {
  readonly #store: AuditStore;
  readonly #index: (event: AuditEvent) => IndexEntry[];
  readonly #sign?: CheckpointSigner;
  #pending: { entry: AuditAppend; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #flushing: Promise<void> | undefined;

  constructor(store: AuditStore, index: (event: AuditEvent) => IndexEntry[], sign?: CheckpointSigner) {
    this.#store = store;
    this.#index = index;
    this.#sign = sign;
  }

  /** Builds the AuditEvent for what happened (any interaction, a login, a refusal) and records it. */
  recordFacts(facts: AuditFacts): Promise<void> {
    return this.record(buildAuditEvent(facts));
  }

  record(event: AuditEvent): Promise<void> {
    let entry: AuditAppend;
    try {
      entry = { resource: event, index: this.#index(event) };
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  /** Waits until everything recorded so far is committed (graceful shutdown). */
  async drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        // One turn of the event loop: requests finishing meanwhile join this batch.
        await new Promise((r) => setImmediate(r));
        const batch = this.#pending.splice(0, MAX_BATCH);
        try {
          await this.#store.appendAudit(
            batch.map((b) => b.entry),
            this.#sign,
          );
          for (const b of batch) b.resolve();
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }
}
