import type { AuditEvent } from 'fhir/r4.js';
import type { Access } from '../auth/authorize.ts';
import { disclosureView } from '../audit/disclosure.ts';
import type { StoredVersion } from '../fhir/query.ts';
import { applySubset, type Subset } from '../fhir/subsetting.ts';
import type { FhirRepository } from './repository.ts';

type Json = Record<string, unknown>;

/**
 * What the token may see of a resource: a patient's view of an AuditEvent (its accounting of
 * disclosures), then the client's subset, then the role's element mask, which `_elements` can
 * only narrow.
 */
export function shaper(repository: FhirRepository, access: Access, type: string, subset: Subset): (v: StoredVersion) => Json {
  const typeModel = repository.typeModel(type);
  const mask = access.mask(type);
  const disclosure = access.disclosureFor(type);
  return (v: StoredVersion) => {
    const resource: unknown = v.resource ?? {};
    const visible = (disclosure && v.resource ? disclosureView(resource as AuditEvent, disclosure) : resource) as Json;
    const shaped = applySubset(typeModel, visible, subset);
    return mask ? applySubset(typeModel, shaped, { kind: 'elements', names: mask }) : shaped;
  };
}
