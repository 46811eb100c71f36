import type { AuditEvent, AuditEventEntity, Coding } from 'fhir/r4.js';
import { actionOf, entityOf, PHASE_SYSTEM, partOfEntity, RESTFUL_INTERACTION } from './audit-event.ts';
import type { AuditStore } from './audit-store.ts';

/** A version as the store says one request wrote it. */
export interface Written {
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  readonly deleted: boolean;
  /** the request's id, or its entry's (`<request id>.<index>`: a transaction's entry) */
  readonly writeId: string;
}

const RECOVERED: Coding = { system: PHASE_SYSTEM, code: 'recovered', display: 'outcome recorded at start-up after a crash' };

/**
 * The event start-up recovery makes for a write-ahead attempt left without one by a crash: the
 * same who, what and why, and what the store holds of it — the versions the request committed
 * (outcome success), or nothing (the request failed before its write committed).
 */
export function recoveredEvent(attempt: AuditEvent, requestId: string, written: readonly Written[], now: Date): AuditEvent {
  const committed = written.length > 0;
  const entity: AuditEventEntity[] = [...(attempt.entity ?? []), ...written.map((w) => entityOf(versionOf(w)))];
  const rest = whoAndWhere(attempt);
  return {
    ...rest,
    id: requestId,
    recorded: now.toISOString(),
    subtype: [...(attempt.subtype ?? []).filter((c) => c.system !== PHASE_SYSTEM), RECOVERED],
    outcome: committed ? '0' : '8',
    outcomeDesc: committed
      ? 'recovered at start-up: the write committed, but the server stopped before its response'
      : 'recovered at start-up: the server stopped before the write committed; nothing was written',
    ...(entity.length ? { entity } : {}),
  };
}

/**
 * The event recovery makes for one entry of a transaction cut short after its commit: the
 * transaction's one write-ahead attempt says who wrote it, the store what (the entry's version,
 * by the id the entry's own event would have had). The interaction is read off the version —
 * a first version was created, a tombstone deleted, any other updated; the patients it concerns
 * are found through the version it names.
 */
export function recoveredEntryEvent(attempt: AuditEvent, requestId: string, w: Written, now: Date): AuditEvent {
  const interaction = w.deleted ? 'delete' : w.versionId === 1 ? 'create' : 'update';
  return {
    ...whoAndWhere(attempt),
    id: w.writeId,
    recorded: now.toISOString(),
    subtype: [{ system: RESTFUL_INTERACTION, code: interaction }, RECOVERED],
    action: actionOf(interaction),
    outcome: '0',
    outcomeDesc: 'recovered at start-up: the transaction committed, but the server stopped before its response',
    entity: [entityOf(versionOf(w)), partOfEntity(requestId)],
  };
}

const versionOf = (w: Written) => ({ reference: `${w.type}/${w.id}/_history/${w.versionId}`, role: 'after' as const });

/** The attempt's who, where and why, without what is the attempt's own (its meta, its sealed query). */
function whoAndWhere(attempt: AuditEvent): AuditEvent {
  const { meta: _meta, ...rest } = attempt as AuditEvent & { _hearthEnvelope?: unknown };
  delete (rest as { _hearthEnvelope?: unknown })._hearthEnvelope;
  return rest;
}

/**
 * Resolves every write-ahead attempt that has no event of its own — the requests a crash cut
 * short — by asking the store what each committed and appending the outcome. Run before the
 * server takes requests. Returns how many were resolved.
 */
export async function recoverAttempts(deps: {
  readonly audit: AuditStore;
  readonly writtenBy: (requestId: string) => Promise<readonly Written[]>;
  readonly append: (events: readonly AuditEvent[]) => Promise<void>;
  readonly clock: () => Date;
}): Promise<number> {
  const open = await deps.audit.openAttempts();
  const events: AuditEvent[] = [];
  for (const o of open) {
    const written = await deps.writtenBy(o.requestId);
    events.push(recoveredEvent(o.attempt, o.requestId, written, deps.clock()));
    // A transaction's entries: each its own event, as each would have had — unless it has it (the
    // crash came after the entries' events and before the Bundle's).
    for (const w of written) {
      if (w.writeId === o.requestId || (await deps.audit.body(w.writeId)) !== undefined) continue;
      events.push(recoveredEntryEvent(o.attempt, o.requestId, w, deps.clock()));
    }
  }
  if (events.length) await deps.append(events);
  return open.length;
}
