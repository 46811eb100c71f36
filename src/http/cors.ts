import fastifyCors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import { FhirError } from '../fhir/errors.ts';

// What a SMART app in a browser sends and needs to read back.
// See: https://hl7.org/fhir/smart-app-launch/app-launch.html (apps call the FHIR API with a bearer token)
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'];
const REQUEST_HEADERS = ['Authorization', 'Content-Type', 'Accept', 'If-Match', 'If-None-Match', 'If-None-Exist', 'If-Modified-Since', 'Prefer', 'X-Request-Id'];
const RESPONSE_HEADERS = ['Location', 'Content-Location', 'ETag', 'Last-Modified', 'X-Request-Id', 'WWW-Authenticate', 'Retry-After'];

/**
 * CORS for SMART apps in a browser: origins on the allow-list (HEARTH_CORS_ORIGINS, none by
 * default) may call the API and its discovery documents; their preflights are answered with the
 * methods and headers those apps send. A preflight from any other origin is refused with a 403
 * OperationOutcome naming the origin; a cross-origin request from it gets no CORS headers, so the
 * browser withholds the response from the page. No credentials mode: tokens travel in
 * `Authorization`, never in cookies.
 */
export async function registerCors(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  const allowed = new Set(origins);
  app.addHook('onRequest', async (request) => {
    const origin = request.headers.origin;
    if (request.method !== 'OPTIONS' || origin === undefined || allowed.has(origin)) return;
    if (request.headers['access-control-request-method'] === undefined) return;
    throw new FhirError('HEARTH_FORBIDDEN', {
      code: 'forbidden',
      diagnostics: `origin ${origin.slice(0, 200)} may not call this server from a browser (HEARTH_CORS_ORIGINS)`,
    });
  });
  await app.register(fastifyCors, {
    origin: (origin, cb) => cb(null, origin !== undefined && allowed.has(origin)),
    methods: METHODS,
    allowedHeaders: REQUEST_HEADERS,
    exposedHeaders: RESPONSE_HEADERS,
    maxAge: 600,
    // A preflight without its headers is answered as no preflight (404 OperationOutcome), not
    // with the plugin's plain-text 400.
    strictPreflight: false,
  });
}
