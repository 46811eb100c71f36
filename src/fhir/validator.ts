import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { choiceKeys, type FhirModel } from './definitions.ts';
import { FhirError, type Issue } from './errors.ts';
import { withNumbers } from './json.ts';

/** sha256 of the unmodified HL7 fhir.schema.json in profiles/ (see profiles/README.md). */
export const SCHEMA_SHA256 = '15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d';
const SCHEMA_ID = 'http://hl7.org/fhir/json-schema/4.0';
const MAX_ISSUES = 50;
const INT32 = { minimum: -2147483648, maximum: 2147483647 };

// See: https://hl7.org/fhir/R4/references.html#literal (relative, absolute, or a contained #id)
const REFERENCE_RE =
  /^(#[A-Za-z0-9\-.]{1,64}|#|[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}(\/_history\/[A-Za-z0-9\-.]{1,64})?|https?:\/\/[^\s]+|urn:(uuid|oid):[^\s]+)$/;

/** An element by its JSON names (one per type of a choice) and their `_` twins (primitive extensions). */
interface NamedElement {
  readonly stem: string;
  readonly keys: readonly string[];
  readonly twins: readonly string[];
}

/** The names of `element` that `resource` holds, itself or through its `_` twin. */
function presentKeys(resource: Record<string, unknown>, element: NamedElement): string[] {
  return element.keys.filter((k, i) => k in resource || element.twins[i] in resource);
}

interface ElementRules {
  readonly choices: readonly NamedElement[];
  readonly required: readonly NamedElement[];
}

/**
 * Validates resources against HL7's official R4 JSON schema, compiled per served type (never the
 * 146-way root oneOf), plus the rules the schema cannot express.
 */
export class ResourceValidator {
  readonly #ajv: Ajv;
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #known: ReadonlySet<string>;
  readonly #model: FhirModel;
  readonly #rules = new Map<string, ElementRules>();

  constructor(model: FhirModel) {
    this.#model = model;
    const raw = readFileSync(new URL('../../profiles/fhir.schema.json', import.meta.url));
    const sha = createHash('sha256').update(raw).digest('hex');
    if (sha !== SCHEMA_SHA256) throw new Error(`profiles/fhir.schema.json checksum mismatch: ${sha}`);
    const schema = JSON.parse(raw.toString('utf8'));
    this.#known = new Set(Object.keys(schema.discriminator.mapping));
    // Known quirks of the published schema, patched in memory, never in the file:
    // draft-06 `id` is `$id` to ajv; the root oneOf/discriminator is never used (we dispatch on
    // resourceType); contained resources are dispatched the same way instead of through the
    // 146-way ResourceList; integers are declared as numbers with a pattern, which JSON Schema
    // ignores for numbers, so they become real integers of FHIR's 32-bit range.
    delete schema.id;
    delete schema.$schema;
    delete schema.oneOf;
    delete schema.discriminator;
    schema.$id = SCHEMA_ID;
    schema.definitions.ResourceList = {
      type: 'object',
      required: ['resourceType'],
      properties: { resourceType: { type: 'string' } },
    };
    patchIntegers(schema);
    patchDates(schema);
    // Complex types are published with properties but no type, so a number or a string where an
    // element object belongs (`"_gender": 5`) passed: each such definition is an object.
    for (const def of Object.values(schema.definitions) as Record<string, unknown>[]) {
      if (def.properties && def.type === undefined) def.type = 'object';
    }
    this.#ajv = new Ajv({
      allErrors: true,
      strict: false,
      coerceTypes: false,
      useDefaults: false,
      removeAdditional: false,
      unicodeRegExp: false,
    });
    this.#ajv.addFormat('fhir-calendar', { type: 'string', validate: isCalendarDate });
    this.#ajv.addSchema(schema);
    for (const type of model.types.keys()) this.#validatorFor(type);
  }

  /** Throws a 400 FhirError with one issue per problem; `type` is the type named by the URL. */
  validate(resource: unknown, type: string): asserts resource is Record<string, unknown> {
    if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
      throw invalid([{ code: 'structure', diagnostics: 'the body must be a JSON object holding a FHIR resource' }]);
    }
    const r = resource as Record<string, unknown>;
    // See: https://hl7.org/fhir/R4/http.html#create (the resource type must match the endpoint)
    if (r.resourceType !== type) {
      throw invalid([
        {
          code: 'invalid',
          diagnostics: `resourceType must be "${type}" at this endpoint, got ${JSON.stringify(r.resourceType)?.slice(0, 40) ?? 'nothing'}`,
          expression: `${type}.resourceType`,
        },
      ]);
    }
    const issues = this.#check(withNumbers(r, schemaValue), type, type);
    if (issues.length > 0) throw invalid(issues.slice(0, MAX_ISSUES));
  }

  #check(resource: Record<string, unknown>, type: string, path: string): Issue[] {
    const validate = this.#validatorFor(type);
    const issues: Issue[] = [];
    if (!validate(resource)) issues.push(...(validate.errors ?? []).map((e) => toIssue(e, path)));
    if (Array.isArray(resource.contained)) {
      resource.contained.forEach((c, i) => {
        const ct = (c as { resourceType?: unknown })?.resourceType;
        const where = `${path}.contained[${i}]`;
        if (typeof ct !== 'string' || !this.#known.has(ct)) {
          issues.push({
            code: 'structure',
            diagnostics: 'contained resource has an unknown resourceType',
            expression: where,
          });
        } else {
          issues.push(...containedRules(c as Record<string, unknown>, where));
          issues.push(...this.#check(c as Record<string, unknown>, ct, where));
        }
      });
    }
    issues.push(...checkReferences(resource, path));
    issues.push(...this.#checkChoices(resource, type, path));
    issues.push(...this.#checkRequired(resource, type, path));
    return issues;
  }

  #validatorFor(type: string): ValidateFunction {
    let v = this.#validators.get(type);
    if (!v) {
      v = this.#ajv.getSchema(`${SCHEMA_ID}#/definitions/${type}`);
      if (!v) throw new Error(`no schema definition for ${type}`);
      this.#validators.set(type, v);
    }
    return v;
  }

  /**
   * A type's choice elements and its required elements, each with its JSON names and their `_`
   * twins, worked out once: validation runs for every entry of a transaction, and building the
   * names per resource cost more than the schema check itself.
   */
  #rulesOf(type: string): ElementRules {
    let rules = this.#rules.get(type);
    if (!rules) {
      const choices: NamedElement[] = [];
      const required: NamedElement[] = [];
      for (const [stem, info] of this.#model.types.get(type)?.elements ?? []) {
        const keys = choiceKeys(stem, info);
        const named = { stem, keys, twins: keys.map((k) => `_${k}`) };
        if (info.types.length > 1) choices.push(named);
        if (info.min >= 1) required.push(named);
      }
      rules = { choices, required };
      this.#rules.set(type, rules);
    }
    return rules;
  }

  // The published schema leaves required primitives out of `required` (a primitive may be present
  // only as its `_element` extension), so cardinality min 1 is checked here.
  // See: https://hl7.org/fhir/R4/json.html#primitive
  #checkRequired(resource: Record<string, unknown>, type: string, path: string): Issue[] {
    const issues: Issue[] = [];
    for (const named of this.#rulesOf(type).required) {
      if (presentKeys(resource, named).length === 0) {
        issues.push({
          code: 'required',
          diagnostics: `missing required element "${named.stem}"`,
          expression: `${path}.${named.stem}`,
        });
      }
    }
    return issues;
  }

  // See: https://hl7.org/fhir/R4/formats.html#choice (only one type of a choice element may be present)
  #checkChoices(resource: Record<string, unknown>, type: string, path: string): Issue[] {
    const issues: Issue[] = [];
    for (const named of this.#rulesOf(type).choices) {
      const present = presentKeys(resource, named);
      if (present.length < 2) continue;
      issues.push({
        code: 'structure',
        diagnostics: `only one of ${present.join(', ')} may be present (${named.stem}[x] is a choice)`,
        expression: `${path}.${present[1]}`,
      });
    }
    return issues;
  }
}

/**
 * integer, unsignedInt and positiveInt are published as `type: number` with a pattern (inline in
 * choice elements too); a pattern does not apply to numbers, so 1.5 would pass as an integer.
 * See: https://hl7.org/fhir/R4/datatypes.html#integer (32-bit range)
 */
function patchIntegers(schema: unknown): void {
  eachNode(schema, (n) => {
    if (n.type === 'number' && typeof n.pattern === 'string' && !n.pattern.includes('.')) {
      n.type = 'integer';
      n.minimum = n.pattern.startsWith('^-?')
        ? INT32.minimum
        : n.pattern.includes('[1-9][0-9]*$') && !n.pattern.includes('[0]')
          ? 1
          : 0;
      n.maximum = INT32.maximum;
      delete n.pattern;
    }
  });
}

/** Calls `visit` on every object of a JSON document (the schema), parents before children. */
function eachNode(node: unknown, visit: (n: Record<string, unknown>) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) eachNode(n, visit);
    return;
  }
  if (!node || typeof node !== 'object') return;
  visit(node as Record<string, unknown>);
  for (const v of Object.values(node)) eachNode(v, visit);
}

// The date, dateTime and instant patterns (inline in choice elements too) all begin with the year.
const DATE_PATTERN_START = '^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)';

/**
 * The date patterns accept 1990-02-30; "Dates SHALL be valid dates" (R4 datatypes, date and
 * dateTime), so every string with such a pattern also has the calendar checked.
 * See: https://hl7.org/fhir/R4/datatypes.html#date
 */
function patchDates(schema: unknown): void {
  eachNode(schema, (n) => {
    if (n.type === 'string' && typeof n.pattern === 'string' && n.pattern.startsWith(DATE_PATTERN_START)) n.format = 'fhir-calendar';
  });
}

/** Whether the day of a (partial) FHIR date or dateTime exists in its month (the pattern has checked the rest). */
export function isCalendarDate(value: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  if (!m) return true;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
  return day <= days;
}

/**
 * What a contained resource may not hold: resources of its own (dom-2), a version id or
 * last-updated time (dom-4), security labels (dom-5).
 * See: https://hl7.org/fhir/R4/domainresource.html#invs
 */
function containedRules(c: Record<string, unknown>, where: string): Issue[] {
  const issues: Issue[] = [];
  const meta = (c.meta ?? {}) as Record<string, unknown>;
  if (c.contained !== undefined) {
    issues.push({ code: 'invariant', diagnostics: 'a contained resource may not contain resources (dom-2)', expression: `${where}.contained` });
  }
  for (const k of ['versionId', 'lastUpdated']) {
    if (meta[k] !== undefined) issues.push({ code: 'invariant', diagnostics: `a contained resource may not have meta.${k} (dom-4)`, expression: `${where}.meta.${k}` });
  }
  if (meta.security !== undefined) {
    issues.push({ code: 'invariant', diagnostics: 'a contained resource may not have security labels (dom-5)', expression: `${where}.meta.security` });
  }
  return issues;
}

/**
 * What the schema checks for a number kept as written (fhir/json.ts): its value; but text with a
 * fraction or an exponent (`1.0`, `1e2`) is never a FHIR integer, whose form is
 * `-?([0]|([1-9][0-9]*))`, so it is checked as a value that no integer type accepts (decimals have
 * no bounds in the schema).
 * See: https://hl7.org/fhir/R4/datatypes.html#integer
 */
function schemaValue(text: string): number {
  const value = Number(text);
  return Number.isInteger(value) && /[.eE]/.test(text) ? value + 0.5 : value;
}

function invalid(issues: Issue[]): FhirError {
  return new FhirError('HEARTH_INVALID_RESOURCE', issues);
}

function checkReferences(node: unknown, path: string): Issue[] {
  const issues: Issue[] = [];
  const walk = (value: unknown, where: string) => {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) walk(value[i], `${where}[${i}]`);
    } else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (k === 'contained') continue; // checked with their own type
        if (k === 'reference' && typeof v === 'string' && !REFERENCE_RE.test(v)) {
          issues.push({
            code: 'value',
            diagnostics: 'reference must be Type/id, an absolute URL, a urn:uuid/urn:oid or #contained-id',
            expression: `${where}.reference`,
          });
        } else walk(v, `${where}.${k}`);
      }
    }
  };
  walk(node, path);
  return issues;
}

/** `/name/0/family` → `Patient.name[0].family` */
function toExpression(root: string, instancePath: string, child?: string): string {
  let out = root;
  for (const seg of instancePath.split('/').slice(1)) {
    const s = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(s) ? `[${s}]` : `.${s}`;
  }
  return child ? `${out}.${child}` : out;
}

function toIssue(e: ErrorObject, root: string): Issue {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return {
        code: 'structure',
        diagnostics: `unknown element "${String(params.additionalProperty)}"`,
        expression: toExpression(root, e.instancePath, String(params.additionalProperty)),
      };
    case 'required':
      return {
        code: 'required',
        diagnostics: `missing required element "${String(params.missingProperty)}"`,
        expression: toExpression(root, e.instancePath, String(params.missingProperty)),
      };
    case 'pattern': {
      const fhirType = /#\/definitions\/([A-Za-z]+)\/pattern$/.exec(e.schemaPath)?.[1] ?? 'value';
      return {
        code: 'value',
        diagnostics: `not a valid FHIR ${fhirType}`,
        expression: toExpression(root, e.instancePath),
      };
    }
    case 'format':
      return { code: 'value', diagnostics: 'not a valid calendar date (that day does not exist in that month)', expression: toExpression(root, e.instancePath) };
    case 'type':
      return { code: 'structure', diagnostics: `must be a JSON ${String(params.type)}`, expression: toExpression(root, e.instancePath) };
    case 'enum':
      return {
        code: 'value',
        diagnostics: `must be one of ${(params.allowedValues as unknown[]).map(String).join(', ')}`,
        expression: toExpression(root, e.instancePath),
      };
    default:
      return { code: 'structure', diagnostics: e.message ?? 'invalid', expression: toExpression(root, e.instancePath) };
  }
}
