import type { AuditEvent } from 'fhir/r4.js';
import type { IndexEntry } from '../fhir/query.ts';

// The AuditStore port: append-only, hash-chained, durable. It has no update and no delete; the
// only removal is a retention purge, which is itself recorded in the chain.

export interface AuditAppend {
  readonly resource: AuditEvent;
  readonly index: readonly IndexEntry[];
}

export interface ChainLink {
  readonly seq: number;
  readonly id: string;
  readonly prevHash: string;
  readonly hash: string;
  /** the stored AuditEvent JSON; undefined when the event row is gone */
  readonly body?: string;
}

export interface Checkpoint {
  readonly seq: number;
  readonly hash: string;
  readonly signedAt: string;
  readonly keyId: string;
  /** base64 Ed25519 signature over checkpointMessage(seq, hash, signedAt) */
  readonly signature: string;
}

export interface PurgeRecord {
  readonly throughSeq: number;
  readonly lastHash: string;
  readonly cutoff: string;
  readonly purgedAt: string;
  readonly count: number;
}

/** Called inside the append transaction with the new head; returns a checkpoint to store, or none. */
export type CheckpointSigner = (head: { seq: number; hash: string }, last: Checkpoint | undefined) => Checkpoint | undefined;

export interface AuditStore {
  /** Appends the events in order, each chained to its predecessor, in one durable transaction. */
  appendAudit(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<void>;
  /** Every link from the oldest kept event on, in sequence order. */
  chain(): Iterable<ChainLink>;
  /** AuditEvent rows that no chain link points at (inserted behind the chain's back). */
  unchainedEvents(): number;
  checkpoints(): Checkpoint[];
  /** The stored AuditEvents recorded in [from, to), in chain order. */
  eventsBetween(from: string, to: string): Iterable<AuditEvent>;
  purges(): PurgeRecord[];
  /**
   * Removes events recorded before `cutoff` (ISO instant) and records the purge in the same
   * transaction: a PurgeRecord anchoring the remaining chain, and `purgeEvent` appended to it.
   */
  purgeAudit(
    cutoff: string,
    purgeEvent: (count: number, throughSeq: number) => AuditAppend,
    now: string,
    sign?: CheckpointSigner,
  ): Promise<PurgeRecord>;
}
