import type { FastifyContextConfig, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { AuditStore } from '../audit/audit-store.ts';
import type { Config } from '../config/config.ts';
import type { FhirModel, Interaction } from '../fhir/definitions.ts';
import { FhirError } from '../fhir/errors.ts';
import { INTERACTIONS } from '../rest/interactions.ts';
import { notSupported } from '../rest/params.ts';
import type { FhirRepository } from '../rest/repository.ts';
import type { HeaderName, RestContext, RestRequest, RestResult } from '../rest/request.ts';
import { FormBody } from './body-parsers.ts';
import { sendResource } from './respond.ts';
import { fhirOf, header, jsonBody } from './route-helpers.ts';

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

type RouteInteraction = NonNullable<FastifyContextConfig['fhir']>['interaction'];

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
  // See: https://hl7.org/fhir/R4/http.html#cdelete (not offered: a 405 from the same decision path)
  { method: 'DELETE', url: '', interaction: 'conditional-delete' },
  // See: https://hl7.org/fhir/R4/http.html#patch (not offered), and methods no FHIR interaction has
  // at these URLs: 405 with Allow, from the same decision path.
  { method: 'PATCH', url: '', interaction: 'patch' },
  { method: 'PATCH', url: '/:id', interaction: 'patch', params: ID_PARAMS },
  { method: 'POST', url: '/:id', interaction: 'method-not-allowed', params: ID_PARAMS },
];

/** What a type offers at one of its URLs: the methods of its offered interactions there (HEAD with GET). */
export function allowedMethods(model: FhirModel, type: string, url: string): string[] {
  const offered = model.types.get(type)?.interactions;
  const methods = ROUTES.filter((r) => r.url === url && isOffered(offered, r.interaction)).map((r) => String(r.method));
  if (methods.includes('GET')) methods.splice(methods.indexOf('GET') + 1, 0, 'HEAD');
  return methods;
}

/** Whether the type offers the interaction (a conditional update is an update; some never are). */
export function isOffered(offered: ReadonlySet<string> | undefined, interaction: RouteInteraction): interaction is Interaction | 'conditional-update' {
  if (interaction === 'capabilities' || interaction === 'conditional-delete' || interaction === 'patch' || interaction === 'method-not-allowed') return false;
  return offered?.has(interaction === 'conditional-update' ? 'update' : interaction) ?? false;
}

/** The FHIR URL shape of a path under the base (`/Patient/123` → Patient, `/:id`), for OPTIONS. */
export function routeShape(model: FhirModel, path: string): { type: string; url: string } | undefined {
  const m = /^\/([A-Za-z]+)(\/.*)?$/.exec(path);
  if (!m || !model.types.has(m[1])) return undefined;
  const rest = m[2] ?? '';
  const id = '[A-Za-z0-9\\-.]{1,64}';
  const shapes: [RegExp, string][] = [
    [/^$/, ''],
    [/^\/_search$/, '/_search'],
    [/^\/_history$/, '/_history'],
    [new RegExp(`^/${id}$`), '/:id'],
    [new RegExp(`^/${id}/_history$`), '/:id/_history'],
    [new RegExp(`^/${id}/_history/[1-9][0-9]{0,9}$`), '/:id/_history/:vid'],
  ];
  const shape = shapes.find(([re]) => re.test(rest));
  return shape ? { type: m[1], url: shape[1] } : undefined;
}

/**
 * The protected FHIR API: every interaction of every type in capability-statement.json, each
 * route saying what it is (`config.fhir`), from which the one decision (./authorization.ts)
 * decides whether it is offered (405) and whether the token may do it (403) before any handler
 * or store access. Handlers only translate: HTTP in, an interaction of rest/, HTTP out.
 */
export async function fhirRoutes(app: FastifyInstance, opts: FhirRoutesOptions): Promise<void> {
  const { config, model, repository, clock, auditStore } = opts;
  const ctx: RestContext = {
    baseUrl: config.baseUrl,
    model,
    repository,
    auditStore,
    search: config.search,
    updateCreate: config.updateCreate,
    clock,
  };
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const fhir = fhirOf(request);
    const interaction = INTERACTIONS[fhir.operation ?? fhir.interaction];
    if (!interaction) throw notSupported(fhir.operation ?? fhir.interaction, fhir.type);
    return send(request, reply, await interaction(ctx, restRequest(request)));
  };
  for (const type of model.types.keys()) {
    for (const r of ROUTES) {
      app.route({
        method: r.method,
        url: `/${type}${r.url}`,
        schema: r.params ? { params: r.params } : undefined,
        config: { fhir: { type, interaction: r.interaction, allow: allowedMethods(model, type, r.url).join(', ') } },
        handler,
      });
    }
  }
  app.get('/AuditEvent/$report', { config: { fhir: { type: 'AuditEvent', interaction: 'search-type', operation: '$report' } } }, handler);
}

function restRequest(request: FastifyRequest): RestRequest {
  const params = (request.params ?? {}) as { id?: string; vid?: string };
  return {
    type: fhirOf(request).type,
    id: params.id,
    vid: params.vid,
    query: request.fhirQuery,
    body: () => jsonBody(request),
    form: () => {
      if (request.method !== 'POST') return [];
      if (request.body !== undefined && !(request.body instanceof FormBody)) {
        throw new FhirError('HEARTH_MEDIA_TYPE', {
          code: 'not-supported',
          diagnostics: 'POST _search takes application/x-www-form-urlencoded parameters',
        });
      }
      return (request.body as FormBody | undefined)?.pairs ?? [];
    },
    header: (name: HeaderName) => {
      // Prefer may be sent as several headers (RFC 7240): they are read as one list.
      if (name === 'prefer') {
        const v = request.headers.prefer;
        return Array.isArray(v) ? v.join(',') : v;
      }
      return header(request, name);
    },
    access: request.access,
    audit: request.auditNotes,
    // Write-ahead audit: a write's attempt is durable before its data commits (FhirRepository).
    writeAhead: { id: request.id, record: () => request.auditAttempt() },
  };
}

const etag = (versionId: number) => `W/"${versionId}"`;
const httpDate = (iso: string) => new Date(iso).toUTCString();

function send(request: FastifyRequest, reply: FastifyReply, result: RestResult): FastifyReply {
  if (result.etag !== undefined) reply.header('etag', etag(result.etag));
  if (result.lastModified !== undefined) reply.header('last-modified', httpDate(result.lastModified));
  if (result.location !== undefined) reply.header('location', result.location);
  if (result.text) return reply.code(result.status).header('content-type', result.text.contentType).send(result.text.body);
  if (result.resource === undefined) return reply.code(result.status).send();
  return sendResource(request, reply, result.status, result.resource);
}
