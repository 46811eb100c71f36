import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { Config } from '../config/config.ts';
import type { FhirModel, Interaction } from '../fhir/definitions.ts';
import { badRequest, FhirError, notFound, operationOutcome } from '../fhir/errors.ts';
import type { FhirRepository } from '../rest/repository.ts';
import { parseSearch } from '../fhir/search-parser.ts';
import { parseSubset } from '../fhir/subsetting.ts';
import type { SearchQuery } from '../fhir/query.ts';
import type { WriteResult } from '../store/resource-store.ts';
import type { AuditStore } from '../audit/audit-store.ts';
import { noteRef, noteVersion } from './audit-hook.ts';
import { registerReportRoute } from './audit-report-route.ts';
import { etag, parseIfMatch, parsePrefer } from './headers.ts';
import { sendResource } from './respond.ts';
import {
  checkMaskedParams,
  fhirOf,
  header,
  jsonBody,
  notSupported,
  onlyParams,
  READ_PARAMS,
  shaper,
  versionHeaders,
} from './route-helpers.ts';
import { history, searchType } from './search-routes.ts';

export interface FhirRoutesOptions {
  readonly auditStore: AuditStore;
  readonly config: Config;
  readonly model: FhirModel;
  readonly repository: FhirRepository;
  readonly clock: () => Date;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' } as const;
const VID = { type: 'string', pattern: '^[1-9][0-9]{0,9}$' } as const;
const ID_PARAMS = { type: 'object', properties: { id: ID }, required: ['id'] };
const VID_PARAMS = { type: 'object', properties: { id: ID, vid: VID }, required: ['id', 'vid'] };

type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;
type RouteInteraction = Interaction | 'conditional-update';

// See: https://hl7.org/fhir/R4/http.html (the RESTful interactions and their URLs)
const ROUTES: { method: RouteOptions['method']; url: string; interaction: RouteInteraction; params?: object }[] = [
  { method: 'GET', url: '', interaction: 'search-type' },
  { method: 'POST', url: '/_search', interaction: 'search-type' },
  { method: 'POST', url: '', interaction: 'create' },
  { method: 'PUT', url: '', interaction: 'conditional-update' },
  { method: 'GET', url: '/_history', interaction: 'history-type' },
  { method: 'GET', url: '/:id', interaction: 'read', params: ID_PARAMS },
  { method: 'PUT', url: '/:id', interaction: 'update', params: ID_PARAMS },
  { method: 'DELETE', url: '/:id', interaction: 'delete', params: ID_PARAMS },
  { method: 'GET', url: '/:id/_history', interaction: 'history-instance', params: ID_PARAMS },
  { method: 'GET', url: '/:id/_history/:vid', interaction: 'vread', params: VID_PARAMS },
];

/**
 * The protected FHIR API: every interaction of every type in capability-statement.json, each
 * route saying what it is (`config.fhir`), from which the one decision (./authorization.ts)
 * decides whether it is offered (405) and whether the token may do it (403) before any handler
 * or store access.
 */
export async function fhirRoutes(app: FastifyInstance, opts: FhirRoutesOptions): Promise<void> {
  const { config, model, repository, clock, auditStore } = opts;
  const base = config.baseUrl;
  const ctx = { config, model, repository, clock };

  const handlers: Record<RouteInteraction, Handler> = {
    read: async (request, reply) => {
      const { id } = request.params as { id: string };
      const { type } = fhirOf(request);
      const subset = parseSubset(repository.typeModel(type), request.fhirQuery);
      onlyParams(request, READ_PARAMS);
      const v = await repository.read(type, id, request.access);
      noteVersion(request, v);
      versionHeaders(reply, v);
      return sendResource(request, reply, 200, shaper(repository, request, type, subset)(v));
    },
    vread: async (request, reply) => {
      const { id, vid } = request.params as { id: string; vid: string };
      const { type } = fhirOf(request);
      const subset = parseSubset(repository.typeModel(type), request.fhirQuery);
      onlyParams(request, READ_PARAMS);
      const v = await repository.vread(type, id, Number(vid), request.access);
      noteVersion(request, v);
      versionHeaders(reply, v);
      return sendResource(request, reply, 200, shaper(repository, request, type, subset)(v));
    },
    create: async (request, reply) => {
      const { type } = fhirOf(request);
      const prefer = parsePrefer(request.headers.prefer);
      onlyParams(request, READ_PARAMS);
      const body = jsonBody(request);
      const ifNoneExist = header(request, 'if-none-exist');
      let condition: SearchQuery | undefined;
      if (ifNoneExist !== undefined) {
        // See: https://hl7.org/fhir/R4/http.html#ccreate
        if (!repository.typeModel(type).conditionalCreate) throw notSupported('conditional create', type);
        condition = criteria(request, queryOf(ifNoneExist), type, 'If-None-Exist');
      }
      const result = await repository.create(type, body, request.access, condition);
      return sendWrite(request, reply, result, prefer.return);
    },
    update: async (request, reply) => {
      const { id } = request.params as { id: string };
      const { type } = fhirOf(request);
      const prefer = parsePrefer(request.headers.prefer);
      onlyParams(request, READ_PARAMS);
      const ifMatch = parseIfMatch(header(request, 'if-match'));
      const body = jsonBody(request);
      const options = { ifMatch, allowCreate: config.updateCreate };
      const result = await repository.update(type, { id }, body, options, request.access);
      return sendWrite(request, reply, result, prefer.return);
    },
    'conditional-update': async (request, reply) => {
      const { type } = fhirOf(request);
      // See: https://hl7.org/fhir/R4/http.html#cond-update
      if (!repository.typeModel(type).conditionalUpdate) throw notSupported('conditional update', type);
      const prefer = parsePrefer(request.headers.prefer);
      const ifMatch = parseIfMatch(header(request, 'if-match'));
      const pairs = request.fhirQuery.filter(([k]) => !READ_PARAMS.has(k));
      if (pairs.length === 0) throw badRequest('HEARTH_NO_CRITERIA', 'conditional update needs search criteria in the URL');
      const query = criteriaFromPairs(request, pairs, type, 'conditional update');
      const body = jsonBody(request);
      const result = await repository.update(type, { query }, body, { ifMatch, allowCreate: true }, request.access);
      return sendWrite(request, reply, result, prefer.return);
    },
    delete: async (request, reply) => {
      const { id } = request.params as { id: string };
      const { type } = fhirOf(request);
      onlyParams(request, new Set());
      const ifMatch = parseIfMatch(header(request, 'if-match'));
      if (ifMatch !== undefined && (await repository.read(type, id, request.access)).versionId !== ifMatch) {
        throw new FhirError(412, 'HEARTH_VERSION_CONFLICT', {
          code: 'conflict',
          diagnostics: `If-Match version ${ifMatch} is not the current version of ${type}/${id}`,
        });
      }
      // See: https://hl7.org/fhir/R4/http.html#delete (deleting an already deleted resource succeeds)
      const tombstone = await repository.delete(type, id, request.access);
      const latest = tombstone ?? (await repository.latest(type, id, request.access));
      if (!latest) throw notFound(`${type}/${id} does not exist`);
      if (tombstone) {
        // Before and after, as references; the version before names the patients touched.
        const before = await repository.vread(type, id, tombstone.versionId - 1, request.access).catch(() => undefined);
        if (before) noteVersion(request, before, 'before');
        noteRef(request, `${type}/${id}/_history/${tombstone.versionId}`, 'after');
      }
      reply.header('etag', etag(latest.versionId));
      return reply.code(204).send();
    },
    'history-instance': async (request, reply) => history(ctx, request, reply, (request.params as { id: string }).id),
    'history-type': async (request, reply) => history(ctx, request, reply, undefined),
    'search-type': async (request, reply) => searchType(ctx, request, reply),
  };

  function criteria(request: FastifyRequest, query: string, type: string, what: string): SearchQuery {
    const pairs = [...new URLSearchParams(query)];
    if (pairs.length === 0) throw badRequest('HEARTH_BAD_HEADER', `${what} has no search criteria`);
    return criteriaFromPairs(request, pairs, type, what);
  }

  function criteriaFromPairs(request: FastifyRequest, pairs: [string, string][], type: string, what: string): SearchQuery {
    const bad = pairs.find(([k]) => k.startsWith('_') && !['_id', '_lastUpdated', '_tag', '_profile'].includes(k));
    if (bad) throw badRequest('HEARTH_BAD_CRITERIA', `${what} criteria cannot use ${bad[0]}`);
    const search = parseSearch(model, type, pairs, { defaultCount: 2, maxCount: 2, strict: true, baseUrl: base, clock });
    checkMaskedParams(request.access, model, search);
    return search.query;
  }

  function sendWrite(request: FastifyRequest, reply: FastifyReply, result: WriteResult, ret: string) {
    const v = result.version;
    if (result.outcome === 'exists') noteVersion(request, v);
    else {
      if (v.versionId > 1) noteRef(request, `${v.type}/${v.id}/_history/${v.versionId - 1}`, 'before');
      noteVersion(request, v, 'after');
    }
    versionHeaders(reply, v);
    const status = result.outcome === 'created' ? 201 : 200;
    if (result.outcome === 'created') reply.header('location', `${base}/${v.type}/${v.id}/_history/${v.versionId}`);
    // See: https://hl7.org/fhir/R4/http.html#ops (Prefer: return)
    if (ret === 'minimal') return reply.code(status).send();
    if (ret === 'OperationOutcome') {
      const verb = { created: 'created', updated: 'updated', exists: 'already exists as' }[result.outcome];
      const diagnostics = `${verb} ${v.type}/${v.id}/_history/${v.versionId}`;
      return sendResource(request, reply, status, operationOutcome([{ code: 'informational', severity: 'information', diagnostics }]));
    }
    return sendResource(request, reply, status, shaper(repository, request, v.type, { kind: 'none' })(v));
  }

  for (const type of model.types.keys()) {
    for (const r of ROUTES) {
      app.route({
        method: r.method,
        url: `/${type}${r.url}`,
        schema: r.params ? { params: r.params } : undefined,
        config: { fhir: { type, interaction: r.interaction } },
        handler: handlers[r.interaction],
      });
    }
  }
  registerReportRoute(app, auditStore);
  // See: https://hl7.org/fhir/R4/http.html#cdelete (not offered: a 405 from the same decision path)
  for (const type of model.types.keys()) {
    app.route({
      method: 'DELETE',
      url: `/${type}`,
      config: { fhir: { type, interaction: 'conditional-delete' } },
      handler: async () => {
        throw notSupported('conditional delete', type);
      },
    });
  }
}

/** `If-None-Exist: Patient?identifier=x` or `identifier=x` → the query part. */
function queryOf(value: string): string {
  const q = value.indexOf('?');
  return q === -1 ? value : value.slice(q + 1);
}
