import type { TypeModel } from './definitions.ts';
import { valuesOf } from './index-extractor.ts';

/** One reference that places a resource in a Patient compartment. */
export interface CompartmentLink {
  /** `Patient/id` */
  readonly patient: string;
  /** the compartment parameter it came through, e.g. `performer` */
  readonly param: string;
  /** the element that holds it, e.g. `Observation.performer` */
  readonly expression: string;
}

/**
 * The Patient references through which `resource` sits in Patient compartments: the values of the
 * type's compartment parameters (for Observation `subject` and `performer`, for Patient `link`).
 * See: https://hl7.org/fhir/R4/compartmentdefinition-patient.html
 */
export function compartmentLinks(
  typeModel: TypeModel,
  params: readonly string[],
  resource: Record<string, unknown>,
  baseUrl: string,
): CompartmentLink[] {
  const out: CompartmentLink[] = [];
  const seen = new Set<string>();
  for (const code of params) {
    const def = typeModel.params.get(code);
    if (!def) continue;
    let nodes: unknown[];
    try {
      nodes = def.evaluate(resource);
    } catch {
      continue;
    }
    for (const n of nodes) {
      for (const f of valuesOf('reference', n, baseUrl)) {
        if (!f.code?.startsWith('Patient/') || seen.has(`${code} ${f.code}`)) continue;
        seen.add(`${code} ${f.code}`);
        out.push({ patient: f.code, param: code, expression: `${typeModel.type}.${def.elements[0] ?? code}` });
      }
    }
  }
  return out;
}
