import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config/config.ts';

// Process entry: configuration from the environment (the only reader of process.env), then listen.
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`hearth: ${err.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}

let app: Awaited<ReturnType<typeof buildApp>>;
try {
  app = await buildApp(config);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`hearth: ${err.message}\n`);
    process.exit(78);
  }
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
