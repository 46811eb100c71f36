import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { BundleLink } from 'fhir/r4.js';
import type { Config } from '../config/config.ts';
import { historyBundle, searchsetBundle } from '../fhir/bundles.ts';
import type { FhirModel, Interaction } from '../fhir/definitions.ts';
import { badRequest, FhirError, notFound, operationOutcome } from '../fhir/errors.ts';
import type { FhirRepository } from '../fhir/repository.ts';
import { encodeCursor, parseSearch } from '../fhir/search-parser.ts';
import { dateRange } from '../fhir/search-values.ts';
import { applySubset, parseSubset } from '../fhir/subsetting.ts';
import type { StoredVersion, WriteResult } from '../store/resource-store.ts';
import { FormBody } from './body-parsers.ts';
import { etag, httpDate, parseIfMatch, parsePrefer } from './headers.ts';
import { sendResource } from './respond.ts';

export interface FhirRoutesOptions {
  readonly config: Config;
  readonly model: FhirModel;
  readonly repository: FhirRepository;
  readonly clock: () => Date;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' } as const;
const VID = { type: 'string', pattern: '^[1-9][0-9]{0,9}$' } as const;
const HISTORY_PARAMS = new Set(['_count', '_since', '_cursor', '_format', '_pretty', '_elements', '_summary']);
const READ_PARAMS = new Set(['_format', '_pretty', '_elements', '_summary']);

type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/** Registers every FHIR interaction of every type in capability-statement.json, each route saying what it is. */
export async function fhirRoutes(app: FastifyInstance, opts: FhirRoutesOptions): Promise<void> {
  const { config, model, repository, clock } = opts;
  const base = config.baseUrl;

  app.get(
    '/metadata',
    { config: { fhir: { type: 'CapabilityStatement', interaction: 'capabilities' } } },
    async (request, reply) => {
      onlyParams(request, READ_PARAMS);
      const cs = {
        ...model.capabilityStatement,
        implementation: { ...model.capabilityStatement.implementation, url: base },
      };
      return sendResource(request, reply, 200, cs);
    },
  );

  const idParams = { type: 'object', properties: { id: ID }, required: ['id'] };
  const vidParams = { type: 'object', properties: { id: ID, vid: VID }, required: ['id', 'vid'] };

  const handlers: Record<string, Handler> = {
    read: async (request, reply) => {
      const { id } = request.params as { id: string };
      const { type } = fhirOf(request);
      const subset = parseSubset(repository.typeModel(type), request.fhirQuery);
      onlyParams(request, READ_PARAMS);
      const v = await repository.read(type, id);
      versionHeaders(reply, v);
      return sendResource(request, reply, 200, applySubset(repository.typeModel(type), v.resource ?? {}, subset));
    },
    vread: async (request, reply) => {
      const { id, vid } = request.params as { id: string; vid: string };
      const { type } = fhirOf(request);
      const subset = parseSubset(repository.typeModel(type), request.fhirQuery);
      onlyParams(request, READ_PARAMS);
      const v = await repository.vread(type, id, Number(vid));
      versionHeaders(reply, v);
      return sendResource(request, reply, 200, applySubset(repository.typeModel(type), v.resource ?? {}, subset));
    },
    create: async (request, reply) => {
      const { type } = fhirOf(request);
      const prefer = parsePrefer(request.headers.prefer);
      onlyParams(request, READ_PARAMS);
      const body = jsonBody(request);
      const ifNoneExist = header(request, 'if-none-exist');
      let condition: ReturnType<typeof parseSearch>['query'] | undefined;
      if (ifNoneExist !== undefined) {
        // See: https://hl7.org/fhir/R4/http.html#ccreate
        if (!repository.typeModel(type).conditionalCreate) throw notSupported('conditional create', type);
        condition = criteria(ifNoneExist.replace(/^.*\?/, ''), type, 'If-None-Exist');
      }
      const result = await repository.create(type, body, condition);
      return sendWrite(request, reply, result, prefer.return);
    },
    update: async (request, reply) => {
      const { id } = request.params as { id: string };
      const { type } = fhirOf(request);
      const prefer = parsePrefer(request.headers.prefer);
      onlyParams(request, READ_PARAMS);
      const ifMatch = parseIfMatch(header(request, 'if-match'));
      const body = jsonBody(request);
      const result = await repository.update(type, { id }, body, { ifMatch, allowCreate: config.updateCreate });
      return sendWrite(request, reply, result, prefer.return);
    },
    'conditional-update': async (request, reply) => {
      const { type } = fhirOf(request);
      // See: https://hl7.org/fhir/R4/http.html#cond-update
      if (!repository.typeModel(type).conditionalUpdate) throw notSupported('conditional update', type);
      const prefer = parsePrefer(request.headers.prefer);
      const ifMatch = parseIfMatch(header(request, 'if-match'));
      const pairs = request.fhirQuery.filter(([k]) => !READ_PARAMS.has(k));
      if (pairs.length === 0)
        throw badRequest('HEARTH_NO_CRITERIA', 'conditional update needs search criteria in the URL');
      const query = criteriaFromPairs(pairs, type, 'conditional update');
      const body = jsonBody(request);
      const result = await repository.update(type, { query }, body, { ifMatch, allowCreate: true });
      return sendWrite(request, reply, result, prefer.return);
    },
    delete: async (request, reply) => {
      const { id } = request.params as { id: string };
      const { type } = fhirOf(request);
      onlyParams(request, new Set());
      // See: https://hl7.org/fhir/R4/http.html#delete (deleting an already deleted resource succeeds)
      const latest = (await repository.delete(type, id)) ?? (await repository.latest(type, id));
      if (!latest) throw notFound(`${type}/${id} does not exist`);
      reply.header('etag', etag(latest.versionId));
      return reply.code(204).send();
    },
    'history-instance': async (request, reply) => history(request, reply, (request.params as { id: string }).id),
    'history-type': async (request, reply) => history(request, reply, undefined),
    'search-type': async (request, reply) => {
      const { type } = fhirOf(request);
      const typeModel = repository.typeModel(type);
      let pairs = request.fhirQuery;
      if (request.method === 'POST') {
        // See: https://hl7.org/fhir/R4/http.html#search (POST _search, form-encoded body)
        if (request.body !== undefined && !(request.body instanceof FormBody)) {
          throw new FhirError(415, 'HEARTH_MEDIA_TYPE', {
            code: 'not-supported',
            diagnostics: 'POST _search takes application/x-www-form-urlencoded parameters',
          });
        }
        pairs = [...pairs, ...((request.body as FormBody | undefined)?.pairs ?? [])];
      }
      const subset = parseSubset(typeModel, pairs);
      const prefer = parsePrefer(request.headers.prefer);
      const search = parseSearch(model, type, pairs, {
        defaultCount: config.search.defaultCount,
        maxCount: config.search.maxCount,
        strict: prefer.handling === 'strict',
        baseUrl: base,
        clock,
      });
      const countOnly = subset.kind === 'summary' && subset.mode === 'count';
      const query = countOnly ? { ...search.query, count: 0, total: 'accurate' as const } : search.query;
      const result = await repository.search({ ...search, query });
      const links: BundleLink[] = [];
      const self = new URLSearchParams(search.linkParams as [string, string][]);
      self.set('_count', String(query.count));
      const url = (p: URLSearchParams) => `${base}/${type}?${p.toString()}`;
      const current = new URLSearchParams(self);
      const raw = pairs.find(([k]) => k === '_cursor');
      if (raw) current.set('_cursor', raw[1]);
      links.push({ relation: 'self', url: url(current) });
      if (!countOnly && result.hasNext && result.matches.length > 0) {
        const last = result.matches[result.matches.length - 1];
        const p = new URLSearchParams(self);
        p.set('_cursor', encodeCursor({ direction: 'next', id: last.id, values: result.keys[result.keys.length - 1] }));
        links.push({ relation: 'next', url: url(p) });
      }
      if (!countOnly && result.hasPrevious && result.matches.length > 0) {
        const p = new URLSearchParams(self);
        p.set('_cursor', encodeCursor({ direction: 'previous', id: result.matches[0].id, values: result.keys[0] }));
        links.push({ relation: 'previous', url: url(p) });
      }
      const bundle = searchsetBundle({
        baseUrl: base,
        matches: result.matches,
        included: result.included,
        links,
        total: result.total,
        warnings: search.ignored,
        shape: (v) => applySubset(typeModel, v.resource ?? {}, subset),
        now: clock(),
        omitEntries: countOnly,
      });
      return sendResource(request, reply, 200, bundle);
    },
  };

  async function history(request: FastifyRequest, reply: FastifyReply, id: string | undefined) {
    const { type } = fhirOf(request);
    const typeModel = repository.typeModel(type);
    onlyParams(request, HISTORY_PARAMS);
    const subset = parseSubset(typeModel, request.fhirQuery);
    const one = (name: string) => {
      const values = request.fhirQuery.filter(([k]) => k === name).map(([, v]) => v);
      if (values.length > 1) throw badRequest('HEARTH_HISTORY_PARAM', `${name} may appear only once`);
      return values[0];
    };
    const countRaw = one('_count');
    if (countRaw !== undefined && !/^[0-9]{1,9}$/.test(countRaw)) {
      throw badRequest('HEARTH_HISTORY_PARAM', `_count must be a non-negative whole number, got "${countRaw}"`);
    }
    const count = Math.min(
      countRaw === undefined ? config.search.defaultCount : Number(countRaw),
      config.search.maxCount,
    );
    const since = one('_since');
    // See: https://hl7.org/fhir/R4/http.html#history (_since is an instant)
    if (since !== undefined && (!/T.*(Z|[+-]\d\d:\d\d)$/.test(since) || !dateRange(since))) {
      throw badRequest(
        'HEARTH_HISTORY_PARAM',
        `_since must be an instant with a time zone, got "${since.slice(0, 40)}"`,
      );
    }
    const cursor = one('_cursor');
    if (cursor !== undefined && !/^[1-9][0-9]{0,15}$/.test(cursor)) {
      throw badRequest('HEARTH_HISTORY_PARAM', '_cursor is not a cursor issued by this server');
    }
    const page = await repository.history(type, id, {
      since: since === undefined ? undefined : new Date(dateRange(since)?.lo ?? 0).toISOString(),
      count,
      after: cursor === undefined ? undefined : Number(cursor),
    });
    const path = `${base}/${type}${id ? `/${id}` : ''}/_history`;
    const params = new URLSearchParams(request.fhirQuery.filter(([k]) => k !== '_cursor'));
    params.set('_count', String(count));
    const links: BundleLink[] = [
      { relation: 'self', url: `${path}?${new URLSearchParams(request.fhirQuery).toString()}` },
    ];
    if (page.next !== undefined) {
      params.set('_cursor', String(page.next));
      links.push({ relation: 'next', url: `${path}?${params.toString()}` });
    }
    const bundle = historyBundle({
      baseUrl: base,
      versions: page.versions,
      links,
      total: page.total,
      shape: (v) => applySubset(typeModel, v.resource ?? {}, subset),
      now: clock(),
    });
    return sendResource(request, reply, 200, bundle);
  }

  function criteria(query: string, type: string, what: string) {
    let pairs: [string, string][];
    try {
      pairs = [...new URLSearchParams(query)];
    } catch {
      throw badRequest('HEARTH_BAD_HEADER', `${what} is not a query string`);
    }
    if (pairs.length === 0) throw badRequest('HEARTH_BAD_HEADER', `${what} has no search criteria`);
    return criteriaFromPairs(pairs, type, what);
  }

  function criteriaFromPairs(pairs: [string, string][], type: string, what: string) {
    const bad = pairs.find(
      ([k]) => k.startsWith('_') && k !== '_id' && k !== '_lastUpdated' && k !== '_tag' && k !== '_profile',
    );
    if (bad) throw badRequest('HEARTH_BAD_CRITERIA', `${what} criteria cannot use ${bad[0]}`);
    return parseSearch(model, type, pairs, {
      defaultCount: 2,
      maxCount: 2,
      strict: true,
      baseUrl: base,
      clock,
    }).query;
  }

  function sendWrite(request: FastifyRequest, reply: FastifyReply, result: WriteResult, ret: string) {
    const v = result.version;
    versionHeaders(reply, v);
    const status = result.outcome === 'created' ? 201 : 200;
    if (result.outcome === 'created') reply.header('location', `${base}/${v.type}/${v.id}/_history/${v.versionId}`);
    // See: https://hl7.org/fhir/R4/http.html#ops (Prefer: return)
    if (ret === 'minimal') return reply.code(status).send();
    if (ret === 'OperationOutcome') {
      const verb = { created: 'created', updated: 'updated', exists: 'already exists as' }[result.outcome];
      return sendResource(
        request,
        reply,
        status,
        operationOutcome([
          {
            code: 'informational',
            severity: 'information',
            diagnostics: `${verb} ${v.type}/${v.id}/_history/${v.versionId}`,
          },
        ]),
      );
    }
    return sendResource(request, reply, status, v.resource);
  }

  const routes: {
    method: RouteOptions['method'];
    url: string;
    interaction: Interaction | 'conditional-update';
    schema?: object;
  }[] = [
    { method: 'GET', url: '', interaction: 'search-type' },
    { method: 'POST', url: '/_search', interaction: 'search-type' },
    { method: 'POST', url: '', interaction: 'create' },
    { method: 'PUT', url: '', interaction: 'conditional-update' },
    { method: 'GET', url: '/_history', interaction: 'history-type' },
    { method: 'GET', url: '/:id', interaction: 'read', schema: idParams },
    { method: 'PUT', url: '/:id', interaction: 'update', schema: idParams },
    { method: 'DELETE', url: '/:id', interaction: 'delete', schema: idParams },
    { method: 'GET', url: '/:id/_history', interaction: 'history-instance', schema: idParams },
    { method: 'GET', url: '/:id/_history/:vid', interaction: 'vread', schema: vidParams },
  ];
  for (const type of model.types.keys()) {
    for (const r of routes) {
      app.route({
        method: r.method,
        url: `/${type}${r.url}`,
        schema: r.schema ? { params: r.schema } : undefined,
        config: { fhir: { type, interaction: r.interaction } },
        handler: handlers[r.interaction],
      });
    }
  }
  app.route({
    method: 'DELETE',
    url: '/:type',
    handler: async (request) => {
      throw new FhirError(405, 'HEARTH_NOT_ALLOWED', {
        code: 'not-supported',
        diagnostics: `conditional delete is not supported for ${(request.params as { type: string }).type}`,
      });
    },
  });

  // One hook decides whether a route's interaction is offered; handlers never check.
  app.addHook('preHandler', async (request) => {
    const fhir = request.routeOptions.config.fhir;
    if (!fhir || fhir.interaction === 'capabilities') return;
    const typeModel = model.types.get(fhir.type);
    const interaction = fhir.interaction === 'conditional-update' ? 'update' : fhir.interaction;
    if (!typeModel?.interactions.has(interaction)) {
      // See: https://hl7.org/fhir/R4/http.html#general (405 for an interaction the type does not support)
      throw new FhirError(405, 'HEARTH_NOT_ALLOWED', {
        code: 'not-supported',
        diagnostics: `${fhir.interaction} is not supported for ${fhir.type}`,
      });
    }
  });
}

function fhirOf(request: FastifyRequest) {
  const fhir = request.routeOptions.config.fhir;
  if (!fhir) throw new Error('route without fhir config');
  return fhir;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  if (Array.isArray(v)) throw badRequest('HEARTH_BAD_HEADER', `${name} may appear only once`);
  return v;
}

function jsonBody(request: FastifyRequest): unknown {
  if (request.body instanceof FormBody) {
    throw new FhirError(415, 'HEARTH_MEDIA_TYPE', {
      code: 'not-supported',
      diagnostics: 'Content-Type must be application/fhir+json or application/json',
    });
  }
  if (request.body === undefined) {
    throw badRequest('HEARTH_NO_BODY', 'a FHIR resource is required in the request body', undefined, 'required');
  }
  return request.body;
}

function onlyParams(request: FastifyRequest, allowed: ReadonlySet<string>) {
  const bad = request.fhirQuery.find(([k]) => !allowed.has(k));
  if (bad) throw badRequest('HEARTH_UNKNOWN_PARAM', `parameter ${bad[0]} is not supported on this interaction`);
}

function versionHeaders(reply: FastifyReply, v: StoredVersion) {
  reply.header('etag', etag(v.versionId));
  reply.header('last-modified', httpDate(v.lastUpdated));
}

function notSupported(what: string, type: string) {
  return new FhirError(405, 'HEARTH_NOT_ALLOWED', {
    code: 'not-supported',
    diagnostics: `${what} is not supported for ${type}`,
  });
}
