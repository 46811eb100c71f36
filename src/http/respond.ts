import type { FastifyReply, FastifyRequest } from 'fastify';

export const FHIR_JSON = 'application/fhir+json';

/**
 * The media ranges of an Accept header the client will take: those weighted above 0.
 * See: https://www.rfc-editor.org/rfc/rfc9110#section-12.4.2 (q=0 means "not acceptable")
 */
export function acceptedRanges(accept: string): string[] {
  return accept
    .split(',')
    .map((range) => range.split(';').map((p) => p.trim()))
    .filter(([, ...params]) => !params.some((p) => /^q=/i.test(p) && !(Number(p.slice(2)) > 0)))
    .map(([type]) => type);
}

/** application/json when the client asked for exactly that, application/fhir+json otherwise. */
export function responseType(request: FastifyRequest): string {
  const accept = acceptedRanges(request.headers.accept ?? '').join(', ');
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
  return reply.send(body === undefined ? '' : JSON.stringify(body, null, request.fhirPretty ? 2 : undefined));
}
