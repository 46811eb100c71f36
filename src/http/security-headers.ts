import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

/**
 * What helmet's middleware sets for OPTIONS, read once from a response it was run on. They depend
 * on the options alone, so every answer gets the same; @fastify/helmet built the middleware again
 * for every request (option checks, directive parsing, header validation), measured at ~10 % of a
 * secured read's request-thread CPU.
 */
function helmetHeaders(): Record<string, string> {
  const socket = new Socket();
  const request = new IncomingMessage(socket);
  const response = new ServerResponse(request);
  helmet(OPTIONS)(request, response, (err?: unknown) => {
    if (err) throw err;
  });
  socket.destroy();
  const headers = Object.fromEntries(Object.entries(response.getHeaders()).map(([name, value]) => [name, String(value)]));
  return { ...headers, 'cache-control': 'no-store' };
}

const HEADERS = helmetHeaders();

export function registerSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', (_request, reply, done) => {
    applySecurityHeaders(reply);
    done();
  });
}

/** The same headers for an answer no hook sees (Fastify's own refusals before routing). */
export function applySecurityHeaders(reply: FastifyReply): void {
  reply.headers(HEADERS);
}

/**
 * The same headers set on the raw response, for routes whose response a library writes itself
 * (oidc-provider): Fastify writes its reply's headers only when it sends the reply. What the
 * library sets after (its own Cache-Control, say) replaces them.
 */
export function securityHeadersOnRaw(_request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  for (const [name, value] of Object.entries(HEADERS)) reply.raw.setHeader(name, value);
  done();
}
