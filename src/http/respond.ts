import type { FastifyReply, FastifyRequest } from 'fastify';

export const FHIR_JSON = 'application/fhir+json';

/** application/json when the client asked for exactly that, application/fhir+json otherwise. */
export function responseType(request: FastifyRequest): string {
  const accept = request.headers.accept ?? '';
  const format = request.fhirFormat;
  if (format === 'application/json' || (!accept.includes(FHIR_JSON) && /\bapplication\/json\b/.test(accept))) {
    return 'application/json; charset=utf-8';
  }
  return `${FHIR_JSON}; charset=utf-8`;
}

export function sendResource(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  body: unknown,
): FastifyReply {
  reply.code(status).header('content-type', responseType(request));
  return reply.send(body === undefined ? '' : JSON.stringify(body));
}
