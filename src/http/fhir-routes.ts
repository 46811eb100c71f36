import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { AuditStore } from '../audit/audit-store.ts';
import type { Policy } from '../auth/authorize.ts';
import type { Config } from '../config/config.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { FhirError } from '../fhir/errors.ts';
import { INTERACTIONS } from '../rest/interactions.ts';
import { notSupported } from '../rest/params.ts';
import type { FhirRepository } from '../rest/repository.ts';
import type { HeaderName, RestContext, RestRequest, RestResult } from '../rest/request.ts';
import { allowedMethods, TYPE_ROUTES } from '../rest/routes.ts';
import { FormBody } from './body-parsers.ts';
import { sendResource } from './respond.ts';
import { fhirOf, header, jsonBody } from './route-helpers.ts';

export interface FhirRoutesOptions {
  readonly auditStore: AuditStore;
  readonly config: Config;
  readonly model: FhirModel;
  readonly repository: FhirRepository;
  readonly clock: () => Date;
  readonly policy: Policy;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' } as const;
const VID = { type: 'string', pattern: '^[1-9][0-9]{0,9}$' } as const;
const ID_PARAMS = { type: 'object', properties: { id: ID }, required: ['id'] };
const VID_PARAMS = { type: 'object', properties: { id: ID, vid: VID }, required: ['id', 'vid'] };

/**
 * The protected FHIR API: every interaction of every type in capability-statement.json, each
 * route saying what it is (`config.fhir`), from which the one decision (./authorization.ts)
 * decides whether it is offered (405) and whether the token may do it (403) before any handler
 * or store access. Handlers only translate: HTTP in, an interaction of rest/, HTTP out.
 */
export async function fhirRoutes(app: FastifyInstance, opts: FhirRoutesOptions): Promise<void> {
  const { config, model, repository, clock, auditStore, policy } = opts;
  const ctx: RestContext = {
    baseUrl: config.baseUrl,
    model,
    repository,
    auditStore,
    search: config.search,
    updateCreate: config.updateCreate,
    clock,
    policy,
    bundles: config.bundles,
  };
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const fhir = fhirOf(request);
    const interaction = INTERACTIONS[fhir.operation ?? fhir.interaction];
    if (!interaction) throw notSupported(fhir.operation ?? fhir.interaction, fhir.type);
    return send(request, reply, await interaction(ctx, restRequest(request)));
  };
  for (const type of model.types.keys()) {
    for (const r of TYPE_ROUTES) {
      const params = r.withVid ? VID_PARAMS : r.withId ? ID_PARAMS : undefined;
      app.route({
        method: r.method as RouteOptions['method'],
        url: `/${type}${r.url}`,
        schema: params ? { params } : undefined,
        config: { fhir: { type, interaction: r.interaction, allow: allowedMethods(model, type, r.url).join(', ') } },
        handler,
      });
    }
  }
  // See: https://hl7.org/fhir/R4/http.html#transaction (POST [base], with or without the slash)
  app.post('/', { bodyLimit: config.bundles.bodyLimit, config: { fhir: { type: 'Bundle', interaction: 'bundle' } } }, handler);
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
    entries: request.entryAudit ?? undefined,
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
