import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { BundleEntry } from 'fhir/r4.js';
import { badRequest, FhirError, operationOutcome } from '../fhir/errors.ts';
import { isDecimalText } from '../fhir/json.ts';
import { onlyParams } from './params.ts';
import type { AuditNotes, EntryFacts, HeaderName, Interaction, RestContext, RestRequest, RestResult, StagedRecords } from './request.ts';
import { decideRoute, type RouteMeaning, routeShape, TYPE_ROUTES } from './routes.ts';
import { knownError } from './store-errors.ts';

type Json = Record<string, unknown>;

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH']);

/**
 * `POST [base]` with a Bundle of type batch or transaction: each entry is one of the interactions
 * HTTP offers, reached through the same route table (rest/routes.ts), the same authorization
 * decision and the same interaction code, and leaves its own AuditEvent linked to the Bundle's.
 * In a batch each entry has its own status and outcome, one failing entry stopping nothing; a
 * transaction is all or nothing (below).
 * See: https://hl7.org/fhir/R4/http.html#transaction (batch and transaction)
 */
export function bundleInteraction(interactions: () => Readonly<Record<string, Interaction>>): Interaction {
  return async (ctx, req) => {
    onlyParams(req, new Set(['_format', '_pretty']));
    const bundle = checkBundle(req.body(), ctx.bundles.maxEntries);
    req.audit.interaction = bundle.type;
    if (!req.entries) throw new Error('a Bundle needs a transport that audits its entries');
    if (bundle.type === 'transaction') return transaction(ctx, req, interactions(), bundle.entry);
    const entry: BundleEntry[] = [];
    for (let i = 0; i < bundle.entry.length; i++) {
      entry.push(await batchEntry(ctx, req, interactions(), bundle.entry[i], i));
    }
    return { status: 200, resource: { resourceType: 'Bundle', type: 'batch-response', entry } };
  };
}

function checkBundle(body: unknown, maxEntries: number): { type: 'batch' | 'transaction'; entry: unknown[] } {
  const b = body as Json;
  if (b === null || typeof b !== 'object' || Array.isArray(b) || b.resourceType !== 'Bundle') {
    throw badRequest('HEARTH_INVALID_RESOURCE', 'the base URL accepts a Bundle of type batch or transaction', 'Bundle.resourceType', 'invalid');
  }
  if (b.type !== 'batch' && b.type !== 'transaction') {
    const got = typeof b.type === 'string' ? `"${b.type.slice(0, 40)}"` : 'none';
    throw badRequest('HEARTH_INVALID_RESOURCE', `Bundle.type must be batch or transaction, got ${got}`, 'Bundle.type', 'value');
  }
  if (b.entry !== undefined && !Array.isArray(b.entry)) {
    throw badRequest('HEARTH_INVALID_RESOURCE', 'Bundle.entry must be an array', 'Bundle.entry', 'structure');
  }
  const entry = (b.entry as unknown[] | undefined) ?? [];
  if (entry.length > maxEntries) {
    throw new FhirError('HEARTH_BUNDLE_TOO_LARGE', {
      diagnostics: `the Bundle has ${entry.length} entries; the limit is ${maxEntries} (HEARTH_BUNDLE_MAX_ENTRIES)`,
      expression: 'Bundle.entry',
    });
  }
  return { type: b.type, entry };
}

/** An entry's request: the interaction its method and URL name, and the parts of its URL. */
interface EntryTarget {
  readonly index: number;
  readonly method: string;
  readonly route: RouteMeaning;
  readonly id?: string;
  readonly vid?: string;
  readonly query: [string, string][];
  readonly request: Json;
}

function targetOf(ctx: RestContext, raw: unknown, index: number): EntryTarget {
  const where = `Bundle.entry[${index}]`;
  const entry = raw as Json;
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw badRequest('HEARTH_INVALID_RESOURCE', 'an entry must be an object', where, 'structure');
  const request = entry.request as Json | undefined;
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw badRequest('HEARTH_INVALID_RESOURCE', 'every entry of a batch needs a request (method and url)', `${where}.request`, 'required');
  }
  const method = request.method;
  if (typeof method !== 'string' || !METHODS.has(method)) {
    throw badRequest('HEARTH_INVALID_RESOURCE', 'request.method must be GET, HEAD, POST, PUT, DELETE or PATCH', `${where}.request.method`, 'value');
  }
  if (typeof request.url !== 'string' || request.url === '') {
    throw badRequest('HEARTH_INVALID_RESOURCE', 'request.url must name what the entry acts on (Patient/123, Patient?identifier=x)', `${where}.request.url`, 'required');
  }
  // Relative to the base, or absolute under this server's base; nothing else is ours.
  let url = request.url;
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) {
    if (!url.startsWith(`${ctx.baseUrl}/`)) {
      throw badRequest('HEARTH_INVALID_RESOURCE', 'request.url must be relative to this server\'s base, or under it', `${where}.request.url`, 'value');
    }
    url = url.slice(ctx.baseUrl.length + 1);
  }
  const q = url.indexOf('?');
  const path = `/${(q === -1 ? url : url.slice(0, q)).replace(/^\/+/, '')}`;
  let query: [string, string][];
  try {
    query = q === -1 ? [] : [...new URLSearchParams(url.slice(q + 1))];
  } catch {
    throw badRequest('HEARTH_BAD_QUERY', 'the query of request.url is malformed', `${where}.request.url`, 'invalid');
  }
  const shape = routeShape(ctx.model, path);
  if (!shape) throw new FhirError('HEARTH_NOT_FOUND', { code: 'not-found', diagnostics: `${path.slice(0, 80)} is no FHIR URL of this server`, expression: `${where}.request.url` });
  // HEAD is GET without the body; in a Bundle there is no difference to make.
  const asked = method === 'HEAD' ? 'GET' : method;
  const route = TYPE_ROUTES.find((r) => r.method === asked && r.url === shape.url);
  const allow = TYPE_ROUTES.filter((r) => r.url === shape.url).map((r) => r.method).join(', ');
  const meaning: RouteMeaning = { type: shape.type, interaction: route?.interaction ?? 'method-not-allowed', allow };
  return { index, method, route: meaning, id: shape.id, vid: shape.vid, query, request };
}

const HEADERS: Record<Exclude<HeaderName, 'prefer'>, string> = {
  'if-match': 'ifMatch',
  'if-none-exist': 'ifNoneExist',
  'if-none-match': 'ifNoneMatch',
  'if-modified-since': 'ifModifiedSince',
};

/** What one entry runs: its route's interaction on `ctx` (a transaction's plan, or the store), under the one decision. */
async function runEntry(
  ctx: RestContext,
  req: RestRequest,
  interactions: Readonly<Record<string, Interaction>>,
  target: EntryTarget,
  resource: unknown,
  facts: Omit<EntryFacts, 'status'>,
  attempt: () => Promise<void> = () => req.entries!.attempt({ ...facts, status: 0 }),
): Promise<RestResult> {
  const { route, request } = target;
  const decision = decideRoute(req.access.principal, route, typeof request.ifNoneExist === 'string', ctx.model, ctx.policy, target.method);
  if (!decision.allowed) throw new FhirError('HEARTH_FORBIDDEN', { code: 'forbidden', diagnostics: decision.reason });
  const sub: RestRequest = {
    type: route.type,
    id: target.id,
    vid: target.vid,
    query: target.query,
    body: () => {
      if (resource === undefined) throw badRequest('HEARTH_NO_BODY', 'this entry needs a resource', `Bundle.entry[${target.index}].resource`, 'required');
      return resource;
    },
    form: () => [],
    header: (name) => {
      if (name === 'prefer') return req.header('prefer');
      const v = request[HEADERS[name]];
      return typeof v === 'string' ? v : undefined;
    },
    access: decision.access,
    audit: facts.audit,
    writeAhead: { id: facts.requestId, record: attempt },
  };
  return interactions[route.interaction](ctx, sub);
}

/** The facts of an entry's AuditEvent, as far as its target is known. */
function factsOf(requestId: string, target: EntryTarget | undefined): Omit<EntryFacts, 'status'> {
  const audit: AuditNotes = { touched: [] };
  if (!target) return { requestId, interaction: 'batch', audit };
  const { route } = target;
  const query = route.interaction === 'search-type' || route.interaction === 'history-type' ? new URLSearchParams(target.query).toString() : undefined;
  return { requestId, interaction: route.interaction, type: route.type, audit, ...(query === undefined ? {} : { query }) };
}

async function batchEntry(
  ctx: RestContext,
  req: RestRequest,
  interactions: Readonly<Record<string, Interaction>>,
  raw: unknown,
  index: number,
): Promise<BundleEntry> {
  const transport = req.entries!;
  const requestId = transport.requestId(index);
  let facts = factsOf(requestId, undefined);
  let result: RestResult;
  try {
    const target = targetOf(ctx, raw, index);
    facts = factsOf(requestId, target);
    result = await runEntry(ctx, req, interactions, target, (raw as Json).resource, facts);
  } catch (err) {
    const e = knownError(err);
    if (!e) {
      transport.fault(err, requestId);
      result = { status: 500, resource: operationOutcome([{ code: 'exception', diagnostics: `internal server error; request id ${requestId}` }]) };
    } else result = { status: e.status, resource: operationOutcome(e.issues) };
    await transport.record({ ...facts, status: result.status, issueCode: e?.issues[0]?.code ?? 'exception' });
    return { response: { status: statusLine(result.status), outcome: result.resource as never } };
  }
  await transport.record({ ...facts, status: result.status });
  return responseEntry(ctx, result);
}

// See: https://hl7.org/fhir/R4/http.html#trules (DELETE, then POST, then PUT and PATCH, then GET
// and HEAD). Conditional creates go first among the POSTs, so that what they resolve to (an
// existing resource) is known before other entries' references to them are resolved.
function rank(t: EntryTarget): number {
  switch (t.method) {
    case 'DELETE':
      return 0;
    case 'POST':
      return typeof t.request.ifNoneExist === 'string' ? 1 : 2;
    case 'PUT':
    case 'PATCH':
      return 3;
    default:
      return 4;
  }
}

const LOCAL = /^urn:(uuid|oid):/;

/**
 * A transaction: every entry checked, authorized and prepared against the store as it is, then
 * all its writes committed in one store transaction — or, if any entry fails (or the store moved
 * on meanwhile), nothing, with the failing entry named. `urn:uuid:`/`urn:oid:` fullUrls of created
 * resources get their ids first and every reference to them, anywhere in an entry's resource, is
 * rewritten. Reads (GET, HEAD) run after the commit and see it; a failing read there is its own
 * entry's outcome, the writes standing.
 * See: https://hl7.org/fhir/R4/http.html#transaction
 */
async function transaction(
  ctx: RestContext,
  req: RestRequest,
  interactions: Readonly<Record<string, Interaction>>,
  entries: readonly unknown[],
): Promise<RestResult> {
  const transport = req.entries!;
  const fullUrlOf = (i: number) => {
    const f = (entries[i] as Json | null)?.fullUrl;
    return typeof f === 'string' ? f : undefined;
  };
  const named = (i: number, err: unknown) => nameEntry(i, fullUrlOf(i), err);
  const targets = entries.map((raw, i) => {
    try {
      return targetOf(ctx, raw, i);
    } catch (err) {
      throw named(i, err);
    }
  });
  // Ids of the resources the transaction creates under a urn: fullUrl, before anything runs.
  const resolved = new Map<string, string>();
  const assigned = new Map<number, string>();
  const seen = new Set<string>();
  targets.forEach((t, i) => {
    const fullUrl = fullUrlOf(i);
    if (fullUrl === undefined) return;
    if (seen.has(fullUrl)) throw named(i, badRequest('HEARTH_INVALID_RESOURCE', 'this fullUrl is on another entry too', `Bundle.entry[${i}].fullUrl`, 'duplicate'));
    seen.add(fullUrl);
    if (t.method === 'POST' && LOCAL.test(fullUrl)) {
      const id = randomUUID();
      assigned.set(i, id);
      resolved.set(fullUrl, `${t.route.type}/${id}`);
    }
  });
  const order = targets.map((_, i) => i).sort((a, b) => rank(targets[a]) - rank(targets[b]) || a - b);
  let nextId: string | undefined;
  const { repository, plan } = ctx.repository.transaction(ctx.clock(), () => nextId ?? randomUUID());
  const planned = { ...ctx, repository };
  const used = new Map<string, number>();
  const done: { index: number; facts: Omit<EntryFacts, 'status'>; result: RestResult }[] = [];
  // Nothing is written before the commit, so one write-ahead attempt for the whole transaction
  // (the Bundle request's: who, from where, under which token), durable before the commit,
  // covers every entry: each version carries its entry's id (`<request id>.<index>`), by which
  // start-up recovery finds what a transaction cut short by a crash committed and records each
  // entry's outcome (audit/recovery.ts). Entries that write nothing need no attempt.
  let attempted: Promise<void> | undefined;
  const attempt = () => {
    if (!attempted) {
      attempted = req.writeAhead!.record();
      // (awaited before the commit; a failure meanwhile is not an unhandled rejection)
      attempted.catch(() => undefined);
    }
    return Promise.resolve();
  };
  const results: RestResult[] = [];
  let staged: StagedRecords | undefined;
  try {
    for (const i of order) {
      const t = targets[i];
      if (t.method === 'GET' || t.method === 'HEAD') continue;
      const facts = factsOf(transport.requestId(i), t);
      nextId = assigned.get(i);
      let result: RestResult;
      try {
        const resource = resolveReferences((entries[i] as Json).resource, resolved, used, i);
        result = await runEntry(planned, req, interactions, t, resource, facts, attempt);
      } catch (err) {
        done.push({ index: i, facts, result: { status: 0 } });
        throw named(i, err);
      }
      done.push({ index: i, facts, result });
      // A conditional create that found its match, or a conditional update: the fullUrl names what it wrote or found.
      const fullUrl = fullUrlOf(i);
      const written = facts.audit.touched.at(-1)?.reference.replace(/\/_history\/\d+$/, '');
      if (fullUrl !== undefined && LOCAL.test(fullUrl) && written !== undefined && resolved.get(fullUrl) !== written) {
        if (used.has(fullUrl)) {
          throw named(i, badRequest('HEARTH_INVALID_RESOURCE', `entry ${used.get(fullUrl)} refers to this entry, which resolved to ${written} only after it was prepared`, undefined, 'conflict'));
        }
        resolved.set(fullUrl, written);
      }
    }
    await attempted;
    // The entries' AuditEvents (recorded now, each with its outcome) are built on the audit
    // writer's thread while the commit runs here, and appended once it has succeeded.
    staged = transport.stage(done.map((d) => ({ ...d.facts, status: d.result.status })));
    await plan.apply();
  } catch (err) {
    // Nothing was written: each entry's AuditEvent says so, with the transaction's status.
    staged?.discard();
    await Promise.allSettled([attempted]);
    const e = knownError(err);
    await Promise.all(done.map((d) => transport.record({ ...d.facts, status: e?.status ?? 500, issueCode: e?.issues[0]?.code ?? 'exception' })));
    throw err;
  }
  await staged.commit();
  for (const d of done) results[d.index] = d.result;
  for (const i of order) {
    const t = targets[i];
    if (t.method !== 'GET' && t.method !== 'HEAD') continue;
    const facts = factsOf(transport.requestId(i), t);
    try {
      results[i] = await runEntry(ctx, req, interactions, t, undefined, facts);
      await transport.record({ ...facts, status: results[i].status });
    } catch (err) {
      const e = knownError(err);
      if (!e) throw err;
      results[i] = { status: e.status, resource: operationOutcome(e.issues) };
      await transport.record({ ...facts, status: e.status, issueCode: e.issues[0]?.code });
    }
  }
  return { status: 200, resource: { resourceType: 'Bundle', type: 'transaction-response', entry: results.map((r) => responseEntry(ctx, r)) } };
}

/** Every `reference` in the resource (extensions and contained resources included) to a urn: fullUrl of the transaction, resolved. */
function resolveReferences(resource: unknown, resolved: ReadonlyMap<string, string>, used: Map<string, number>, index: number): unknown {
  const walk = (v: unknown, key?: string): unknown => {
    if (key === 'reference' && typeof v === 'string' && LOCAL.test(v)) {
      const to = resolved.get(v);
      if (to === undefined) throw badRequest('HEARTH_INVALID_RESOURCE', `the reference ${v.slice(0, 80)} is the fullUrl of no entry that creates a resource`, undefined, 'not-found');
      if (!used.has(v)) used.set(v, index);
      return to;
    }
    if (v === null || typeof v !== 'object' || isDecimalText(v)) return v;
    // Copied only along the paths to what changed: most of an entry has no reference to resolve.
    if (Array.isArray(v)) {
      let copy: unknown[] | undefined;
      v.forEach((x, i) => {
        const y = walk(x);
        if (y !== x) (copy ??= [...v])[i] = y;
      });
      return copy ?? v;
    }
    let copy: Json | undefined;
    for (const k of Object.keys(v)) {
      const x = (v as Json)[k];
      const y = walk(x, k);
      if (y !== x) (copy ??= { ...(v as Json) })[k] = y;
    }
    return copy ?? v;
  };
  return resource === undefined ? undefined : walk(resource);
}

/** A transaction's failure, naming the entry (index and fullUrl) it came from. */
function nameEntry(index: number, fullUrl: string | undefined, err: unknown): unknown {
  const e = knownError(err);
  if (!e) return err;
  const where = `entry ${index}${fullUrl ? ` (${fullUrl.slice(0, 100)})` : ''}`;
  return new FhirError(
    e.code,
    e.issues.map((i) => ({ ...i, diagnostics: `${where}: ${i.diagnostics}`, expression: i.expression ?? `Bundle.entry[${index}]` })),
    e.headers,
  );
}

const statusLine = (status: number) => `${status} ${STATUS_CODES[status] ?? ''}`.trim();

function responseEntry(ctx: RestContext, result: RestResult): BundleEntry {
  const resource = result.resource as Json | undefined;
  const isOutcome = resource?.resourceType === 'OperationOutcome';
  const fullUrl = resource && !isOutcome && typeof resource.id === 'string' && resource.resourceType !== 'Bundle' ? `${ctx.baseUrl}/${String(resource.resourceType)}/${resource.id}` : undefined;
  return {
    ...(fullUrl ? { fullUrl } : {}),
    ...(resource && !isOutcome ? { resource: resource as never } : {}),
    response: {
      status: statusLine(result.status),
      ...(result.location ? { location: result.location } : {}),
      ...(result.etag !== undefined ? { etag: `W/"${result.etag}"` } : {}),
      ...(result.lastModified ? { lastModified: result.lastModified } : {}),
      ...(isOutcome ? { outcome: resource as never } : {}),
    },
  };
}
