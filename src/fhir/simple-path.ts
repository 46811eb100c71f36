// A fast evaluator for the common shapes of SearchParameter expression: unions of element paths
// (`AuditEvent.agent.network.address`), the resource itself (`Observation`, a composite's base),
// references filtered to one type (`Observation.subject.where(resolve() is Patient)`), choice
// elements of a named type (`(Observation.component.value as Quantity)`, `value.as(Quantity)`:
// `valueQuantity` in JSON, R4's `ofType` intent), a top-level choice element of any type
// (`Observation.effective`), extensions by URL (`Observation.extension('http://…')`) and a filter
// on a string element (`Patient.telecom.where(system='email')`). Relative expressions (a
// composite's components, evaluated on each base node) are compiled without a type. Anything else —
// other functions, operators — stays with FHIRPath. The two are held equal by a test over every
// example resource, every parameter and every composite component (test/fhir/simple-path.test.ts).

type Evaluator = (resource: unknown) => unknown[];
type Node = Record<string, unknown>;

type Step =
  // `nested`: an element below the top level, which the model here cannot say is not a choice
  | { readonly kind: 'keys'; readonly keys: readonly string[]; readonly nested?: boolean }
  | { readonly kind: 'extension'; readonly url: string }
  | { readonly kind: 'where'; readonly key: string; readonly value: string }
  | { readonly kind: 'referenceTo'; readonly type: string };

// `(Observation.value as Quantity).text` is `Observation.value.as(Quantity).text`.
const AS_RE = /^\(([A-Za-z][\w.]*) as ([A-Za-z]+)\)/;
const STEP_RE =
  /^\.(?:([a-z][A-Za-z]*)(?![\w(])|(?:as|ofType)\(([A-Za-z]+)\)|extension\('([^']+)'\)|where\(([a-z][A-Za-z]*)\s*=\s*'([^']*)'\)|where\(resolve\(\) is ([A-Z][A-Za-z]+)\))/;

const capitalised = (s: string) => `${s[0].toUpperCase()}${s.slice(1)}`;

/**
 * Compiles `expression` when it is simple; undefined otherwise. `type` is the resource type the
 * expression starts from, or undefined for a relative expression. `choiceTypes` names the types of
 * a top-level choice element (value[x]: several), which a plain path cannot name.
 */
export function compileSimplePath(
  expression: string,
  type: string | undefined,
  choiceTypes: (element: string) => readonly string[],
): Evaluator | undefined {
  const parts: Step[][] = [];
  for (const raw of expression.split(' | ')) {
    const steps = parsePart(raw.trim().replace(AS_RE, '$1.as($2)'), type, choiceTypes);
    if (!steps) return undefined;
    parts.push(steps);
  }
  if (parts.length === 1) {
    const [steps] = parts;
    return (resource) => evaluate(steps, resource);
  }
  return (resource) => {
    let all: unknown[] | undefined;
    for (const steps of parts) {
      const nodes = evaluate(steps, resource);
      if (nodes.length === 0) continue;
      all ??= [];
      for (const n of nodes) all.push(n);
    }
    return !all ? NONE : all.length < 2 ? all : distinct(all);
  };
}

/**
 * What a path finds when it finds nothing: one shared array, frozen (a caller that added to it
 * would throw). Most of a type's parameters find nothing in most resources, and indexing a
 * resource evaluates all of them.
 */
const NONE: unknown[] = Object.freeze([]) as unknown as unknown[];

/** One part's steps from the resource (none: the resource itself); an array is made only once a step finds something. */
function evaluate(steps: readonly Step[], resource: unknown): unknown[] {
  if (steps.length === 0) return [resource];
  let nodes = take(steps[0], resource, undefined) ?? NONE;
  for (let i = 1; i < steps.length && nodes.length > 0; i++) {
    let next: unknown[] | undefined;
    for (const n of nodes) next = take(steps[i], n, next);
    nodes = next ?? NONE;
  }
  return nodes;
}

/** FHIRPath's `|` is a union: equal items appear once. */
function distinct(items: readonly unknown[]): unknown[] {
  const seen = new Set<string>();
  return items.filter((n) => {
    const key = typeof n === 'object' ? JSON.stringify(n) : `${typeof n}:${String(n)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function parsePart(part: string, type: string | undefined, choiceTypes: (element: string) => readonly string[]): Step[] | undefined {
  let rest: string;
  if (type === undefined) {
    if (!/^[a-z]/.test(part)) return undefined;
    rest = `.${part}`;
  } else {
    if (part !== type && !part.startsWith(`${type}.`)) return undefined;
    rest = part.slice(type.length);
  }
  const steps: Step[] = [];
  let elements = 0;
  while (rest.length > 0) {
    const m = STEP_RE.exec(rest);
    if (!m) return undefined;
    rest = rest.slice(m[0].length);
    const [, key, asType, url, whereKey, whereValue, referenceType] = m;
    if (key !== undefined) {
      elements++;
      const choices = type !== undefined && elements === 1 ? choiceTypes(key) : [];
      if (choices.length > 1) {
        const next = STEP_RE.exec(rest);
        if (next?.[2] !== undefined) {
          // See: https://hl7.org/fhir/R4/json.html#choice (value[x] of type Quantity is valueQuantity)
          rest = rest.slice(next[0].length);
          steps.push({ kind: 'keys', keys: [`${key}${capitalised(next[2])}`] });
        } else if (rest.length === 0) {
          // A bare choice element is its value, whichever type it has.
          steps.push({ kind: 'keys', keys: choices.map((t) => `${key}${capitalised(t)}`) });
        } else return undefined;
      } else steps.push({ kind: 'keys', keys: [key], nested: type === undefined || elements > 1 });
    } else if (asType !== undefined) {
      // `.as(T)` right after a nested element (`component.value`, a component's `value`): that
      // element is a choice; a top-level one that is not a choice is left to FHIRPath.
      const last = steps.at(-1);
      if (last?.kind !== 'keys' || last.keys.length !== 1 || (type !== undefined && elements === 1)) return undefined;
      steps[steps.length - 1] = { kind: 'keys', keys: [`${last.keys[0]}${capitalised(asType)}`] };
    } else if (url !== undefined) steps.push({ kind: 'extension', url });
    else if (whereKey !== undefined) steps.push({ kind: 'where', key: whereKey, value: whereValue });
    else steps.push({ kind: 'referenceTo', type: referenceType });
  }
  return steps;
}

/** What `step` finds in `n`, added to `out` (made on the first thing found); `out` as it was when nothing. */
function take(step: Step, n: unknown, out: unknown[] | undefined): unknown[] | undefined {
  if (n === null || typeof n !== 'object') return out;
  const node = n as Node;
  switch (step.kind) {
    case 'keys':
      for (const key of step.keys) {
        const v = node[key];
        if (v === undefined) {
          // A nested choice element ([x]) is not a plain path: let FHIRPath decide.
          if (step.nested && hasChoiceOf(node, key)) throw new NotSimple();
          continue;
        }
        out ??= [];
        if (Array.isArray(v)) for (const x of v) out.push(x);
        else out.push(v);
      }
      return out;
    case 'extension':
      if (Array.isArray(node.extension)) {
        for (const e of node.extension) {
          if ((e as Node | null)?.url === step.url) (out ??= []).push(e);
        }
      }
      return out;
    case 'where':
      if (node[step.key] === step.value) (out ??= []).push(node);
      return out;
    case 'referenceTo':
      if (isReferenceTo(node, step.type)) (out ??= []).push(node);
      return out;
  }
}

function hasChoiceOf(node: Node, key: string): boolean {
  for (const k in node) if (k.length > key.length && k.startsWith(key) && /^[A-Z]/.test(k[key.length])) return true;
  return false;
}

export class NotSimple extends Error {}

const REFERENCE_TO = new Map<string, RegExp>();

function isReferenceTo(node: unknown, type: string): boolean {
  const ref = (node as { reference?: unknown } | null)?.reference;
  if (typeof ref !== 'string') return false;
  let re = REFERENCE_TO.get(type);
  if (!re) {
    re = new RegExp(`(^|/)${type}/[A-Za-z0-9\\-.]{1,64}(/_history/[^/]+)?$`);
    REFERENCE_TO.set(type, re);
  }
  return re.test(ref);
}
