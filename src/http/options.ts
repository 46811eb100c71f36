import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FhirModel } from '../fhir/definitions.ts';
import { allowedMethods, routeShape } from '../rest/routes.ts';

/**
 * OPTIONS that is not a CORS preflight: which methods the URL offers (RFC 9110 §9.3.7), in
 * `Allow`, with no body and no CORS headers beyond what the origin is allowed anyway. FHIR R4
 * defines no OPTIONS interaction (the capability statement is GET [base]/metadata), so this is the
 * HTTP answer, the same for every caller and revealing nothing but what /metadata publishes. A URL
 * that is no FHIR URL goes on to the 404.
 */
export function answerOptions(model: FhirModel) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.method !== 'OPTIONS' || request.headers['access-control-request-method'] !== undefined) return;
    const path = request.url.split('?')[0].replace(/\/+$/, '');
    let methods: string[] | undefined;
    if (path === '/fhir') methods = ['POST']; // a batch (rest/bundle.ts)
    else if (path === '/fhir/metadata') methods = ['GET', 'HEAD'];
    else if (path.startsWith('/fhir/')) {
      const shape = routeShape(model, path.slice('/fhir'.length));
      if (shape) methods = allowedMethods(model, shape.type, shape.url);
    }
    if (methods === undefined) return;
    await reply.code(204).header('allow', [...methods, 'OPTIONS'].join(', ')).send();
  };
}
