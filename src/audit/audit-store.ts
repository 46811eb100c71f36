import type { AuditEvent } from 'fhir/r4.js';
import type { IndexEntry } from '../fhir/query.ts';

// The AuditStore port: append-only, hash-chained, durable. It has no update and no delete; the
// only removal is a retention purge, which is itself recorded in the chain.

export interface AuditAppend {
  readonly resource: AuditEvent;
  readonly index: readonly IndexEntry[];
  /**
   * false for a write-ahead attempt: in the chain, but not among the AuditEvents auditors read
   * and search (the event that follows it, or the one recovery makes for it, is).
   */
  readonly searchable?: boolean;
}

/** A write's write-ahead AuditEvent with no event after it yet: what start-up recovery resolves. */
export interface OpenAttempt {
  /** the request's id, which its final AuditEvent takes */
  readonly requestId: string;
  readonly attempt: AuditEvent;
}

/** The id of a request's write-ahead AuditEvent. */
export const attemptId = (requestId: string) => `${requestId}.attempt`;

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
  /** The stored AuditEvents recorded in [from, to), in chain order (write-ahead attempts included). */
  eventsBetween(from: string, to: string): Iterable<AuditEvent>;
  /** Write-ahead attempts whose request has no AuditEvent of its own in the chain. */
  openAttempts(): OpenAttempt[];
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
