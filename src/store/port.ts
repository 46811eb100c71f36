// The storage port as a whole: what one adapter offers the rest of Hearth — resources, the audit
// trail, key maintenance, and what it can do — so that nothing outside the composition root needs
// to know which adapter it holds.
import type { AuditIndex, AuditStore } from '../audit/audit-store.ts';
import type { ResourceStore } from './resource-store.ts';

/** Key rotation's work over stored versions; the encrypting decorator says what to do with each. */
export interface KeyMaintenance {
  /** Stored resource versions (not AuditEvents) whose data key is wrapped under `kekId`. */
  countKeyUse(kekId: string): Promise<number>;
  /**
   * Rewrites, in short transactions, every stored version whose data key is not wrapped under
   * `currentKek` (no new version; the same data ciphertext). Resumable; returns how many rows
   * were rewritten.
   */
  rewrapAll(
    currentKek: string,
    rewrap: (type: string, id: string, version: number, body: Record<string, unknown>) => Record<string, unknown> | undefined,
    progress: (done: number, total: number) => void,
    batch?: number,
  ): Promise<number>;
}

export interface StorageCapabilities {
  /** a short name of the adapter, for logs */
  readonly adapter: string;
  /** where the data lives when it outlives the process (a file); undefined in memory */
  readonly file?: string;
  /** where the audit log lives, when it is a file of its own */
  readonly auditFile?: string;
}

export interface Storage {
  readonly resources: ResourceStore;
  /** the audit log: the durable record */
  readonly audit: AuditStore;
  /** the audit log's searchable copy, kept behind it by the indexer */
  readonly auditIndex: AuditIndex;
  readonly keys: KeyMaintenance;
  readonly capabilities: StorageCapabilities;
  /** whether any resource (not an AuditEvent) is stored: a new keyring may be made only when none is */
  hasResources(): Promise<boolean>;
  close(): Promise<void>;
}
