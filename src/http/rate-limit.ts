import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import type { Principal } from '../auth/authorize.ts';
import type { RateLimitConfig } from '../config/config.ts';
import { FhirError } from '../fhir/errors.ts';

const WINDOW_MS = 1000;
const KEYS_KEPT = 10_000;

/** Whose budget a request spends: the verified issuer, client and user — not the network address. */
const budgetOf = (p: Principal | null | undefined) => (p ? `${p.issuer}|${p.clientId ?? ''}|${p.subject ?? ''}` : 'anonymous');

/**
 * Request rates per verified client and user, with @fastify/rate-limit: `perSecond` each (a
 * role may have its own figure), counted after authentication so that the key is who the token
 * says, not where the request came from. Over the figure: 429 with Retry-After, an
 * OperationOutcome, and (being in the audited scope) an AuditEvent. With `redisUrl`, every
 * instance counts in one Redis; if Redis cannot answer, requests are let through (the limiter
 * protects capacity; it decides no access) rather than refused.
 */
export async function registerRateLimit(api: FastifyInstance, config: RateLimitConfig, clock: () => Date): Promise<void> {
  const perSecond = config.perSecond;
  if (perSecond === undefined) return;
  // A count waits at most 250 ms for Redis (while it connects, or after it went away).
  const redis = config.redisUrl ? new Redis(config.redisUrl, { commandTimeout: 250, maxRetriesPerRequest: 1 }) : undefined;
  redis?.on('error', () => undefined);
  await api.register(fastifyRateLimit, {
    hook: 'preHandler',
    timeWindow: WINDOW_MS,
    max: (request: FastifyRequest) => config.byRole[request.principal?.role ?? ''] ?? perSecond,
    keyGenerator: (request: FastifyRequest) => budgetOf(request.principal),
    ...(redis ? { redis, nameSpace: 'hearth-rate-' } : { store: clockStore(clock) }),
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new FhirError('HEARTH_RATE_LIMITED', {
        code: 'throttled',
        diagnostics: `more than ${context.max} requests a second from this client and user; retry after ${context.after}`,
      }),
  });
  if (redis) api.addHook('onClose', async () => void (await redis.quit().catch(() => undefined)));
}

/**
 * The in-process store: fixed one-second windows per key on the app's clock (so that tests move
 * time instead of waiting for it), at most KEYS_KEPT keys (the oldest go first).
 */
function clockStore(clock: () => Date) {
  return class ClockStore {
    readonly #windows = new Map<string, { count: number; resetAt: number }>();

    incr(key: string, done: (err: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
      const now = clock().getTime();
      let w = this.#windows.get(key);
      if (!w || w.resetAt <= now) {
        this.#windows.delete(key);
        if (this.#windows.size >= KEYS_KEPT) this.#windows.delete(this.#windows.keys().next().value as string);
        w = { count: 0, resetAt: now + timeWindow };
        this.#windows.set(key, w);
      }
      w.count++;
      done(null, { current: w.count, ttl: w.resetAt - now });
    }

    child(): ClockStore {
      return this;
    }
  };
}
