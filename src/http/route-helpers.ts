import type { AuditEvent } from 'fhir/r4.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { disclosureView } from '../audit/disclosure.ts';
import type { Access } from '../auth/authorize.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { badRequest, FhirError } from '../fhir/errors.ts';
import type { FhirRepository } from '../rest/repository.ts';
import type { ParsedSearch } from '../fhir/search-parser.ts';
import { applySubset, type Subset } from '../fhir/subsetting.ts';
import type { Clause, StoredVersion } from '../fhir/query.ts';
import { FormBody } from './body-parsers.ts';
import { etag, httpDate } from './headers.ts';

type Json = Record<string, unknown>;

export const READ_PARAMS: ReadonlySet<string> = new Set(['_format', '_pretty', '_elements', '_summary']);

export function fhirOf(request: FastifyRequest) {
  const fhir = request.routeOptions.config.fhir;
  if (!fhir) throw new Error('route without fhir config');
  return fhir;
}

export function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  if (Array.isArray(v)) throw badRequest('HEARTH_BAD_HEADER', `${name} may appear only once`);
  return v;
}

export function jsonBody(request: FastifyRequest): unknown {
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

export function onlyParams(request: FastifyRequest, allowed: ReadonlySet<string>) {
  const bad = request.fhirQuery.find(([k]) => !allowed.has(k));
  if (bad) throw badRequest('HEARTH_UNKNOWN_PARAM', `parameter ${bad[0]} is not supported on this interaction`);
}

export function versionHeaders(reply: FastifyReply, v: StoredVersion) {
  reply.header('etag', etag(v.versionId));
  reply.header('last-modified', httpDate(v.lastUpdated));
}

export function notSupported(what: string, type: string) {
  return new FhirError(405, 'HEARTH_NOT_ALLOWED', {
    code: 'not-supported',
    diagnostics: `${what} is not supported for ${type}`,
  });
}

/**
 * What the token may see of a resource: a patient's view of an AuditEvent (its accounting of
 * disclosures), then the client's subset, then the role's element mask, which `_elements` can
 * only narrow.
 */
export function shaper(repository: FhirRepository, request: FastifyRequest, type: string, subset: Subset) {
  const typeModel = repository.typeModel(type);
  const mask = request.access.mask(type);
  const disclosure = request.access.disclosureFor(type);
  return (v: StoredVersion) => {
    const resource: unknown = v.resource ?? {};
    const visible = (disclosure && v.resource ? disclosureView(resource as AuditEvent, disclosure) : resource) as Json;
    const shaped = applySubset(typeModel, visible, subset);
    return mask ? applySubset(typeModel, shaped, { kind: 'elements', names: mask }) : shaped;
  };
}

/**
 * What a token may not see it may not search, sort or include on either, so that a hidden element
 * cannot be inferred through filters (billing cannot search value-quantity; a patient cannot
 * filter its accounting of disclosures by address or token).
 */
export function checkMaskedParams(access: Access, model: FhirModel, search: ParsedSearch): void {
  const check = (type: string, code: string) => {
    if (access.searchable(type, code)) return;
    const def = model.types.get(type)?.params.get(code.split(/[:$.]/)[0]);
    const mask = access.mask(type);
    const hidden = mask ? (def?.elements ?? []).find((e) => e !== 'id' && e !== 'meta' && !mask.has(e)) : undefined;
    throw new FhirError(403, 'HEARTH_MASKED_PARAMETER', {
      code: 'forbidden',
      diagnostics: hidden
        ? `search parameter ${code} reads ${type}.${hidden}, which this role may not see`
        : `search parameter ${code} reads ${type} elements that this token's view leaves out`,
    });
  };
  const walk = (type: string, c: Clause): void => {
    switch (c.kind) {
      case 'exists':
      case 'composite':
        return check(type, c.param);
      case 'chain':
        check(type, c.param);
        for (const w of c.where) walk(c.targetType, w);
        return;
      case 'or':
        for (const w of c.any) walk(type, w);
        return;
      case 'and':
        for (const w of c.all) walk(type, w);
        return;
      case 'not':
        return walk(type, c.clause);
    }
  };
  for (const c of search.query.where) walk(search.query.type, c);
  for (const k of search.query.sort) check(search.query.type, k.param);
  for (const i of search.includes) check(i.sourceType, i.param);
  for (const i of search.revIncludes) check(i.sourceType, i.param);
}
