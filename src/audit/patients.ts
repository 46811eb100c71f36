import type { FhirModel } from '../fhir/definitions.ts';
import { valuesOf } from '../fhir/index-extractor.ts';
import type { StoredVersion } from '../store/resource-store.ts';

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
  if (!v.resource) return [];
  const typeModel = model.types.get(v.type);
  const out = new Set<string>();
  for (const code of compartments.get(v.type) ?? []) {
    const def = typeModel?.params.get(code);
    if (!def) continue;
    let nodes: unknown[];
    try {
      nodes = def.evaluate(v.resource);
    } catch {
      continue;
    }
    for (const n of nodes) {
      for (const f of valuesOf('reference', n, baseUrl)) if (f.code?.startsWith('Patient/')) out.add(f.code);
    }
  }
  return [...out];
}
