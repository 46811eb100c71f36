import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from 'fhir/r4.js';
import type { Principal } from '../auth/authorize.ts';
import { attemptId } from './audit-store.ts';

/** What one request did, as the HTTP layer saw it: the only input the pure builder needs. */
export interface AuditFacts {
  /** one AuditEvent per request: its id is the request id */
  readonly requestId: string;
  readonly recorded: Date;
  /** restful-interaction code, e.g. read, search-type, create; or operation, login */
  readonly interaction: string;
  readonly resourceType?: string;
  readonly status: number;
  /** the FHIR issue code of a failure, never its free text (which may echo input) */
  readonly issueCode?: string;
  readonly principal?: Principal;
  readonly address?: string;
  /** `Type/id/_history/n` of every resource read, returned or written */
  readonly entities: readonly { readonly reference: string; readonly role: 'domain' | 'before' | 'after' }[];
  /** `Patient/id` of every patient whose data was touched */
  readonly patients: readonly string[];
  /** the search or history query string, for query events */
  readonly query?: string;
  readonly server: { readonly baseUrl: string; readonly name: string };
  /**
   * 'attempt': the write-ahead event of a create, update or delete, made durable before the data
   * commits; it has no outcome yet, and its request's own event follows it.
   */
  readonly phase?: 'attempt';
  /** for an entry of a batch or transaction: the request id of its Bundle (whose AuditEvent has that id) */
  readonly partOf?: string;
  /** with no principal: who the request said it was, not authenticated (a failed login's account) */
  readonly claimedBy?: string;
}

/** Marks a write-ahead attempt, and an outcome that start-up recovery made for one. */
export const PHASE_SYSTEM = 'urn:hearth:audit-phase';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
export const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ACTIONS: Record<string, AuditEvent['action']> = {
  create: 'C',
  read: 'R',
  vread: 'R',
  'history-instance': 'R',
  update: 'U',
  'conditional-update': 'U',
  delete: 'D',
  'search-type': 'E',
  'history-type': 'E',
  operation: 'E',
  login: 'E',
};

/** The AuditEvent.action of an interaction. */
export const actionOf = (interaction: string): AuditEvent['action'] => ACTIONS[interaction] ?? 'E';

/**
 * A Coding. Every object here is made with its keys in canonical (ascending) order — absent ones
 * as undefined, which JSON leaves out — so that the audit writer serializes an event as it is,
 * without a sorted copy (canonicalize).
 */
const coding = (system: string, code: string, display?: string): Coding => ({ code, display, system });

/** The entity of a resource version a request touched; a write names the version it replaced and the one it made. */
export function entityOf(e: AuditFacts['entities'][number]): AuditEventEntity {
  return {
    detail: e.role === 'domain' ? undefined : [{ type: 'version', valueString: e.role }],
    role: coding(OBJECT_ROLE, '4', 'Domain Resource'),
    type: coding(ENTITY_TYPE, '2', 'System Object'),
    what: { reference: e.reference },
  };
}

/**
 * An entry's link to its batch or transaction Bundle's request, whose own AuditEvent has this id.
 * See: BALP, the X-Request-Id entity
 */
export function partOfEntity(requestId: string): AuditEventEntity {
  return {
    description: 'the batch or transaction Bundle this entry came in',
    type: coding('https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType', 'XrequestId', 'X-Request-Id'),
    what: { identifier: { system: 'urn:hearth:request', value: requestId } },
  };
}

/**
 * One AuditEvent per interaction, shaped per IHE Basic Audit Log Patterns (RESTful activity;
 * patient-specific when a patient is touched). It holds references, codes and identifiers only:
 * no resource content, no token — the token appears by its `jti`.
 * See: https://profiles.ihe.net/ITI/BALP/ (Basic AuditEvent for a RESTful interaction)
 */
export function buildAuditEvent(f: AuditFacts): AuditEvent {
  // See: https://hl7.org/fhir/R4/valueset-audit-event-outcome.html
  const outcome: AuditEvent['outcome'] = f.status < 400 ? '0' : f.status < 500 ? '4' : '8';
  const subtype = f.interaction === 'login' ? coding(DCM, '110122', 'Login') : coding(RESTFUL_INTERACTION, f.interaction === 'conditional-update' ? 'update' : f.interaction);
  const p = f.principal;
  // The user (or, for a backend service, the client) is the requestor.
  const who = !p
    ? undefined
    : p.fhirUser
      ? { reference: p.fhirUser }
      : p.subject
        ? { identifier: { system: p.issuer, value: p.subject } }
        : p.clientId
          ? { identifier: { system: p.issuer, value: p.clientId } }
          : undefined;
  // The authorization that applied: the token by its jti, and each scope it carried.
  const policy = p && [...(p.tokenId ? [`urn:hearth:token:${p.tokenId}`] : []), ...p.scopes.filter(Boolean).map((s) => `urn:hearth:scope:${s}`)];
  // The purpose of use the token stated: the user's, and so the event's.
  const purpose = p?.purposeOfUse?.length ? p.purposeOfUse.map((code) => ({ coding: [{ code }] })) : undefined;
  const user: AuditEventAgent = {
    altId: p?.subject,
    name: p ? (p.subject ?? p.clientId) : (f.claimedBy ?? 'unauthenticated'),
    network: f.address ? { address: f.address, type: /^[\d.]+$/.test(f.address) || f.address.includes(':') ? '2' : '1' } : undefined,
    policy: policy?.length ? policy : undefined,
    purposeOfUse: purpose,
    requestor: true,
    role: p?.role ? [{ coding: [{ code: p.role, system: 'urn:hearth:role' }] }] : undefined,
    type: { coding: [coding('http://terminology.hl7.org/CodeSystem/v3-ParticipationType', 'IRCP', 'information recipient')] },
    who,
  };
  const agents: AuditEventAgent[] = [user];
  if (p?.clientId && (p.fhirUser || p.subject)) {
    agents.push({
      name: p.clientId,
      requestor: false,
      type: { coding: [coding(DCM, '110150', 'Application')] },
      who: { identifier: { system: p.issuer, value: p.clientId } },
    });
  }
  const entity: AuditEventEntity[] = [];
  for (const patient of f.patients) {
    entity.push({ role: coding(OBJECT_ROLE, '1', 'Patient'), type: coding(ENTITY_TYPE, '1', 'Person'), what: { reference: patient } });
  }
  for (const e of f.entities) entity.push(entityOf(e));
  if (f.query !== undefined) {
    // See: BALP Query: the query as sent, base64-encoded, in entity.query.
    entity.push({
      description: f.resourceType,
      query: Buffer.from(f.query, 'utf8').toString('base64'),
      role: coding(OBJECT_ROLE, '24', 'Query'),
      type: coding(ENTITY_TYPE, '2', 'System Object'),
    });
  }
  if (f.partOf !== undefined) entity.push(partOfEntity(f.partOf));
  const attempt = f.phase === 'attempt';
  return {
    action: actionOf(f.interaction),
    agent: agents,
    entity: entity.length ? entity : undefined,
    id: attempt ? attemptId(f.requestId) : f.requestId,
    // An attempt has no outcome yet: its request's own event carries it.
    outcome: attempt ? undefined : outcome,
    outcomeDesc: !attempt && outcome !== '0' ? `${f.status}${f.issueCode ? ` ${f.issueCode}` : ''}` : undefined,
    purposeOfEvent: purpose,
    recorded: f.recorded.toISOString(),
    resourceType: 'AuditEvent',
    source: {
      observer: { display: f.server.name, identifier: { system: 'urn:hearth:server', value: f.server.baseUrl } },
      site: f.server.baseUrl,
      type: [coding('http://terminology.hl7.org/CodeSystem/security-source-type', '4', 'Application Server')],
    },
    subtype: attempt ? [subtype, coding(PHASE_SYSTEM, 'attempt', 'write attempted; its outcome follows')] : [subtype],
    type: f.interaction === 'login' ? coding(DCM, '110114', 'User Authentication') : coding('http://terminology.hl7.org/CodeSystem/audit-event-type', 'rest', 'RESTful Operation'),
  };
}

/**
 * An operator command's AuditEvent (retention purge, key rotation, reading the audit log from
 * the command line): operators act on PHI protection too, and leave the same trail.
 */
export function buildOperatorEvent(args: {
  id: string;
  recorded: Date;
  /** DICOM event type: 110101 Audit Log Used, 110137 User Security Attributes Changed, ... */
  type: { code: string; display: string };
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  operator: string;
  /** what was acted on, by name */
  object: string;
  description: string;
  baseUrl: string;
  outcome?: '0' | '4' | '8';
}): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: args.id,
    type: { system: DCM, code: args.type.code, display: args.type.display },
    subtype: [{ system: 'urn:hearth:operator-command', code: args.object }],
    action: args.action,
    recorded: args.recorded.toISOString(),
    outcome: args.outcome ?? '0',
    agent: [
      {
        type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
        name: args.operator,
        requestor: true,
      },
    ],
    source: {
      site: args.baseUrl,
      observer: { display: 'Hearth', identifier: { system: 'urn:hearth:server', value: args.baseUrl } },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    entity: [
      {
        type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
        role: { system: OBJECT_ROLE, code: '13', display: 'Security Resource' },
        name: args.object,
        description: args.description,
      },
    ],
  };
}
