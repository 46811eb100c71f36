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

/** The entity of a resource version a request touched; a write names the version it replaced and the one it made. */
export function entityOf(e: AuditFacts['entities'][number]): AuditEventEntity {
  return {
    what: { reference: e.reference },
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
    ...(e.role === 'domain' ? {} : { detail: [{ type: 'version', valueString: e.role }] }),
  };
}

/**
 * An entry's link to its batch or transaction Bundle's request, whose own AuditEvent has this id.
 * See: BALP, the X-Request-Id entity
 */
export function partOfEntity(requestId: string): AuditEventEntity {
  return {
    what: { identifier: { system: 'urn:hearth:request', value: requestId } },
    type: { system: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType', code: 'XrequestId', display: 'X-Request-Id' },
    description: 'the batch or transaction Bundle this entry came in',
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
  const subtype: Coding =
    f.interaction === 'login'
      ? { system: DCM, code: '110122', display: 'Login' }
      : { system: RESTFUL_INTERACTION, code: f.interaction === 'conditional-update' ? 'update' : f.interaction };
  const p = f.principal;
  const agents: AuditEventAgent[] = [];
  // The user (or, for a backend service, the client) is the requestor.
  const user: AuditEventAgent = {
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP', display: 'information recipient' }] },
    requestor: true,
    network: f.address ? { address: f.address, type: /^[\d.]+$/.test(f.address) || f.address.includes(':') ? '2' : '1' } : undefined,
  };
  if (p) {
    if (p.fhirUser) user.who = { reference: p.fhirUser };
    else if (p.subject) user.who = { identifier: { system: p.issuer, value: p.subject } };
    else if (p.clientId) user.who = { identifier: { system: p.issuer, value: p.clientId } };
    if (p.subject) user.altId = p.subject;
    user.name = p.subject ?? p.clientId;
    if (p.role) user.role = [{ coding: [{ system: 'urn:hearth:role', code: p.role }] }];
    // The authorization that applied: the token by its jti, and each scope it carried.
    const policy = [...(p.tokenId ? [`urn:hearth:token:${p.tokenId}`] : []), ...p.scopes.filter(Boolean).map((s) => `urn:hearth:scope:${s}`)];
    if (policy.length) user.policy = policy;
    if (p.purposeOfUse?.length) user.purposeOfUse = p.purposeOfUse.map((code) => ({ coding: [{ code }] }));
  } else {
    user.name = f.claimedBy ?? 'unauthenticated';
  }
  agents.push(user);
  if (p?.clientId && (p.fhirUser || p.subject)) {
    agents.push({
      type: { coding: [{ system: DCM, code: '110150', display: 'Application' }] },
      who: { identifier: { system: p.issuer, value: p.clientId } },
      name: p.clientId,
      requestor: false,
    });
  }
  const entity: AuditEventEntity[] = [];
  for (const patient of f.patients) {
    entity.push({
      what: { reference: patient },
      type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
      role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
    });
  }
  for (const e of f.entities) entity.push(entityOf(e));
  if (f.query !== undefined) {
    // See: BALP Query: the query as sent, base64-encoded, in entity.query.
    entity.push({
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
      description: f.resourceType,
      query: Buffer.from(f.query, 'utf8').toString('base64'),
    });
  }
  if (f.partOf !== undefined) entity.push(partOfEntity(f.partOf));
  const attempt = f.phase === 'attempt';
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    id: attempt ? attemptId(f.requestId) : f.requestId,
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: attempt ? [subtype, { system: PHASE_SYSTEM, code: 'attempt', display: 'write attempted; its outcome follows' }] : [subtype],
    action: actionOf(f.interaction),
    recorded: f.recorded.toISOString(),
    // An attempt has no outcome yet: its request's own event carries it.
    ...(attempt ? {} : { outcome }),
    agent: agents.map(clean),
    source: {
      site: f.server.baseUrl,
      observer: { display: f.server.name, identifier: { system: 'urn:hearth:server', value: f.server.baseUrl } },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
  };
  if (f.interaction === 'login') event.type = { system: DCM, code: '110114', display: 'User Authentication' };
  if (!attempt && outcome !== '0') event.outcomeDesc = `${f.status}${f.issueCode ? ` ${f.issueCode}` : ''}`;
  if (p?.purposeOfUse?.length) event.purposeOfEvent = p.purposeOfUse.map((code) => ({ coding: [{ code }] }));
  if (entity.length) event.entity = entity;
  return event;
}

function clean(agent: AuditEventAgent): AuditEventAgent {
  return Object.fromEntries(Object.entries(agent).filter(([, v]) => v !== undefined)) as AuditEventAgent;
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
