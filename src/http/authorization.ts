import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Decision, Policy } from '../auth/authorize.ts';
import { bearerToken, InvalidTokenError, type TokenVerifier } from '../auth/token-verifier.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { badRequest, FhirError } from '../fhir/errors.ts';
import { decideRoute } from '../rest/routes.ts';

/**
 * Authentication for the protected API: exactly one Authorization header, carrying a bearer token
 * the verifier accepts. Node keeps only the first of repeated Authorization headers in
 * `request.headers`, so the raw header list is counted: a second credential must not hide behind
 * the first.
 */
export const authenticationPlugin = fp(
  async (api: FastifyInstance, opts: { verifier: TokenVerifier }) => registerAuthentication(api, opts.verifier),
  { name: 'hearth-authentication', dependencies: ['hearth-audit'] },
);

function registerAuthentication(api: FastifyInstance, verifier: TokenVerifier): void {
  api.decorateRequest('principal', null as never);
  api.addHook('onRequest', async (request) => {
    if (countHeader(request, 'authorization') > 1) {
      throw badRequest('HEARTH_BAD_HEADER', 'Authorization may appear only once');
    }
    try {
      request.principal = await verifier.verify(bearerToken(request.headers.authorization));
    } catch (err) {
      if (err instanceof InvalidTokenError) request.log.info({ reason: err.reason }, 'access token refused');
      throw err;
    }
  });
}

function countHeader(request: FastifyRequest, name: string): number {
  const raw = request.raw.rawHeaders;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === name.length && raw[i].toLowerCase() === name) n++;
  return n;
}

/**
 * The one authorization decision of the protected API. Every route registered in its scope must
 * say what it is (`config.fhir`: type, interaction, operation); a route that does not is refused at
 * start-up, so that no handler can be reached without a decision. Before any handler runs, the
 * decision either sets `request.access` — what the request may touch, which every interaction
 * carries into the store — or refuses: 405 for what the type does not offer, 403 for what the
 * token does not grant.
 */
export const authorizationPlugin = fp(
  async (api: FastifyInstance, opts: { model: FhirModel; policy: Policy }) => registerAuthorization(api, opts),
  { name: 'hearth-authorization', dependencies: ['hearth-authentication'] },
);

export function registerAuthorization(api: FastifyInstance, opts: { model: FhirModel; policy: Policy }): void {
  const { model, policy } = opts;
  if (!api.hasRequestDecorator('access')) api.decorateRequest('access', null as never);
  api.addHook('onRoute', (route) => {
    if (!route.config?.fhir) {
      throw new Error(`${String(route.method)} ${route.url} declares no FHIR interaction, so no authorization decision would apply to it`);
    }
  });
  api.addHook('preHandler', async (request) => {
    // A request that matched no route (answered 404 in this scope) reaches nothing to decide on.
    if (request.is404) return;
    const decision = decide(request, model, policy);
    if (!decision.allowed) {
      // See: https://www.rfc-editor.org/rfc/rfc6750#section-3.1 (insufficient_scope)
      throw new FhirError('HEARTH_FORBIDDEN', { code: 'forbidden', diagnostics: decision.reason },
        { 'www-authenticate': `Bearer realm="hearth", error="insufficient_scope", scope="${decision.scopeNeeded}"` },
      );
    }
    request.access = decision.access;
  });
}

/** The route's meaning, decided by the one decision (rest/routes.ts). */
function decide(request: FastifyRequest, model: FhirModel, policy: Policy): Decision {
  const fhir = request.routeOptions.config.fhir;
  if (!fhir) throw new Error('a protected route without a declared interaction');
  return decideRoute(request.principal, fhir, request.headers['if-none-exist'] !== undefined, model, policy, request.method);
}
