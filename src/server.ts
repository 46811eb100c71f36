import { buildApp } from './app.ts';
import { ConfigError, configOrExit, exitWithConfigError } from './config/config.ts';

// Process entry: configuration from the environment (the only reader of process.env), then listen.

/** sysexits.h EX_UNAVAILABLE: a service the server needs (its port) is not available. */
const EXIT_CANNOT_LISTEN = 69;
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

try {
  await app.listen({ host: config.host, port: config.port });
} catch (err) {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw err;
  const why =
    code === 'EADDRINUSE'
      ? 'is in use (another Hearth, or another program, is listening there)'
      : code === 'EACCES'
        ? 'may not be opened by this user (ports below 1024 need privileges)'
        : 'is not an address of this machine';
  process.stderr.write(`hearth: cannot listen on ${config.host}:${config.port}: the port ${why}; set HEARTH_PORT or HEARTH_HOST\n`);
  await app.close();
  process.exit(EXIT_CANNOT_LISTEN);
}
app.log.info(
  // (The store by kind only: a MongoDB URI may carry a password.)
  { host: config.host, baseUrl: config.baseUrl, store: config.mongodb ? 'mongodb' : 'embedded', dataDir: config.dataDir, issuers: config.auth.issuers.map((i) => i.issuer) },
  `Hearth FHIR R4 server listening on ${config.host}:${config.port}; FHIR base ${config.baseUrl}`,
);
