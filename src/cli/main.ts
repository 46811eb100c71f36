// hearth <command>: operator commands. Reads the same HEARTH_* configuration as the server.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/config.ts';
import { checkScopes, DEV_ISSUER, devToken } from './dev-token.ts';

const USAGE = `usage: hearth <command> [options]

commands:
  dev-token   print an access token from a local development issuer
              --scope "<scopes>"   SMART scopes (default "system/*.cruds")
              --patient <id>       patient launch context
              --role <role>        a role from profiles/roles.json
              --fhir-user <ref>    e.g. Practitioner/123
              --subject <sub>      (default "developer")
              --lifetime <secs>    60..3600 (default 900)
`;

function fail(message: string): never {
  process.stderr.write(`hearth: ${message}\n\n${USAGE}`);
  process.exit(64); // EX_USAGE
}

const [command, ...rest] = process.argv.slice(2);
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`hearth: ${err.message}\n`);
    process.exit(78);
  }
  throw err;
}

switch (command) {
  case 'dev-token': {
    let values: Record<string, string | undefined>;
    try {
      ({ values } = parseArgs({
        args: rest,
        strict: true,
        options: {
          scope: { type: 'string', default: 'system/*.cruds' },
          patient: { type: 'string' },
          role: { type: 'string' },
          'fhir-user': { type: 'string' },
          subject: { type: 'string', default: 'developer' },
          lifetime: { type: 'string', default: '900' },
        },
      }) as { values: Record<string, string | undefined> });
    } catch (err) {
      fail((err as Error).message);
    }
    const scopeProblem = checkScopes(values.scope ?? '');
    if (scopeProblem) fail(scopeProblem);
    const lifetime = Number(values.lifetime);
    if (!Number.isInteger(lifetime) || lifetime < 60 || lifetime > 3600) fail('--lifetime must be a whole number of seconds from 60 to 3600');
    if (values.patient !== undefined && !/^[A-Za-z0-9\-.]{1,64}$/.test(values.patient)) fail('--patient must be a FHIR id');
    if (values['fhir-user'] !== undefined && !/^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(values['fhir-user'])) {
      fail('--fhir-user must be Type/id, e.g. Practitioner/123');
    }
    const { token, jwksPath } = await devToken(config, {
      scope: values.scope ?? 'system/*.cruds',
      patient: values.patient,
      role: values.role,
      fhirUser: values['fhir-user'],
      subject: values.subject ?? 'developer',
      lifetimeSeconds: lifetime,
    });
    process.stdout.write(`${token}\n`);
    if (!config.auth.issuers.some((i) => i.issuer === DEV_ISSUER)) {
      process.stderr.write(
        `hearth: the server trusts this token only when started with\n  HEARTH_AUTH_ISSUER=${DEV_ISSUER} HEARTH_AUTH_JWKS=${jwksPath}\n`,
      );
    }
    break;
  }
  case undefined:
  case '--help':
  case 'help':
    process.stdout.write(USAGE);
    break;
  default:
    fail(`unknown command "${command}"`);
}
