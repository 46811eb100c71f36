import type { AuditEvent } from 'fhir/r4.js';
import { sealResource } from '../crypto/envelope.ts';
import { AUDIT_KEK, type KeyProvider } from '../crypto/keyring.ts';
import { type AuditFacts, buildAuditEvent } from './audit-event.ts';
import { canonicalize } from './canonical-json.ts';
import type { AuditAppend, AuditStore, CheckpointSigner } from './audit-store.ts';
import { type Witness, witnessed } from './witness.ts';

const MAX_BATCH = 2000;

/**
 * Turns facts into chained AuditEvents and appends them durably, in order, as one batch; resolves
 * with the log's sequence number after the batch (undefined when the writer keeps no log).
 */
export type AuditWriter = (facts: readonly AuditFacts[]) => Promise<number | undefined>;

/**
 * Facts given to the writer before the outcome they state is certain (a transaction's entries,
 * while its commit runs): the writer builds their events meanwhile and appends them only on
 * `commit` (resolving like an AuditWriter); `discard` drops them (other facts will say what
 * happened instead).
 */
export interface StagedFacts {
  commit(): Promise<number | undefined>;
  discard(): void;
}

/** A writer that stages: one that builds events on another thread than the caller's. */
export type AuditStager = (facts: readonly AuditFacts[]) => StagedFacts;

// What a search asked for can name a patient (family=Smith): the query is encrypted at rest.
const SEALED_AUDIT_PATHS = ['entity.query'];

/** An AuditEvent as the audit log takes it: its query sealed under the audit key, and serialized. */
export function auditAppendOf(keys: KeyProvider) {
  return (built: AuditEvent, searchable = true): AuditAppend => {
    const event = built as unknown as Record<string, unknown>;
    const resource = sealResource(keys, SEALED_AUDIT_PATHS, 'AuditEvent', built.id ?? '', 1, event, AUDIT_KEK) as unknown as AuditEvent;
    return { resource, searchable, canonical: JSON.stringify(canonicalize(resource)) };
  };
}

/** Facts as the audit log takes them: built, sealed, serialized (a write-ahead attempt kept out of search). */
export function auditAppendsOf(keys: KeyProvider): (facts: readonly AuditFacts[]) => AuditAppend[] {
  const appendOf = auditAppendOf(keys);
  return (facts) => facts.map((f) => appendOf(buildAuditEvent(f), f.phase !== 'attempt'));
}

/** Appends to the log with the new head signed in its transaction and published once committed. */
export async function signedAppend(
  store: AuditStore,
  events: readonly AuditAppend[],
  sign?: CheckpointSigner,
  witness?: Witness,
): Promise<number> {
  if (!sign) return (await store.appendAudit(events)).seq;
  const w = witnessed(sign, witness);
  const head = await store.appendAudit(events, w.sign);
  w.published();
  return head.seq;
}

/** The writer on the calling thread: build, seal the query, append (signed). */
export function storeWriter(store: AuditStore, keys: KeyProvider, sign?: CheckpointSigner, witness?: Witness): AuditWriter {
  const appendsOf = auditAppendsOf(keys);
  return (facts) => signedAppend(store, appendsOf(facts), sign, witness);
}

/**
 * The durable audit sink with group commit: facts recorded in one turn of the event loop go to
 * the writer as one batch, without waiting for the batch before to commit (the writer keeps
 * batches in order and joins whatever queued while it was committing, so the next commit starts
 * as soon as the last one ends). `recordFacts` resolves only once its event is committed and
 * rejects if the commit fails — callers fail closed on that. Later issues record logins and other
 * non-REST events through the same call.
 */
export class AuditSink {
  readonly #write: AuditWriter;
  readonly #stage: AuditStager | undefined;
  readonly #committed: (seq: number) => void;
  #pending: { facts: AuditFacts; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #scheduled = false;
  readonly #inFlight = new Set<Promise<void>>();

  /**
   * `committed` hears the log's sequence number after each batch (read-after-write for auditors);
   * `stage`, where the writer has one, builds staged facts ahead (otherwise they are recorded on commit).
   */
  constructor(write: AuditWriter, committed: (seq: number) => void = () => undefined, stage?: AuditStager) {
    this.#write = write;
    this.#committed = committed;
    this.#stage = stage;
  }

  /**
   * Facts whose outcome is not yet certain: `commit` records them (resolving once committed, like
   * `recordFacts`), `discard` drops them. Exactly one of the two must follow.
   */
  stage(facts: readonly AuditFacts[]): { commit(): Promise<void>; discard(): void } {
    if (facts.length === 0) return { commit: () => Promise.resolve(), discard: () => undefined };
    if (!this.#stage) {
      return { commit: async () => void (await Promise.all(facts.map((f) => this.recordFacts(f)))), discard: () => undefined };
    }
    const staged = this.#stage(facts);
    return {
      commit: () => {
        const done = staged.commit().then((seq) => {
          if (seq !== undefined) this.#committed(seq);
        });
        this.#inFlight.add(done);
        void done.finally(() => this.#inFlight.delete(done)).catch(() => undefined);
        return done;
      },
      discard: () => staged.discard(),
    };
  }

  recordFacts(facts: AuditFacts): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ facts, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // One turn of the event loop: requests finishing meanwhile join this batch.
        setImmediate(() => this.#send());
      }
    });
  }

  /** Waits until everything recorded so far is committed (graceful shutdown). */
  async drain(): Promise<void> {
    while (this.#scheduled || this.#inFlight.size > 0) {
      if (this.#inFlight.size > 0) await Promise.allSettled(this.#inFlight);
      else await new Promise((r) => setImmediate(r));
    }
  }

  #send(): void {
    this.#scheduled = false;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_BATCH);
      const done = this.#write(batch.map((b) => b.facts)).then(
        (seq) => {
          if (seq !== undefined) this.#committed(seq);
          for (const b of batch) b.resolve();
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err);
        },
      );
      this.#inFlight.add(done);
      void done.finally(() => this.#inFlight.delete(done));
    }
  }
}
