import type { AuditEvent } from 'fhir/r4.js';
import { sealResource } from '../crypto/envelope.ts';
import { AUDIT_KEK, type KeyProvider } from '../crypto/keyring.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { extractIndex } from '../fhir/index-extractor.ts';
import { type AuditFacts, buildAuditEvent } from './audit-event.ts';
import type { AuditAppend, AuditStore, CheckpointSigner } from './audit-store.ts';
import { type Witness, witnessed } from './witness.ts';

const MAX_BATCH = 2000;

/** Turns facts into chained, indexed AuditEvents and appends them durably, in order, as one batch. */
export type AuditWriter = (facts: readonly AuditFacts[]) => Promise<void>;

// What a search asked for can name a patient (family=Smith): the query is encrypted at rest.
const SEALED_AUDIT_PATHS = ['entity.query'];

/** The writer on the calling thread: build, index, seal the query, append. */
/** An AuditEvent as the audit store takes it: indexed, and its query sealed under the audit key. */
export function auditAppendOf(model: FhirModel, baseUrl: string, keys: KeyProvider) {
  const auditModel = model.types.get('AuditEvent');
  if (!auditModel) throw new Error('capability-statement.json must serve AuditEvent');
  return (built: AuditEvent, searchable = true): AuditAppend => {
    const event = built as unknown as Record<string, unknown>;
    const index = extractIndex(auditModel, event, baseUrl);
    const resource = sealResource(keys, SEALED_AUDIT_PATHS, 'AuditEvent', built.id ?? '', 1, event, AUDIT_KEK) as unknown as AuditEvent;
    return { resource, index, searchable };
  };
}

export function storeWriter(
  store: AuditStore,
  model: FhirModel,
  baseUrl: string,
  keys: KeyProvider,
  sign?: CheckpointSigner,
  witness?: Witness,
): AuditWriter {
  const appendOf = auditAppendOf(model, baseUrl, keys);
  return async (facts) => {
    const events = facts.map((f) => appendOf(buildAuditEvent(f), f.phase !== 'attempt'));
    if (!sign) return store.appendAudit(events);
    // The head of the batch is signed in its transaction and published once it has committed.
    const w = witnessed(sign, witness);
    await store.appendAudit(events, w.sign);
    w.published();
  };
}

/**
 * The durable audit sink with group commit: facts recorded while a commit is in flight wait for
 * the next one, so many concurrent requests share one durable write. `recordFacts` resolves only
 * once its event is committed and rejects if the commit fails — callers fail closed on that.
 * Later issues record logins and other non-REST events through the same call.
 */
export class AuditSink {
  readonly #write: AuditWriter;
  #pending: { facts: AuditFacts; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #flushing: Promise<void> | undefined;

  constructor(write: AuditWriter) {
    this.#write = write;
  }

  recordFacts(facts: AuditFacts): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ facts, resolve, reject });
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
          await this.#write(batch.map((b) => b.facts));
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
