import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { AuditAppend } from './audit-store.ts';
import { canonicalize } from './canonical-json.ts';

// How AuditEvent bodies are kept in the audit log: their canonical JSON (what the chain hashes),
// compressed with raw DEFLATE against a preset dictionary of what AuditEvents repeat (systems,
// codes, keys). An event is ~2 KB of canonical JSON and well under 0.3 KB on disk. The first
// byte names the format, so that a later dictionary can be added without making old bodies
// unreadable: the dictionary below must never change.

const FORMAT_DEFLATE_DICT_1 = 1;

/** Frozen: four representative AuditEvents (create, search, refused update, read) in canonical form. */
const DICTIONARY_1 = Buffer.from(
  '{"action":"C","agent":[{"altId":"user-1","name":"user-1","network":{"address":"127.0.0.1","type":"2"},"policy":["urn:hearth:scope:user/Patient.rs","urn:hearth:scope:user/Observation.rs","urn:hearth:scope:launch/patient","urn:hearth:scope:openid","urn:hearth:scope:fhirUser"],"requestor":true,"role":[{"coding":[{"code":"provider","system":"urn:hearth:role"}]}],"type":{"coding":[{"code":"IRCP","display":"information recipient","system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType"}]},"who":{"reference":"Practitioner/p-1"}},{"name":"app-1","requestor":false,"type":{"coding":[{"code":"110150","display":"Application","system":"http://dicom.nema.org/resources/ontology/DCM"}]},"who":{"identifier":{"system":"https://issuer.example.org","value":"app-1"}}}],"entity":[{"role":{"code":"1","display":"Patient","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"1","display":"Person","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/p-1"}},{"detail":[{"type":"version","valueString":"after"}],"role":{"code":"4","display":"Domain Resource","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"2","display":"System Object","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Observation/o-1/_history/1"}}],"id":"r-1","outcome":"0","recorded":"2026-01-01T00:00:00.000Z","resourceType":"AuditEvent","source":{"observer":{"display":"Hearth","identifier":{"system":"urn:hearth:server","value":"http://127.0.0.1:8080/fhir"}},"site":"http://127.0.0.1:8080/fhir","type":[{"code":"4","display":"Application Server","system":"http://terminology.hl7.org/CodeSystem/security-source-type"}]},"subtype":[{"code":"create","system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}{"action":"E","agent":[{"altId":"user-1","name":"user-1","network":{"address":"127.0.0.1","type":"2"},"policy":["urn:hearth:scope:user/Patient.rs","urn:hearth:scope:user/Observation.rs","urn:hearth:scope:launch/patient","urn:hearth:scope:openid","urn:hearth:scope:fhirUser"],"requestor":true,"role":[{"coding":[{"code":"provider","system":"urn:hearth:role"}]}],"type":{"coding":[{"code":"IRCP","display":"information recipient","system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType"}]},"who":{"reference":"Practitioner/p-1"}},{"name":"app-1","requestor":false,"type":{"coding":[{"code":"110150","display":"Application","system":"http://dicom.nema.org/resources/ontology/DCM"}]},"who":{"identifier":{"system":"https://issuer.example.org","value":"app-1"}}}],"entity":[{"role":{"code":"1","display":"Patient","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"1","display":"Person","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/p-1"}},{"role":{"code":"4","display":"Domain Resource","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"2","display":"System Object","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Observation/o-1/_history/1"}},{"description":"Observation","query":"c3ViamVjdD1QYXRpZW50L3AtMSZjb2RlPTEyMzQtNQ==","role":{"code":"24","display":"Query","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"2","display":"System Object","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"}}],"id":"r-2","outcome":"0","recorded":"2026-01-01T00:00:00.000Z","resourceType":"AuditEvent","source":{"observer":{"display":"Hearth","identifier":{"system":"urn:hearth:server","value":"http://127.0.0.1:8080/fhir"}},"site":"http://127.0.0.1:8080/fhir","type":[{"code":"4","display":"Application Server","system":"http://terminology.hl7.org/CodeSystem/security-source-type"}]},"subtype":[{"code":"search-type","system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}{"action":"U","agent":[{"altId":"user-1","name":"user-1","network":{"address":"127.0.0.1","type":"2"},"policy":["urn:hearth:scope:user/Patient.rs","urn:hearth:scope:user/Observation.rs","urn:hearth:scope:launch/patient","urn:hearth:scope:openid","urn:hearth:scope:fhirUser"],"requestor":true,"role":[{"coding":[{"code":"provider","system":"urn:hearth:role"}]}],"type":{"coding":[{"code":"IRCP","display":"information recipient","system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType"}]},"who":{"reference":"Practitioner/p-1"}},{"name":"app-1","requestor":false,"type":{"coding":[{"code":"110150","display":"Application","system":"http://dicom.nema.org/resources/ontology/DCM"}]},"who":{"identifier":{"system":"https://issuer.example.org","value":"app-1"}}}],"id":"r-3","outcome":"4","outcomeDesc":"403 forbidden","recorded":"2026-01-01T00:00:00.000Z","resourceType":"AuditEvent","source":{"observer":{"display":"Hearth","identifier":{"system":"urn:hearth:server","value":"http://127.0.0.1:8080/fhir"}},"site":"http://127.0.0.1:8080/fhir","type":[{"code":"4","display":"Application Server","system":"http://terminology.hl7.org/CodeSystem/security-source-type"}]},"subtype":[{"code":"update","system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}{"action":"R","agent":[{"altId":"user-1","name":"user-1","network":{"address":"127.0.0.1","type":"2"},"policy":["urn:hearth:scope:user/Patient.rs","urn:hearth:scope:user/Observation.rs","urn:hearth:scope:launch/patient","urn:hearth:scope:openid","urn:hearth:scope:fhirUser"],"requestor":true,"role":[{"coding":[{"code":"provider","system":"urn:hearth:role"}]}],"type":{"coding":[{"code":"IRCP","display":"information recipient","system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType"}]},"who":{"reference":"Practitioner/p-1"}},{"name":"app-1","requestor":false,"type":{"coding":[{"code":"110150","display":"Application","system":"http://dicom.nema.org/resources/ontology/DCM"}]},"who":{"identifier":{"system":"https://issuer.example.org","value":"app-1"}}}],"entity":[{"role":{"code":"1","display":"Patient","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"1","display":"Person","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/p-1"}},{"role":{"code":"4","display":"Domain Resource","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"2","display":"System Object","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/p-1/_history/1"}}],"id":"r-4","outcome":"0","recorded":"2026-01-01T00:00:00.000Z","resourceType":"AuditEvent","source":{"observer":{"display":"Hearth","identifier":{"system":"urn:hearth:server","value":"http://127.0.0.1:8080/fhir"}},"site":"http://127.0.0.1:8080/fhir","type":[{"code":"4","display":"Application Server","system":"http://terminology.hl7.org/CodeSystem/security-source-type"}]},"subtype":[{"code":"read","system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}',
  'utf8',
);

/** The stored form of canonical JSON (UTF-8): one event's, or several events' one after another. */
export function encodeBody(canonical: string | Buffer): Uint8Array {
  const packed = deflateRawSync(typeof canonical === 'string' ? Buffer.from(canonical, 'utf8') : canonical, { dictionary: DICTIONARY_1 });
  const out = new Uint8Array(packed.length + 1);
  out[0] = FORMAT_DEFLATE_DICT_1;
  out.set(packed, 1);
  return out;
}

/** The canonical JSON (UTF-8 bytes) of a stored body: exactly what was hashed. */
export function decodeBody(stored: Uint8Array): Buffer {
  if (stored[0] !== FORMAT_DEFLATE_DICT_1) throw new Error(`unknown audit body format ${stored[0]}`);
  return inflateRawSync(stored.subarray(1), { dictionary: DICTIONARY_1 });
}

/** Events whose bodies are compressed together into one stored block, at most. */
export const BLOCK_EVENTS = 64;

/** Canonical JSON bodies stored one after another as one compressed block: the block, and each body's byte length in it. */
export function encodeBlock(canonicals: readonly string[]): { body: Uint8Array; lengths: number[] } {
  const bodies = canonicals.map((c) => Buffer.from(c, 'utf8'));
  return { body: encodeBody(Buffer.concat(bodies)), lengths: bodies.map((b) => b.length) };
}

/**
 * The events with their bodies compressed ahead, BLOCK_EVENTS to a block, for a log that stores
 * consecutive events' bodies as one block (sqlite-audit-log.ts): done while the events wait for
 * their append (a transaction's entries, while its commit runs), the append only stores them.
 * Each event keeps the canonical JSON its block holds, which is what the chain hashes.
 */
export function packBodies(events: readonly AuditAppend[]): AuditAppend[] {
  const out: AuditAppend[] = [];
  for (let start = 0; start < events.length; start += BLOCK_EVENTS) {
    const chunk = events.slice(start, start + BLOCK_EVENTS);
    const canonicals = chunk.map((e) => e.canonical ?? JSON.stringify(canonicalize(e.resource)));
    const { body, lengths } = encodeBlock(canonicals);
    const block = { body, count: chunk.length };
    let at = 0;
    chunk.forEach((e, i) => {
      out.push({ ...e, canonical: canonicals[i], packed: { block, at, len: lengths[i] } });
      at += lengths[i];
    });
  }
  return out;
}
