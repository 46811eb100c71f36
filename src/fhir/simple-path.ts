// A fast evaluator for the most common shape of SearchParameter expression: unions of plain
// element paths (`AuditEvent.agent.network.address`), optionally filtered to references of one
// type (`Observation.subject.where(resolve() is Patient)`), and choice elements of a named type
// (`(Observation.component.value as Quantity)`: `component.valueQuantity` in JSON, R4's `ofType`
// intent). Anything else — functions, bare choice elements — stays with FHIRPath. The two are
// held equal by a test over every example resource and every parameter
// (test/fhir/simple-path.test.ts).

type Evaluator = (resource: unknown) => unknown[];

interface Part {
  readonly path: readonly string[];
  readonly referenceType?: string;
}

const PART_RE = /^([A-Z][A-Za-z]+)((?:\.[a-z][A-Za-z]*)+)(?:\.where\(resolve\(\) is ([A-Z][A-Za-z]+)\))?$/;
// `(Observation.value as Quantity)`, `(Observation.value as CodeableConcept).text`
const AS_RE = /^\(([A-Z][A-Za-z]+)((?:\.[a-z][A-Za-z]*)+) as ([A-Za-z]+)\)((?:\.[a-z][A-Za-z]*)*)$/;

/**
 * Compiles `expression` for `type` when it is simple; undefined otherwise. `isChoice` says whether
 * a top-level element is a choice (value[x]), which plain paths cannot name.
 */
export function compileSimplePath(expression: string, type: string, isChoice: (element: string) => boolean): Evaluator | undefined {
  const parts: Part[] = [];
  for (const raw of expression.split(' | ')) {
    const as = AS_RE.exec(raw.trim());
    if (as) {
      if (as[1] !== type) return undefined;
      // See: https://hl7.org/fhir/R4/json.html#choice (value[x] of type Quantity is valueQuantity)
      const path = as[2].slice(1).split('.');
      path.push(`${path.pop()}${as[3][0].toUpperCase()}${as[3].slice(1)}`);
      parts.push({ path: [...path, ...as[4].split('.').filter(Boolean)] });
      continue;
    }
    const m = PART_RE.exec(raw.trim());
    if (!m || m[1] !== type) return undefined;
    const path = m[2].slice(1).split('.');
    if (isChoice(path[0])) return undefined;
    parts.push({ path, referenceType: m[3] });
  }
  const union = parts.length > 1;
  return (resource) => {
    const out: unknown[] = [];
    // FHIRPath's | is a union: equal items appear once.
    const seen = union ? new Set<string>() : undefined;
    for (const part of parts) {
      let nodes: unknown[] = [resource];
      for (const key of part.path) {
        const next: unknown[] = [];
        for (const n of nodes) {
          if (n === null || typeof n !== 'object') continue;
          const v = (n as Record<string, unknown>)[key];
          if (v === undefined) {
            // A nested choice element ([x]) is not a plain path: let FHIRPath decide.
            if (Object.keys(n).some((k) => k.startsWith(key) && /^[A-Z]/.test(k.slice(key.length)))) throw new NotSimple();
            continue;
          }
          if (Array.isArray(v)) for (const x of v) next.push(x);
          else next.push(v);
        }
        nodes = next;
      }
      for (const n of nodes) {
        if (part.referenceType && !isReferenceTo(n, part.referenceType)) continue;
        if (seen) {
          const key = typeof n === 'object' ? JSON.stringify(n) : `${typeof n}:${String(n)}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        out.push(n);
      }
    }
    return out;
  };
}

export class NotSimple extends Error {}

function isReferenceTo(node: unknown, type: string): boolean {
  const ref = (node as { reference?: unknown } | null)?.reference;
  return typeof ref === 'string' && new RegExp(`(^|/)${type}/[A-Za-z0-9\\-.]{1,64}(/_history/[^/]+)?$`).test(ref);
}
