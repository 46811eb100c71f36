import type { FhirModel } from '../fhir/definitions.ts';
import { compartmentLinks } from '../fhir/compartment.ts';
import type { StoredVersion } from '../fhir/query.ts';

/**
 * The patients whose data a resource is: the patient itself, or the Patient references of the
 * parameters that place the type in the R4 Patient compartment (Observation.subject, ...).
 */
export function patientsOf(
  model: FhirModel,
  compartments: ReadonlyMap<string, readonly string[]>,
  v: StoredVersion,
  baseUrl: string,
): string[] {
  if (v.type === 'Patient') return [`Patient/${v.id}`];
  const typeModel = model.types.get(v.type);
  if (!v.resource || !typeModel) return [];
  return [...new Set(compartmentLinks(typeModel, compartments.get(v.type) ?? [], v.resource, baseUrl).map((l) => l.patient))];
}
