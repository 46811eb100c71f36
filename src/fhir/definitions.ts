import { readFileSync } from 'node:fs';
import type { CapabilityStatement, SearchParameter } from 'fhir/r4.js';
import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4/index.js';
import { STRING_PARTS } from './search-values.ts';
import { compileSimplePath, NotSimple } from './simple-path.ts';

export type SearchParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'composite' | 'quantity' | 'uri';

export type Interaction =
  | 'read'
  | 'vread'
  | 'update'
  | 'delete'
  | 'history-instance'
  | 'history-type'
  | 'create'
  | 'search-type';

type Evaluator = (resource: unknown) => unknown[];

export interface SearchParamDef {
  readonly code: string;
  /** the same expression always through FHIRPath: the reference the fast path is tested against */
  readonly evaluateFhirPath: Evaluator;
  readonly type: SearchParamType;
  readonly url: string;
  readonly expression: string;
  readonly targets: readonly string[];
  readonly evaluate: Evaluator;
  /** the top-level elements the expression reads: what a role's element mask must allow */
  readonly elements: readonly string[];
  /**
   * The parameter whose index entries answer this one, where the type holds the same value under
   * another parameter (AuditEvent's `_lastUpdated` is its `date`) or evaluates the same expression
   * (Patient's `phonetic` is its `name`); such a parameter is not indexed on its own.
   */
  readonly indexedAs?: string;
  /**
   * A reference parameter defined as other reference parameters restricted to one target type
   * (R4's AuditEvent `patient` is `agent.who` and `entity.what` where they are Patient references,
   * Observation's is `subject` where it is one) is answered by those parameters' entries of
   * references to that type (answerClause in search-clauses.ts), so that a write stores each
   * reference once; its `:identifier` entries stay its own, as theirs would say nothing of the type.
   */
  readonly narrows?: { readonly params: readonly string[]; readonly targetType: string };
  /**
   * A string parameter over HumanName or Address some of whose parts are string parameters of
   * their own (R4's Patient `name` is `Patient.name`, `family` is `Patient.name.family`): those
   * parts' values are stored once, as their parameters' entries, and this parameter is answered
   * by its own entries (the other parts) or theirs (answerClause in search-clauses.ts) and sorted
   * by both. Element part (`family`) → its parameter.
   */
  readonly parts?: ReadonlyMap<string, string>;
  /**
   * A parameter defined as the union of other parameters' whole expressions, of its type (R4's
   * Observation `combo-code` is `Observation.code | Observation.component.code`, `code`'s and
   * `component-code`'s; a composite, of its components too): its entries would be theirs again.
   * It is not indexed on its own, answered by theirs (answerClause, compositeClause) and sorted
   * by all of them.
   */
  readonly unionOf?: readonly string[];
  /** Composite parameters: each component's type and expression relative to each base node. */
  readonly components?: readonly {
    readonly type: SearchParamType;
    readonly expression: string;
    readonly evaluate: Evaluator;
    readonly evaluateFhirPath: Evaluator;
  }[];
}

export interface ElementInfo {
  readonly summary: boolean;
  readonly min: number;
  readonly max: string;
  readonly modifier: boolean;
  readonly types: readonly string[];
}

export interface TypeModel {
  readonly type: string;
  readonly interactions: ReadonlySet<Interaction>;
  readonly params: ReadonlyMap<string, SearchParamDef>;
  /** Top-level element names (choice elements by their `[x]`-less stem) → definition. */
  readonly elements: ReadonlyMap<string, ElementInfo>;
  readonly includes: ReadonlySet<string>;
  readonly revIncludes: ReadonlySet<string>;
  readonly conditionalCreate: boolean;
  readonly conditionalUpdate: boolean;
}

export interface FhirModel {
  readonly types: ReadonlyMap<string, TypeModel>;
  readonly capabilityStatement: CapabilityStatement;
}

const root = new URL('../../', import.meta.url);
const readJson = (path: string) => JSON.parse(readFileSync(new URL(path, root), 'utf8'));

// Parameters with no FHIRPath expression (full-text, named queries) are not offered.
const UNSUPPORTED = new Set(['_content', '_text', '_query', '_list', '_has', '_filter']);

/**
 * Splits a multi-resource SearchParameter expression on its top-level unions and keeps the parts
 * rooted at `type` (or at Resource/DomainResource, rewritten to `type`).
 */
export function expressionFor(expression: string, type: string): string | undefined {
  const mine = splitUnion(expression)
    .map((p) => p.replace(/^(\(?)(Resource|DomainResource)\./, `$1${type}.`))
    .filter((p) => new RegExp(`^\\(?${type}(\\.|\\b)`).test(p));
  return mine.length > 0 ? mine.join(' | ') : undefined;
}

/** A FHIRPath expression's top-level union (`a | b`) as its parts. */
function splitUnion(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= expression.length; i++) {
    const c = expression[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if ((c === '|' && depth === 0) || i === expression.length) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  return parts;
}

// fhirpath.js cannot resolve() references synchronously; the type test only needs the reference's
// type segment, so `x.where(resolve() is T)` becomes a test on the literal reference. And `(x as T)`
// fails on a collection of several items (Observation.component.value), where R4's intent is
// the filter `x.ofType(T)`.
function rewriteResolve(expression: string): string {
  return expression
    .replace(/\(([A-Za-z][\w.]*) as (\w+)\)/g, '$1.ofType($2)')
    .replace(
      /\.where\(resolve\(\) is (\w+)\)/g,
      (_m, t: string) => `.where(reference.matches('(^|/)${t}/[A-Za-z0-9\\\\-\\\\.]{1,64}(/_history/[^/]+)?$'))`,
    )
    .replace(/\.as\(DateTime\)/g, '.as(dateTime)');
}

/** `Observation.value.ofType(Quantity) | Observation.component.code` → ['value', 'component']. */
function elementsRead(type: string, expression: string, components: string[]): string[] {
  const out = new Set<string>();
  for (const part of expression.split('|')) {
    const m = new RegExp(`^\\s*\\(?${type}\\.(\\w+)`).exec(part);
    if (m) out.add(m[1]);
    else if (part.trim() === type) for (const c of components) out.add(/^\w+/.exec(c)?.[0] ?? c);
  }
  return [...out];
}

/**
 * `expression` through FHIRPath, or through the fast path when it is simple enough (`fast`: the
 * type it starts from, undefined for a composite's relative component, and its choice elements).
 */
function compile(expression: string, fast?: { type: string | undefined; choiceTypes: (element: string) => readonly string[] }): Evaluator {
  const fn = fhirpath.compile(rewriteResolve(expression), r4model);
  const slow: Evaluator = (resource) => fn(resource as object) as unknown[];
  const simple = fast && compileSimplePath(expression, fast.type, fast.choiceTypes);
  if (!simple) return slow;
  return (resource) => {
    try {
      return simple(resource);
    } catch (err) {
      if (err instanceof NotSimple) return slow(resource);
      throw err;
    }
  };
}

export function loadFhirModel(options: { updateCreate: boolean }): FhirModel {
  const capability = readJson('capability-statement.json') as CapabilityStatement;
  const bundle = readJson('profiles/search-parameters.json') as { entry: { resource: SearchParameter }[] };
  const definitions = bundle.entry.map((e) => e.resource);
  const byUrl = new Map(definitions.map((d) => [d.url, d]));
  const types = new Map<string, TypeModel>();

  for (const rc of capability.rest?.[0]?.resource ?? []) {
    const type = rc.type;
    const elementTable = readJson(`profiles/elements/${type}.json`) as { elements: Record<string, ElementInfo> };
    const elements = new Map<string, ElementInfo>();
    for (const [name, info] of Object.entries(elementTable.elements)) elements.set(name.replace(/\[x\]$/, ''), info);
    const params = new Map<string, SearchParamDef>();
    // A type may name the parameters it serves (AuditEvent: what auditors search, so that the
    // trail is indexed by nothing more); otherwise every R4 parameter of the type is served.
    const declared = rc.searchParam && new Set(rc.searchParam.map((p) => p.name));
    for (const sp of definitions) {
      if (UNSUPPORTED.has(sp.code) || params.has(sp.code)) continue;
      if (declared && !declared.has(sp.code)) continue;
      if (!sp.base.some((b) => b === type || b === 'Resource' || b === 'DomainResource')) continue;
      const expression = sp.expression && expressionFor(sp.expression, type);
      if (!expression) continue;
      let components: SearchParamDef['components'];
      if (sp.type === 'composite') {
        components = (sp.component ?? []).map((c) => {
          const def = byUrl.get(c.definition);
          if (!def) throw new Error(`composite ${sp.code}: unknown component ${c.definition}`);
          return {
            type: def.type as SearchParamType,
            expression: c.expression,
            evaluate: compile(c.expression, { type: undefined, choiceTypes: () => [] }),
            evaluateFhirPath: compile(c.expression),
          };
        });
      }
      params.set(sp.code, {
        code: sp.code,
        type: sp.type as SearchParamType,
        url: sp.url,
        expression,
        targets: sp.target ?? [],
        evaluate: compile(expression, { type, choiceTypes: (e) => elements.get(e)?.types ?? [] }),
        evaluateFhirPath: compile(expression),
        elements: elementsRead(type, expression, (sp.component ?? []).map((c) => c.expression)),
        components,
      });
    }
    // An AuditEvent is written once, when it is recorded, and carries no meta: its last update is
    // `recorded` (the time its row and its Last-Modified header give), which `date` indexes; the
    // element a role's mask must allow for it is `recorded` too.
    const lastUpdated = params.get('_lastUpdated');
    const recorded = params.get('date');
    if (type === 'AuditEvent' && lastUpdated && recorded) params.set('_lastUpdated', { ...lastUpdated, indexedAs: 'date', elements: recorded.elements });
    shareIdenticalEntries(params);
    answerNarrowedReferences(params);
    answerStringsByParts(params);
    answerUnions(params);
    for (const name of declared ?? []) {
      if (!params.has(name)) throw new Error(`capability-statement.json: ${type} declares search parameter "${name}", which R4 does not define for it`);
    }
    const interactions = new Set((rc.interaction ?? []).map((i) => i.code as Interaction));
    rc.updateCreate = interactions.has('update') && options.updateCreate;
    // What the file says of a parameter (documentation) is kept; the rest comes from R4.
    const documented = new Map((rc.searchParam ?? []).filter((p) => p.documentation).map((p) => [p.name, p.documentation]));
    rc.searchParam = [...params.values()].map((p) => ({
      name: p.code,
      definition: p.url,
      type: p.type,
      ...(documented.has(p.code) ? { documentation: documented.get(p.code) } : {}),
    }));
    types.set(type, {
      type,
      interactions,
      params,
      elements,
      includes: new Set(rc.searchInclude ?? []),
      revIncludes: new Set(rc.searchRevInclude ?? []),
      conditionalCreate: rc.conditionalCreate === true,
      conditionalUpdate: rc.conditionalUpdate === true,
    });
  }
  return { types, capabilityStatement: capability };
}

/**
 * A parameter with the type and the expression of one before it (R4's Patient `phonetic` is
 * `Patient.name`, as `name` is) has the same index entries by definition: it is answered by that
 * one's, so that a write stores them once (an encrypted Patient's name prefixes are a sixth of its
 * blind-index entries, each a random page of the index to write).
 */
function shareIdenticalEntries(params: Map<string, SearchParamDef>): void {
  const first = new Map<string, string>();
  for (const [code, def] of params) {
    if (def.type === 'composite' || def.indexedAs) continue;
    const key = `${def.type} ${def.expression}`;
    const owner = first.get(key);
    if (owner === undefined) first.set(key, code);
    else params.set(code, { ...def, indexedAs: owner });
  }
}

/**
 * Marks the reference parameters whose expression is a union of `X.where(resolve() is T)`, one T,
 * where each X is another reference parameter's whole expression (SearchParamDef.narrows): the
 * entries of X already hold every T reference the parameter would. AuditEvent's `patient` is
 * about a fifth of an event's index on disk.
 */
function answerNarrowedReferences(params: Map<string, SearchParamDef>): void {
  const plain = new Map<string, string>();
  for (const def of params.values()) if (def.type === 'reference' && !def.indexedAs && !def.narrows) plain.set(def.expression, def.code);
  for (const [code, def] of params) {
    if (def.type !== 'reference' || def.indexedAs) continue;
    const parts = splitUnion(def.expression).map((p) => /^(.+)\.where\(resolve\(\) is (\w+)\)$/.exec(p));
    if (parts.some((m) => !m)) continue;
    const targets = new Set(parts.map((m) => m?.[2]));
    const sources = parts.map((m) => (m ? plain.get(m[1]) : undefined));
    if (targets.size !== 1 || sources.some((s) => s === undefined)) continue;
    params.set(code, { ...def, narrows: { params: sources as string[], targetType: [...targets][0] as string } });
  }
}

/**
 * Marks the string parameters whose parts (STRING_PARTS: a HumanName's `family`, an Address's
 * `city`, ...) are string parameters of their own, expression `<its expression>.<part>`
 * (SearchParamDef.parts). An encrypted Patient's `name` and `address` entries repeated its
 * `family`, `given`, `address-city` and `address-postalcode` ones: 38 of its 96 blind-index
 * entries, each a random page of the index to write.
 */
function answerStringsByParts(params: Map<string, SearchParamDef>): void {
  const byExpression = new Map<string, string>();
  for (const def of params.values()) if (def.type === 'string' && !def.indexedAs) byExpression.set(def.expression, def.code);
  for (const [code, def] of params) {
    if (def.type !== 'string' || def.indexedAs) continue;
    const parts = new Map<string, string>();
    for (const part of STRING_PARTS) {
      const param = byExpression.get(`${def.expression}.${part}`);
      if (param !== undefined) parts.set(part, param);
    }
    if (parts.size > 0) params.set(code, { ...def, parts });
  }
  // A parameter answered by another's entries (`phonetic`, by `name`'s) is answered by its parts too.
  for (const [code, def] of params) {
    const parts = def.indexedAs === undefined ? undefined : params.get(def.indexedAs)?.parts;
    if (parts) params.set(code, { ...def, parts });
  }
}

/**
 * Marks the parameters whose expression's terms (splitUnion) are exactly those of two or more
 * other parameters of the same type (and components) together (SearchParamDef.unionOf). On
 * today's model: Observation's `combo-*` parameters, a third of a simple Observation's entries.
 * References are left out: a chain or `_include` follows a reference parameter's own entries.
 */
function answerUnions(params: Map<string, SearchParamDef>): void {
  const shape = (d: SearchParamDef) => `${d.type} ${(d.components ?? []).map((c) => `${c.type}:${c.expression}`).join(';')}`;
  const candidates = [...params.values()].filter((d) => d.type !== 'reference' && !d.indexedAs && !d.narrows && !d.parts);
  const terms = new Map(candidates.map((d) => [d, splitUnion(d.expression)]));
  const termsOf = (d: SearchParamDef) => terms.get(d) ?? [];
  /** `q`'s terms are some of `d`'s, fewer. */
  const within = (q: SearchParamDef, d: SearchParamDef) =>
    shape(q) === shape(d) && termsOf(q).length < termsOf(d).length && termsOf(q).every((t) => termsOf(d).includes(t));
  // A source is no union of others itself: no other parameter lies within it.
  const sources = candidates.filter((q) => !candidates.some((r) => within(r, q)));
  for (const d of candidates) {
    const parts = sources.filter((q) => within(q, d));
    const covered = new Set(parts.flatMap(termsOf));
    if (parts.length < 2 || !termsOf(d).every((t) => covered.has(t))) continue;
    const first = (q: SearchParamDef) => termsOf(d).indexOf(termsOf(q)[0]);
    params.set(d.code, { ...d, unionOf: parts.sort((x, y) => first(x) - first(y)).map((q) => q.code) });
  }
}

/** The JSON names of an element: itself, or for a choice (`value[x]`) one per type (`valueQuantity`, ...). */
export function choiceKeys(stem: string, info: ElementInfo): string[] {
  return info.types.length > 1 ? info.types.map((t) => `${stem}${t[0].toUpperCase()}${t.slice(1)}`) : [stem];
}
