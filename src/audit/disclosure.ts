import type { AuditEvent, AuditEventAgent, AuditEventEntity } from 'fhir/r4.js';

const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
// See: https://hl7.org/fhir/R4/v3/ObservationValue/cs.html (SUBSETTED: not the full resource)
const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

/**
 * An AuditEvent as its patient may see it: the accounting of disclosures (HIPAA 45 CFR 164.528 —
 * when, who received the data, what and why). It keeps when, what kind of access, the outcome,
 * the purpose, and who acted (their reference or name, role and the application), and drops what
 * would tell the patient about anyone else: other patients' references, the query (it may name
 * other patients), network addresses, token ids and other users' scopes. Resources other than
 * the patient's own record are named by type only; the patient reads what it may of them through
 * its own token.
 */
export function disclosureView(event: AuditEvent, patient: string): AuditEvent {
  const view: AuditEvent = {
    resourceType: 'AuditEvent',
    id: event.id,
    meta: { ...event.meta, tag: [...(event.meta?.tag ?? []), SUBSETTED] },
    type: event.type,
    subtype: event.subtype,
    action: event.action,
    recorded: event.recorded,
    outcome: event.outcome,
    agent: event.agent.map((a) => agentView(a, patient)),
    source: { site: event.source.site, observer: { display: event.source.observer.display }, type: event.source.type },
  };
  if (event.period) view.period = event.period;
  if (event.outcomeDesc) view.outcomeDesc = event.outcomeDesc;
  if (event.purposeOfEvent) view.purposeOfEvent = event.purposeOfEvent;
  const entity = entityView(event.entity ?? [], patient);
  if (entity.length) view.entity = entity;
  return view;
}

function agentView(a: AuditEventAgent, patient: string): AuditEventAgent {
  const who = a.who?.reference;
  // Another patient acting (say, trying to read this record) is not named to this one.
  const otherPatient = who !== undefined && who.startsWith('Patient/') && who !== patient;
  const out: AuditEventAgent = { requestor: a.requestor };
  if (a.type) out.type = a.type;
  if (a.role) out.role = a.role;
  if (otherPatient) {
    out.who = { display: 'another patient' };
  } else {
    if (a.who) out.who = a.who;
    if (a.name) out.name = a.name;
  }
  if (a.purposeOfUse) out.purposeOfUse = a.purposeOfUse;
  return out;
}

function entityView(entities: readonly AuditEventEntity[], patient: string): AuditEventEntity[] {
  const out: AuditEventEntity[] = [];
  const types = new Set<string>();
  for (const e of entities) {
    const ref = e.what?.reference;
    if (ref === patient || ref?.startsWith(`${patient}/_history/`)) {
      out.push(e);
    } else if (e.role?.system === OBJECT_ROLE && e.role.code === '24') {
      // A query: what kind of resource was searched, not the criteria.
      out.push({ type: e.type, role: e.role, ...(e.description ? { description: e.description } : {}) });
    } else if (ref && !ref.startsWith('Patient/')) {
      const type = ref.split('/')[0];
      if (types.has(type)) continue;
      types.add(type);
      out.push({ what: { type }, type: e.type, role: e.role });
    }
  }
  return out;
}
