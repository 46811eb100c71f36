import type { FhirModel, TypeModel } from '../fhir/definitions.ts';
import { extractIndex } from '../fhir/index-extractor.ts';
import type { AuditIndex, AuditStore, IndexedAuditEvent } from './audit-store.ts';

/**
 * Events per index transaction unless the caller says otherwise: larger chunks write a B-tree
 * page touched by many events once (a server's indexer thread takes larger ones still, see
 * audit-index-worker.ts).
 */
const CHUNK = 100;

/**
 * What an indexing pass that failed leaves behind: a line on standard error. The log holds the
 * events, so the next pass (or the next start) indexes them; an audit write never fails for it.
 */
export function indexingFailed(err: unknown): void {
  process.stderr.write(`hearth: the audit indexer fell behind: ${(err as Error).message}\n`);
}

/**
 * Follows the audit log and writes its searchable events into the search index, idempotently by
 * sequence number: each chunk and the mark that covers it commit together, so after a crash it
 * resumes from the last indexed sequence. Write-ahead attempts are in the log only.
 */
export class AuditIndexer {
  readonly #log: AuditStore;
  readonly #index: AuditIndex;
  readonly #model: TypeModel;
  readonly #baseUrl: string;

  constructor(log: AuditStore, index: AuditIndex, model: FhirModel, baseUrl: string) {
    const auditModel = model.types.get('AuditEvent');
    if (!auditModel) throw new Error('capability-statement.json must serve AuditEvent');
    this.#log = log;
    this.#index = index;
    this.#model = auditModel;
    this.#baseUrl = baseUrl;
  }

  /**
   * Indexes what the log holds beyond the mark, a chunk per transaction, calling `progress` with
   * the mark after each; returns the final mark.
   */
  async catchUp(progress?: (indexed: number) => void, chunk = CHUNK): Promise<number> {
    while (await this.step(progress, chunk));
    return this.#index.indexedThrough();
  }

  /**
   * Indexes one chunk beyond the mark in one transaction (the events' index entries are made
   * before it, so that the write lock is held for the inserts alone); false when there was none.
   */
  async step(progress?: (indexed: number) => void, chunk = CHUNK): Promise<boolean> {
    const entries = await this.#log.entriesAfter(await this.#index.indexedThrough(), chunk);
    if (entries.length === 0) return false;
    const events: IndexedAuditEvent[] = [];
    for (const e of entries) {
      if (!e.searchable) continue;
      const index = extractIndex(this.#model, e.resource as unknown as Record<string, unknown>, this.#baseUrl);
      events.push({ id: e.resource.id ?? '', recorded: e.resource.recorded, index });
    }
    const mark = entries[entries.length - 1].seq;
    await this.#index.index(events, mark);
    progress?.(mark);
    return true;
  }

  /** Applies the log's last retention purge to the index (a purge that stopped between the two). */
  async applyPurges(): Promise<number> {
    const last = (await this.#log.purges()).at(-1);
    return last ? this.#index.removeBefore(last.cutoff) : 0;
  }
}
