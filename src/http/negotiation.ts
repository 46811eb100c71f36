import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AUTH_PREFIX } from '../authserver/routes.ts';
import { FhirError } from '../fhir/errors.ts';
import { acceptedRanges } from './respond.ts';

const XML = /\b(application\/fhir\+xml|application\/xml|text\/xml|xml)\b/;
const JSON_TYPES = /(\bapplication\/fhir\+json\b|\bapplication\/json\b|\bjson\b|\*\/\*|\bapplication\/\*)/;
const FORMATS: Record<string, string> = {
  json: 'application/fhir+json',
  'application/json': 'application/json',
  'application/fhir+json': 'application/fhir+json',
};

/** Parses the query string into ordered pairs, keeping repeated names. */
export function queryPairs(url: string): [string, string][] {
  const q = url.indexOf('?');
  if (q === -1) return [];
  try {
    return [...new URLSearchParams(url.slice(q + 1))];
  } catch {
    throw new FhirError('HEARTH_BAD_QUERY', { code: 'invalid', diagnostics: 'the query string is malformed' });
  }
}

/**
 * Only JSON is served. `_format` overrides Accept; asking for XML (or anything else only) is 406.
 * See: https://hl7.org/fhir/R4/http.html#mime-type
 */
export function negotiate(request: FastifyRequest): void {
  // See: https://hl7.org/fhir/R4/http.html#parameters (_pretty: true asks for a formatted response)
  const pretty = request.fhirQuery.filter(([k]) => k === '_pretty').map(([, v]) => v);
  if (pretty.length > 1 || (pretty.length === 1 && pretty[0] !== 'true' && pretty[0] !== 'false')) {
    throw new FhirError('HEARTH_BAD_QUERY', { code: 'invalid', diagnostics: '_pretty must appear at most once, as true or false', expression: '_pretty' });
  }
  request.fhirPretty = pretty[0] === 'true';
  const formats = request.fhirQuery.filter(([k]) => k === '_format').map(([, v]) => v);
  if (formats.length > 1) throw notAcceptable('_format may appear only once');
  if (formats.length === 1) {
    const format = FORMATS[formats[0].split(';')[0].trim()];
    if (!format)
      throw notAcceptable(`_format "${formats[0].slice(0, 40)}" is not supported; this server speaks JSON only`);
    request.fhirFormat = format;
    return;
  }
  const accept = request.headers.accept;
  if (!accept) return;
  if (!acceptsJson(accept)) {
    throw notAcceptable(
      XML.test(accept)
        ? 'XML is not supported; ask for application/fhir+json'
        : 'Accept must allow application/fhir+json',
    );
  }
}

/** Whether JSON matches a media range of Accept weighted above 0. */
const acceptsJson = (accept: string) => acceptedRanges(accept).some((type) => JSON_TYPES.test(type));

function notAcceptable(diagnostics: string): FhirError {
  return new FhirError('HEARTH_NOT_ACCEPTABLE', { code: 'not-supported', diagnostics });
}

/**
 * Every request, public or protected: its request id echoed, its query string as ordered pairs,
 * and the response format it may have (406 otherwise), before anything else looks at it.
 */
export const negotiationPlugin = fp(
  async (app: FastifyInstance) => {
    app.decorateRequest('fhirQuery', null as unknown as [string, string][]);
    app.decorateRequest('fhirFormat', undefined);
    app.decorateRequest('fhirPretty', false);
    app.addHook('onRequest', async (request, reply) => {
      reply.header('x-request-id', request.id);
      request.fhirQuery = queryPairs(request.url);
      // The authorization server's endpoints speak OAuth (JSON, forms, HTML pages), not FHIR.
      if (request.url === AUTH_PREFIX || request.url.startsWith(`${AUTH_PREFIX}/`) || request.url.startsWith(`${AUTH_PREFIX}?`)) return;
      negotiate(request);
    });
  },
  { name: 'hearth-negotiation' },
);
