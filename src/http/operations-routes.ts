import type { FastifyInstance, FastifyReply } from 'fastify';

/** One dependency's state for /readyz: counts and words only, never data. */
export interface Check {
  readonly status: 'ok' | 'failing';
  readonly detail?: string;
  readonly [measure: string]: string | number | undefined;
}

export interface Health {
  /** each dependency the server needs to answer FHIR requests */
  checks(): Promise<Record<string, Check>>;
  /** gauges (and counters, when typed so) for /metrics: name, help, value */
  gauges(): readonly { readonly name: string; readonly help: string; readonly value: number; readonly type?: 'gauge' | 'counter' }[];
}

const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store');

/**
 * Operations endpoints outside the FHIR API, for orchestrators and monitoring: liveness,
 * readiness (the store, the keys, the audit log writer and its indexer with its lag) and gauges
 * in the Prometheus text format. They need no token and carry no data: counts and states only.
 */
export async function operationsRoutes(app: FastifyInstance, opts: { health: Health }): Promise<void> {
  const { health } = opts;
  app.get('/healthz', async (_request, reply) => {
    noStore(reply);
    return { status: 'alive' };
  });
  app.get('/readyz', async (_request, reply) => {
    const checks = await health.checks();
    const ready = Object.values(checks).every((c) => c.status === 'ok');
    noStore(reply).code(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not ready', checks };
  });
  app.get('/metrics', async (_request, reply) => {
    noStore(reply).type('text/plain; version=0.0.4; charset=utf-8');
    return health
      .gauges()
      .map((g) => `# HELP ${g.name} ${g.help}\n# TYPE ${g.name} ${g.type ?? 'gauge'}\n${g.name} ${g.value}\n`)
      .join('');
  });
}
