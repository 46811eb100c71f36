import type { FastifyRequest } from 'fastify';
import { badRequest, FhirError } from '../fhir/errors.ts';
import { FormBody } from './body-parsers.ts';

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
    throw new FhirError('HEARTH_MEDIA_TYPE', {
      code: 'not-supported',
      diagnostics: 'Content-Type must be application/fhir+json or application/json',
    });
  }
  if (request.body === undefined) {
    throw badRequest('HEARTH_NO_BODY', 'a FHIR resource is required in the request body', undefined, 'required');
  }
  return request.body;
}
