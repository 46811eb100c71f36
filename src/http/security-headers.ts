import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyHelmet from '@fastify/helmet';
import helmet from 'helmet';

/**
 * The response headers of every answer, with helmet: HSTS for a year (subdomains included), no
 * MIME sniffing, no framing, a Content-Security-Policy that lets a response load and run nothing
 * (the API serves data, not pages), no Referer leaving, no X-Powered-By. And `Cache-Control:
 * no-store` on every response: any of them may carry PHI, and none may rest in a shared or
 * browser cache.
 */
const OPTIONS = {
  contentSecurityPolicy: { useDefaults: false as const, directives: { defaultSrc: ['\'none\''], frameAncestors: ['\'none\''] } },
  frameguard: { action: 'deny' as const },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
  referrerPolicy: { policy: 'no-referrer' as const },
};

export async function registerSecurityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(fastifyHelmet, OPTIONS);
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
  });
}

const setHeaders = helmet(OPTIONS);

/** The same headers for an answer no hook sees (Fastify's own refusals before routing). */
export function applySecurityHeaders(request: FastifyRequest, reply: FastifyReply): void {
  setHeaders(request.raw, reply.raw, () => undefined);
  reply.header('cache-control', 'no-store');
}
