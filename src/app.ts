import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { v7 as uuidv7 } from 'uuid';
import { interactionRoutes } from './authserver/interactions.ts';
import { authServerRoutes } from './authserver/routes.ts';
import { createServices, type ServiceDeps } from './compose.ts';
import type { Config } from './config/config.ts';
import { FhirError } from './fhir/errors.ts';
import { auditPlugin, RefusalAudit, withheld } from './http/audit-hook.ts';
import { authenticationPlugin, authorizationPlugin } from './http/authorization.ts';
import { registerBodyParsers } from './http/body-parsers.ts';
import { answerClientError, limitConnectionsPerAddress } from './http/connections.ts';
import { registerCors } from './http/cors.ts';
import { errorHandler, toFhirError } from './http/error-handler.ts';
import { fhirRoutes } from './http/fhir-routes.ts';
import { loggerOptions } from './http/logger.ts';
import { negotiationPlugin } from './http/negotiation.ts';
import { operationsRoutes } from './http/operations-routes.ts';
import { answerOptions } from './http/options.ts';
import { publicRoutes } from './http/public-routes.ts';
import { registerRateLimit } from './http/rate-limit.ts';
import { tlsMaterial } from './http/tls.ts';
import { applySecurityHeaders, registerSecurityHeaders, securityHeadersOnRaw } from './http/security-headers.ts';

const FIRST_START = {
  keyring:
    'created the keyring (the keys that encrypt the data at rest): back it up now, apart from the data backups — without it the data cannot be read, and with the data it reads it',
  signingKey:
    'created the audit signing key: back it up apart from the data, and keep it off the data volume (HEARTH_AUDIT_SIGNING_KEY), so that whoever can change the data cannot re-sign the audit log',
};

export interface AppDeps extends ServiceDeps {
  /** A pino-compatible logger instance for tests that read the log. */
  readonly loggerInstance?: import('fastify').FastifyBaseLogger;
}

/** Builds the application over the services of the composition root; never listens (server.ts does). */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  // Keys made on first start, to be named in the log once the logger exists.
  const keyFiles: [string, string][] = [[config.audit.signingKey, FIRST_START.signingKey]];
  if (config.keyring.kind === 'file') keyFiles.unshift([config.keyring.path, FIRST_START.keyring]);
  const absent = keyFiles.filter(([path]) => !existsSync(path));
  const services = await createServices(config, deps);
  // Before any request: what a crash left between a write-ahead attempt and its outcome.
  const recovered = await services.recover();
  const { clock, model, sink, verifier, policy, repository, storage } = services;
  const refusals = new RefusalAudit({ sink, config, clock, verifier });
  // A refusal no route's hooks see (Fastify's own, a path outside the API): an OperationOutcome,
  // audited when it carries a token; a 503 instead if that audit cannot be written.
  const refuseUnrouted = async (error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const e = toFhirError(error);
    reply.header('x-request-id', request.id);
    if (!request.routeOptions.url) applySecurityHeaders(reply);
    try {
      await refusals.record(request, e.status, e.issues[0]?.code);
      errorHandler(e, request, reply);
    } catch (err) {
      void reply.send(withheld(request, reply, err));
    }
  };

  const tls = await tlsMaterial(config);
  // Slow and idle clients are cut off (a slow-header client gets 408 once headersMs passes; Node
  // looks at open connections every connectionsCheckingInterval, 30 s unless told).
  const serverOptions = {
    headersTimeout: config.timeouts.headersMs,
    connectionsCheckingInterval: Math.min(1000, config.timeouts.headersMs),
  };
  const { cert, key, minVersion, ciphers, honorCipherOrder } = tls ?? {};
  const transport = tls ? { https: { ...serverOptions, cert, key, minVersion, ciphers, honorCipherOrder } } : { http: serverOptions };
  // (Typed as the HTTP variant: Fastify picks https.createServer at run time when `https` is set.)
  const app = Fastify({
    ...(transport as { http: typeof serverOptions }),
    trustProxy: config.trustedProxies.length > 0 ? [...config.trustedProxies] : false,
    ...(deps.loggerInstance ? { loggerInstance: deps.loggerInstance } : { logger: loggerOptions(config) }),
    bodyLimit: config.bodyLimit,
    // Time-ordered (RFC 9562 version 7: milliseconds, then a counter and random bits): a request id
    // is the id of its AuditEvent, so the audit log's id index and the searchable copy's versions
    // grow at their end instead of taking a random page each (the log's table alone at 1,000,000
    // events: a commit of five wrote 41 KiB to the WAL with random ids, 21 KiB with these; see
    // docs/performance.md). Resource ids stay random:
    // one that told when a record was made would carry a date about a patient into every reference.
    genReqId: () => uuidv7(),
    requestIdHeader: false,
    // Requests already on an open connection when shutdown begins are served (and audited), not
    // refused by Fastify with a bare 503 outside every hook; new connections are no longer accepted.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    requestTimeout: config.timeouts.requestMs,
    keepAliveTimeout: config.timeouts.keepAliveMs,
    connectionTimeout: config.timeouts.idleMs,
    frameworkErrors: (error, request, reply) => void refuseUnrouted(error, request, reply),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    schemaErrorFormatter: (errors, context) => {
      const e = errors[0];
      const where = e?.instancePath?.replace(/^\//, '') ?? '';
      const what = where === 'id' ? 'resource id' : where === 'vid' ? 'version id' : `${context} ${where}`;
      const rule =
        where === 'id' ? ' (1-64 letters, digits, "-" or ".")' : where === 'vid' ? ' (a positive whole number)' : '';
      return new FhirError('HEARTH_BAD_REQUEST', { code: 'invalid', diagnostics: `invalid ${what}${rule}` });
    },
  });
  limitConnectionsPerAddress(app.server, config.maxConnectionsPerAddress);
  // Every route the server registers, as Fastify saw it: what the route-by-token policy test walks.
  const routes: FastifyInstance['registeredRoutes'][number][] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url, fhir: r.config?.fhir });
  });
  app.decorate('registeredRoutes', routes);
  app.decorate('auditProgress', services.auditProgress);
  app.decorateRequest('auditIssue', undefined);
  registerSecurityHeaders(app);
  await app.register(negotiationPlugin);
  app.addHook('onClose', async () => {
    await services.close();
  });
  registerBodyParsers(app, config.maxJsonDepth);
  app.setErrorHandler(errorHandler);
  // What matches no route: refused in the protected scope under /fhir (below), here elsewhere.
  const notFound = (request: FastifyRequest) => {
    const m = /^\/fhir\/([^/?]+)/.exec(request.url);
    const diagnostics =
      m && !model.types.has(m[1]) && m[1] !== 'metadata'
        ? `resource type ${m[1].slice(0, 64)} is not served here`
        : `no FHIR interaction at ${request.method} ${request.url.split('?')[0].slice(0, 200)}`;
    return new FhirError('HEARTH_NOT_FOUND', diagnostics);
  };
  app.setNotFoundHandler((request, reply) => refuseUnrouted(notFound(request), request, reply));
  // After the error and not-found handlers: the plugin's OPTIONS route takes them when it is made.
  await registerCors(app, config.corsOrigins);
  app.addHook('onRequest', answerOptions(model));
  const health = {
    ...services.health,
    gauges: () => [
      ...services.health.gauges(),
      {
        name: 'hearth_unaudited_refusals_total',
        help: 'Requests refused outside the FHIR API that carried no bearer token (counted, not audited).',
        value: refusals.unaudited,
        type: 'counter' as const,
      },
    ],
  };
  // Public routes answer without a token; one that comes with a token is audited all the same.
  await app.register(async (open) => {
    open.addHook('onSend', refusals.onSend);
    await open.register(publicRoutes, { prefix: '/fhir', config, model, searchDocumentation: services.searchDocumentation, authServer: services.authServer });
    await open.register(operationsRoutes, { health });
  });
  // The built-in SMART authorization server (its own endpoints, outside the FHIR API). oidc-provider
  // writes its responses itself, past Fastify's reply headers: the security headers go on the raw response.
  const authServer = services.authServer;
  if (authServer) {
    await app.register(async (auth) => {
      auth.addHook('onRequest', securityHeadersOnRaw);
      await auth.register(authServerRoutes, { server: authServer });
      if (services.signIn) await auth.register(interactionRoutes, { server: authServer, ...services.signIn });
    });
  }
  // Everything else under /fhir needs a verified bearer token: its own plugin scope, not a URL allow-list.
  await app.register(
    async (api) => {
      // (here, where every answer goes through Fastify's reply: the authorization server's hijacked
      // ones would never arm the timer again)
      idleOnlyWhenSilent(api, config.timeouts.idleMs);
      // Named plugins, each declaring what it needs before it: audit first, so that refusals by
      // authentication and authorization are audited too.
      await api.register(auditPlugin, { sink, model, compartments: policy.compartments, config, clock });
      await api.register(authenticationPlugin, { verifier });
      await registerRateLimit(api, config.rateLimit, clock);
      await api.register(authorizationPlugin, { model, policy });
      await api.register(fhirRoutes, { config, model, repository, clock, auditStore: storage.audit, policy });
      // Under the API, what matches no route is refused in its scope: authenticated and audited
      // like every other request (the decision is skipped: there is nothing to reach).
      api.setNotFoundHandler((request, reply) => errorHandler(notFound(request), request, reply));
    },
    { prefix: '/fhir' },
  );
  for (const [path, message] of absent) if (existsSync(path)) app.log.warn({ path }, message);
  if (tls?.created) {
    app.log.warn(
      { fingerprint: tls.fingerprint },
      `created a self-signed development certificate in ${config.dataDir}/tls (SHA-256 ${tls.fingerprint}): clients will not trust it (curl -k, or pin the fingerprint); give HEARTH_TLS_CERT and HEARTH_TLS_KEY in production`,
    );
  } else if (tls) app.log.info({ fingerprint: tls.fingerprint }, 'serving HTTPS');
  if (recovered > 0) app.log.warn({ recovered }, 'recorded the outcome of writes interrupted by a crash');
  if (config.auth.issuers.length === 0 && !services.authServer) {
    app.log.warn('no trusted token issuer (HEARTH_AUTH_SERVER=false and no HEARTH_AUTH_ISSUER/HEARTH_AUTH_JWKS): every FHIR request except metadata is refused with 401');
  }
  return app;
}

/**
 * HEARTH_IDLE_TIMEOUT_MS is for a client gone silent, not for the server's own work: from the
 * moment an API request is whole (its body received and parsed) until its answer is being written,
 * the connection's idle timer is off, so that a long transaction (a large Bundle on a slow
 * MongoDB) is not cut off with its outcome unknown to the client, who would then send it again.
 * A slow sender is still cut off by the headers and request timeouts, and a client that does
 * not read its answer by the idle timer, armed again for the write.
 */
function idleOnlyWhenSilent(app: FastifyInstance, idleMs: number): void {
  // (a request injected in process has no socket of its own)
  const socketOf = (request: FastifyRequest) => (request.raw.socket instanceof Socket ? request.raw.socket : undefined);
  app.addHook('preHandler', (request, _reply, done) => {
    socketOf(request)?.setTimeout(0);
    done();
  });
  app.addHook('onSend', (request, _reply, payload, done) => {
    socketOf(request)?.setTimeout(idleMs);
    done(null, payload);
  });
}
