import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthServer } from './provider.ts';

export const AUTH_PREFIX = '/auth';

/**
 * Serves the built-in authorization server under /auth: every request there goes to
 * oidc-provider as it came (its own body parsing, its own responses), with the path below the
 * prefix; the server-wide hooks (security headers, request ids, logging) have run before.
 */
export async function authServerRoutes(app: FastifyInstance, opts: { server: AuthServer }): Promise<void> {
  const callback = opts.server.provider.callback();
  // The body is oidc-provider's to read: nothing here consumes it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  const handler = (request: FastifyRequest, reply: FastifyReply) => {
    reply.hijack();
    const raw = request.raw as typeof request.raw & { originalUrl?: string };
    raw.originalUrl = raw.url;
    // (the request id names the AuditEvent of a token request, as of every request)
    (raw as { hearthRequestId?: string }).hearthRequestId = request.id;
    reply.raw.setHeader('x-request-id', request.id);
    raw.url = (raw.url ?? '').slice(AUTH_PREFIX.length) || '/';
    // Token responses carry Cache-Control: no-store (oidc-provider); Pragma: no-cache for HTTP/1.0
    // caches too, as SMART asks. See: SMART App Launch, backend services ("Cache-Control: no-store",
    // "Pragma: no-cache") and RFC 6749 §5.1
    if (raw.url.startsWith('/token')) reply.raw.setHeader('pragma', 'no-cache');
    void callback(raw, reply.raw);
  };
  app.all(AUTH_PREFIX, handler);
  app.all(`${AUTH_PREFIX}/*`, handler);
}
