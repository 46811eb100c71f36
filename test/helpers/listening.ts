import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { freePort, tempDir } from './app.ts';
import { LOOPBACK_SERVER_ENV } from './server.ts';

export interface ListeningApp {
  app: FastifyInstance;
  config: Config;
  /** http://127.0.0.1:<port> */
  origin: string;
  /** the FHIR base URL */
  base: string;
}

/**
 * The whole server listening on a free loopback port on the real clock (the authorization
 * server's, oidc-provider's, is the real one), plain HTTP as behind a proxy, the built-in
 * authorization server on beside the test issuer. Close `app` when done.
 */
export async function listeningApp(env: Record<string, string> = {}): Promise<ListeningApp> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const base = `${origin}/fhir`;
  const config = loadConfig({
    HEARTH_LOG_LEVEL: 'silent',
    HEARTH_DATA_DIR: tempDir(),
    HEARTH_PORT: String(port),
    HEARTH_BASE_URL: base,
    ...LOOPBACK_SERVER_ENV,
    ...env,
  });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port });
  return { app, config, origin, base };
}
