import type { AuditEvent } from 'fhir/r4.js';
import type { IndexEntry } from '../fhir/query.ts';

// The audit log port: append-only, hash-chained, durable — the record itself, lean, in a place of
// its own. It has no update and no delete; the only removal is a retention purge, which is itself
// recorded in the chain. Auditors search a copy the indexer keeps behind it (AuditIndex).

export interface AuditAppend {
  readonly resource: AuditEvent;
  /**
   * false for a write-ahead attempt: in the chain, but not among the AuditEvents auditors read
   * and search (the event that follows it, or the one recovery makes for it, is).
   */
  readonly searchable?: boolean;
  /** its canonical JSON (what the log stores and hashes), when made ahead: it must be `resource`'s */
  readonly canonical?: string;
  /** its body compressed ahead together with the events beside it (packBodies): where it lies in their block */
  readonly packed?: { readonly block: PackedBodies; readonly at: number; readonly len: number };
}

/** The canonical JSON of consecutive events, one after another, compressed as one stored block. */
export interface PackedBodies {
  readonly body: Uint8Array;
  /** how many events it holds */
  readonly count: number;
}

/** A write's write-ahead AuditEvent with no event after it yet: what start-up recovery resolves. */
export interface OpenAttempt {
  /** the request's id, which its final AuditEvent takes */
  readonly requestId: string;
  readonly attempt: AuditEvent;
}

/** The id of a request's write-ahead AuditEvent. */
export const attemptId = (requestId: string) => `${requestId}.attempt`;

/** An event of the log as the indexer follows it. */
export interface LogEntry {
  readonly seq: number;
  readonly resource: AuditEvent;
  readonly searchable: boolean;
}

export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
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
  /**
   * Appends the events in order, each chained to its predecessor, in one durable transaction
   * (one fsync); returns the new head.
   */
  appendAudit(events: readonly AuditAppend[], sign?: CheckpointSigner): Promise<ChainHead>;
  /** The last link (the purge anchor, or genesis at seq 0, when the log is empty). */
  head(): Promise<ChainHead>;
  /** Up to `limit` events after `seq`, in order: what the indexer follows. */
  entriesAfter(seq: number, limit: number): Promise<LogEntry[]>;
  /** The canonical JSON of the searchable event `id`; undefined when there is none (or it was purged). */
  body(id: string): Promise<string | undefined>;
  /** The ids of the searchable events through `seq`, in ascending (binary) order. */
  searchableIds(throughSeq: number): AsyncIterable<string>;
  /** Every link from the oldest kept event on, in sequence order; or those from `fromSeq` through `toSeq`. */
  chain(fromSeq?: number, toSeq?: number): AsyncIterable<ChainLink>;
  checkpoints(): Promise<Checkpoint[]>;
  /** The stored AuditEvents recorded in [from, to), in chain order (write-ahead attempts included). */
  eventsBetween(from: string, to: string): AsyncIterable<AuditEvent>;
  /** Write-ahead attempts whose request has no AuditEvent of its own in the chain. */
  openAttempts(): Promise<OpenAttempt[]>;
  purges(): Promise<PurgeRecord[]>;
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

/** A searchable AuditEvent as the search index takes it: its id, when, and its index entries. */
export interface IndexedAuditEvent {
  readonly id: string;
  readonly recorded: string;
  readonly index: readonly IndexEntry[];
}

/**
 * The searchable copy of the audit log, kept behind it by the indexer in the resource store's
 * search engine (auditors search AuditEvents like any resource). Derived data: what it holds is
 * rebuilt from the log; its mark says how far.
 */
export interface AuditIndex {
  /** the highest log sequence number the index has taken in (0: none) */
  indexedThrough(): Promise<number>;
  /** Adds the events and moves the mark to `throughSeq`, in one transaction (idempotent by seq). */
  index(events: readonly IndexedAuditEvent[], throughSeq: number): Promise<void>;
  /** Removes events recorded before `cutoff` (a retention purge, after the log's own). */
  removeBefore(cutoff: string): Promise<number>;
  /** The ids of the indexed events, in ascending (binary) order. */
  ids(): AsyncIterable<string>;
}

/** Every method of T that returns a promise or an async iterable, returning its value at once instead. */
export type Synchronous<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R>
    ? (...args: A) => R
    : T[K] extends (...args: infer A) => AsyncIterable<infer R>
      ? (...args: A) => Iterable<R>
      : T[K];
};

/** An audit log that answers at once (the embedded store's, read on the thread that holds it). */
export type SyncAuditStore = Omit<Synchronous<AuditStore>, 'appendAudit' | 'purgeAudit'> & Pick<AuditStore, 'appendAudit' | 'purgeAudit'>;
export type SyncAuditIndex = Synchronous<AuditIndex>;

/**
 * Items that are there at once, as the port's async iterable — and still iterable synchronously,
 * for a caller that looks (walking a million links saves a turn of the microtask queue each).
 */
function eachOf<T>(items: Iterable<T>): AsyncIterable<T> & Iterable<T> {
  return {
    [Symbol.iterator]: () => items[Symbol.iterator](),
    async* [Symbol.asyncIterator]() {
      yield* items;
    },
  };
}

/** The port over an audit log that answers at once. */
export function asyncAuditStore(log: SyncAuditStore): AuditStore {
  return {
    appendAudit: (events, sign) => log.appendAudit(events, sign),
    purgeAudit: (cutoff, purgeEvent, now, sign) => log.purgeAudit(cutoff, purgeEvent, now, sign),
    head: async () => log.head(),
    entriesAfter: async (seq, limit) => log.entriesAfter(seq, limit),
    body: async (id) => log.body(id),
    searchableIds: (throughSeq) => eachOf(log.searchableIds(throughSeq)),
    chain: (fromSeq, toSeq) => eachOf(log.chain(fromSeq, toSeq)),
    checkpoints: async () => log.checkpoints(),
    eventsBetween: (from, to) => eachOf(log.eventsBetween(from, to)),
    openAttempts: async () => log.openAttempts(),
    purges: async () => log.purges(),
  };
}

/** The port over an audit index that answers at once. */
export function asyncAuditIndex(index: SyncAuditIndex): AuditIndex {
  return {
    indexedThrough: async () => index.indexedThrough(),
    index: async (events, throughSeq) => index.index(events, throughSeq),
    removeBefore: async (cutoff) => index.removeBefore(cutoff),
    ids: () => eachOf(index.ids()),
  };
}
