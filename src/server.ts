import { buildApp } from './app.ts';
import { ConfigError, configOrExit, exitWithConfigError } from './config/config.ts';

// Process entry: configuration from the environment (the only reader of process.env), then listen.
const config = configOrExit(process.env);

let app: Awaited<ReturnType<typeof buildApp>>;
try {
  app = await buildApp(config);
} catch (err) {
  if (err instanceof ConfigError) exitWithConfigError(err);
  throw err;
}
let closing = false;
const shutdown = (signal: string) => {
  if (closing) return;
  closing = true;
  app.log.info({ signal }, 'shutting down: finishing requests in flight');
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));

await app.listen({ host: config.host, port: config.port });
app.log.info(
  { host: config.host, baseUrl: config.baseUrl, dataDir: config.dataDir, issuers: config.auth.issuers.map((i) => i.issuer) },
  `Hearth FHIR R4 server listening on ${config.host}:${config.port}; FHIR base ${config.baseUrl}`,
);
