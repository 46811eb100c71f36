import type { AuditEvent, AuditEventEntity } from 'fhir/r4.js';
import { PHASE_SYSTEM } from './audit-event.ts';
import type { AuditStore } from './audit-store.ts';

/** A version as the store says one request wrote it. */
export interface Written {
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  readonly deleted: boolean;
}

/**
 * The event start-up recovery makes for a write-ahead attempt left without one by a crash: the
 * same who, what and why, and what the store holds of it — the versions the request committed
 * (outcome success), or nothing (the request failed before its write committed).
 */
export function recoveredEvent(attempt: AuditEvent, requestId: string, written: readonly Written[], now: Date): AuditEvent {
  const committed = written.length > 0;
  const entity: AuditEventEntity[] = [
    ...(attempt.entity ?? []),
    ...written.map(
      (w): AuditEventEntity => ({
        what: { reference: `${w.type}/${w.id}/_history/${w.versionId}` },
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
        role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '4', display: 'Domain Resource' },
        detail: [{ type: 'version', valueString: 'after' }],
      }),
    ),
  ];
  const { meta: _meta, ...rest } = attempt as AuditEvent & { _hearthEnvelope?: unknown };
  delete (rest as { _hearthEnvelope?: unknown })._hearthEnvelope;
  return {
    ...rest,
    id: requestId,
    recorded: now.toISOString(),
    subtype: [...(attempt.subtype ?? []).filter((c) => c.system !== PHASE_SYSTEM), { system: PHASE_SYSTEM, code: 'recovered', display: 'outcome recorded at start-up after a crash' }],
    outcome: committed ? '0' : '8',
    outcomeDesc: committed
      ? 'recovered at start-up: the write committed, but the server stopped before its response'
      : 'recovered at start-up: the server stopped before the write committed; nothing was written',
    ...(entity.length ? { entity } : {}),
  };
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
  for (const o of open) events.push(recoveredEvent(o.attempt, o.requestId, await deps.writtenBy(o.requestId), deps.clock()));
  if (events.length) await deps.append(events);
  return events.length;
}
