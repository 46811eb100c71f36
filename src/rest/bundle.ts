import { STATUS_CODES } from 'node:http';
import type { BundleEntry } from 'fhir/r4.js';
import { badRequest, FhirError, operationOutcome } from '../fhir/errors.ts';
import { StoreError } from '../store/resource-store.ts';
import { onlyParams } from './params.ts';
import type { AuditNotes, EntryFacts, HeaderName, Interaction, RestContext, RestRequest, RestResult } from './request.ts';
import { decideRoute, type RouteMeaning, routeShape, TYPE_ROUTES } from './routes.ts';
import { fromStoreFailure } from './store-errors.ts';

type Json = Record<string, unknown>;

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH']);

/**
 * `POST [base]` with a Bundle of type batch: each entry is one of the interactions HTTP offers,
 * reached through the same route table (rest/routes.ts), the same authorization decision and the
 * same interaction code; each has its own status and outcome in the batch-response, in order, and
 * its own AuditEvent linked to the Bundle's. One failing entry does not stop the others.
 * See: https://hl7.org/fhir/R4/http.html#transaction (batch and transaction)
 */
export function bundleInteraction(interactions: () => Readonly<Record<string, Interaction>>): Interaction {
  return async (ctx, req) => {
    onlyParams(req, new Set(['_format', '_pretty']));
    const bundle = checkBundle(req.body(), ctx.bundles.maxEntries);
    req.audit.interaction = bundle.type;
    if (bundle.type === 'transaction') {
      throw new FhirError('HEARTH_NOT_SUPPORTED', {
        diagnostics: 'transaction Bundles are not supported yet: send a batch (entries processed independently)',
        expression: 'Bundle.type',
      });
    }
    const transport = req.entries;
    if (!transport) throw new Error('a batch needs a transport that audits its entries');
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
  return { method, route: meaning, id: shape.id, vid: shape.vid, query, request };
}

const HEADERS: Record<Exclude<HeaderName, 'prefer'>, string> = {
  'if-match': 'ifMatch',
  'if-none-exist': 'ifNoneExist',
  'if-none-match': 'ifNoneMatch',
  'if-modified-since': 'ifModifiedSince',
};

async function batchEntry(
  ctx: RestContext,
  req: RestRequest,
  interactions: Readonly<Record<string, Interaction>>,
  raw: unknown,
  index: number,
): Promise<BundleEntry> {
  const transport = req.entries!;
  const requestId = transport.requestId(index);
  const audit: AuditNotes = { touched: [] };
  let facts: Omit<EntryFacts, 'status'> = { requestId, interaction: 'batch', audit };
  let result: RestResult;
  try {
    const target = targetOf(ctx, raw, index);
    const { route, request } = target;
    facts = { ...facts, interaction: route.interaction, type: route.type };
    const decision = decideRoute(req.access.principal, route, typeof request.ifNoneExist === 'string', ctx.model, ctx.policy, target.method);
    if (!decision.allowed) throw new FhirError('HEARTH_FORBIDDEN', { code: 'forbidden', diagnostics: decision.reason });
    const resource = (raw as Json).resource;
    const sub: RestRequest = {
      type: route.type,
      id: target.id,
      vid: target.vid,
      query: target.query,
      body: () => {
        if (resource === undefined) throw badRequest('HEARTH_NO_BODY', 'this entry needs a resource', `Bundle.entry[${index}].resource`, 'required');
        return resource;
      },
      form: () => [],
      header: (name) => {
        if (name === 'prefer') return req.header('prefer');
        const v = request[HEADERS[name]];
        return typeof v === 'string' ? v : undefined;
      },
      access: decision.access,
      audit,
      writeAhead: { id: requestId, record: () => transport.attempt({ ...facts, status: 0 }) },
    };
    if (route.interaction === 'search-type' || route.interaction === 'history-type') facts = { ...facts, query: new URLSearchParams(target.query).toString() };
    result = await interactions[route.interaction](ctx, sub);
  } catch (err) {
    const e = asFhirError(err);
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

function asFhirError(err: unknown): FhirError | undefined {
  if (err instanceof FhirError) return err;
  if (err instanceof StoreError) return fromStoreFailure(err.failure);
  return undefined;
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
