import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { createServices, type ServiceDeps } from './compose.ts';
import type { Config } from './config/config.ts';
import { FhirError } from './fhir/errors.ts';
import { auditPlugin } from './http/audit-hook.ts';
import { authenticationPlugin, authorizationPlugin } from './http/authorization.ts';
import { registerBodyParsers } from './http/body-parsers.ts';
import { errorHandler } from './http/error-handler.ts';
import { fhirRoutes } from './http/fhir-routes.ts';
import { loggerOptions } from './http/logger.ts';
import { negotiationPlugin } from './http/negotiation.ts';
import { operationsRoutes } from './http/operations-routes.ts';
import { publicRoutes } from './http/public-routes.ts';

export interface AppDeps extends ServiceDeps {
  /** A pino-compatible logger instance for tests that read the log. */
  readonly loggerInstance?: import('fastify').FastifyBaseLogger;
}

/** Builds the application over the services of the composition root; never listens (server.ts does). */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const services = createServices(config, deps);
  // Before any request: what a crash left between a write-ahead attempt and its outcome.
  const recovered = await services.recover();
  const { clock, model, sink, verifier, policy, repository, storage } = services;

  const app = Fastify({
    ...(deps.loggerInstance ? { loggerInstance: deps.loggerInstance } : { logger: loggerOptions(config) }),
    bodyLimit: config.bodyLimit,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    return503OnClosing: true,
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
  // Every route the server registers, as Fastify saw it: what the route-by-token policy test walks.
  const routes: FastifyInstance['registeredRoutes'][number][] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url, fhir: r.config?.fhir });
  });
  app.decorate('registeredRoutes', routes);
  app.decorate('auditProgress', services.auditProgress);
  app.decorateRequest('auditIssue', undefined);
  await app.register(negotiationPlugin);
  app.addHook('onClose', async () => {
    await services.close();
  });
  registerBodyParsers(app, config.maxJsonDepth);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    const m = /^\/fhir\/([^/?]+)/.exec(request.url);
    const diagnostics =
      m && !model.types.has(m[1]) && m[1] !== 'metadata'
        ? `resource type ${m[1].slice(0, 64)} is not served here`
        : `no FHIR interaction at ${request.method} ${request.url.split('?')[0].slice(0, 200)}`;
    errorHandler(new FhirError('HEARTH_NOT_FOUND', diagnostics), request, reply);
  });
  await app.register(publicRoutes, { prefix: '/fhir', config, model });
  await app.register(operationsRoutes, { health: services.health });
  // Everything else under /fhir needs a verified bearer token: its own plugin scope, not a URL allow-list.
  await app.register(
    async (api) => {
      // Named plugins, each declaring what it needs before it: audit first, so that refusals by
      // authentication and authorization are audited too.
      await api.register(auditPlugin, { sink, model, compartments: policy.compartments, config, clock });
      await api.register(authenticationPlugin, { verifier });
      await api.register(authorizationPlugin, { model, policy });
      await api.register(fhirRoutes, { config, model, repository, clock, auditStore: storage.audit });
    },
    { prefix: '/fhir' },
  );
  if (recovered > 0) app.log.warn({ recovered }, 'recorded the outcome of writes interrupted by a crash');
  if (config.auth.issuers.length === 0) {
    app.log.warn('no trusted token issuer is configured (HEARTH_AUTH_ISSUER/HEARTH_AUTH_JWKS): every FHIR request except metadata is refused with 401');
  }
  return app;
}
