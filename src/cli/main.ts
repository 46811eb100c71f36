// hearth <command>: operator commands. Reads the same HEARTH_* configuration as the server.
import { parseArgs } from 'node:util';
import { ConfigError, configOrExit, exitWithConfigError } from '../config/config.ts';
import { auditPurge, auditReportCli, auditVerify, CliError } from './audit.ts';
import { KeyringError } from '../crypto/keyring.ts';
// The other commands' modules are loaded by the command that needs them: the account and key
// commands import the server's composition, and a command's start-up is part of its time.

const USAGE = `usage: hearth <command> [options]

commands:
  keys list     the key-encryption key versions
  keys rotate   a new key version for new writes (a running server picks it up)
  keys rewrap   re-wrap existing data keys under the current version (resumable, with progress)
  keys retire <version>   remove a version; refused while anything still uses it
  audit verify  walk the audit hash chain and signed checkpoints; exit 1 naming the first break
              --public-key <pem>   the signing key's public key (default beside HEARTH_AUDIT_SIGNING_KEY)
              --witness <file>     the signed heads published to HEARTH_AUDIT_WITNESS: detects a
                                   cut tail, a rollback to an older copy, a replaced log
              --threads <n>        walk the chain in n stretches at once, 1..64 (default: the
                                   cores, from 20,000 events on)
  audit report  --from <date> --to <date> [--format md|json|html] [--top N]
  audit purge   remove AuditEvents older than HEARTH_AUDIT_RETENTION_DAYS (or --before <date>,
              which must be older still); the purge is recorded in the chain
  mongo init  create the collections, indexes and the roles hearthApp (may never update or delete
              the audit log) and hearthAuditor (reads the audit trail only) in HEARTH_MONGODB_URI's
              database; run with an administrator's credentials
  clients add  register a client of the built-in authorization server (/auth)
              --id <client_id>  --name <text>  --type backend (default) | public | confidential
              backend: a SMART backend service, private_key_jwt with --jwks <file> | --jwks-uri
                       <https URL>, --scope "<system/ scopes it may be granted>"; --ehr: a
                       trusted EHR, which may register launch contexts (POST /auth/launch)
              public, confidential: an app users sign in to (code flow, PKCE), --redirect-uri
                       "<uris>", --scope "<patient/ user/ scopes, openid fhirUser launch/patient
                       offline_access online_access>"; confidential prints its secret once
  clients list  the registered clients, active or revoked
  clients revoke <id>   the client can no longer obtain tokens
  users add   an account of the built-in authorization server
              --username <name> --role <administrator|provider|nurse|billing|patient|auditor>
              --fhir-user <Practitioner/id|Patient/id>   --password-file <file|->
              --mfa optional       (TOTP is required by default, enrolled at the first sign-in)
  users disable <username>     users reset-mfa <username>
  dev-token   print an access token from a local development issuer
              --scope "<scopes>"   SMART scopes (default "system/*.cruds"; with --patient,
                                   "patient/*.cruds launch/patient")
              --patient <id>       patient launch context; refuses system/ and user/ scopes,
                                   which would reach every patient, unless also given
              --allow-wider-scopes
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
const config = configOrExit(process.env);

function args(spec: Record<string, { type: 'string' | 'boolean'; default?: string }>): Record<string, string | undefined> {
  try {
    return parseArgs({ args: rest.slice(['audit', 'keys', 'clients', 'users'].includes(command) ? 1 : 0), strict: true, options: spec }).values as Record<
      string,
      string | undefined
    >;
  } catch (err) {
    fail((err as Error).message);
  }
}

async function audit(sub: string | undefined): Promise<void> {
  try {
    if (sub === 'verify') {
      const a = args({ 'public-key': { type: 'string' }, witness: { type: 'string' }, threads: { type: 'string' } });
      const r = await auditVerify(config, a['public-key'], a.witness, a.threads);
      process.stdout.write(r.text);
      process.exit(r.ok ? 0 : 1);
    } else if (sub === 'report') {
      const a = args({ from: { type: 'string' }, to: { type: 'string' }, format: { type: 'string' }, top: { type: 'string' } });
      process.stdout.write(await auditReportCli(config, a));
    } else if (sub === 'purge') {
      process.stdout.write(await auditPurge(config, args({ before: { type: 'string' } }).before));
    } else {
      fail(`unknown audit command "${sub ?? ''}": verify, report or purge`);
    }
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`hearth: ${err.message}\n`);
      process.exit(err.message.startsWith('no ') ? 66 : 64);
    }
    throw err;
  }
}

async function keys(sub: string | undefined): Promise<void> {
  const { keysList, keysRetire, keysRewrap, keysRotate } = await import('./keys.ts');
  try {
    if (sub === 'list') process.stdout.write(keysList(config));
    else if (sub === 'rotate') process.stdout.write(await keysRotate(config));
    else if (sub === 'rewrap') process.stdout.write(await keysRewrap(config, (line) => process.stderr.write(line)));
    else if (sub === 'retire') {
      if (rest.length > 2) fail('usage: hearth keys retire <version>');
      process.stdout.write(await keysRetire(config, rest[1]));
    } else fail(`unknown keys command "${sub ?? ''}": list, rotate, rewrap or retire`);
  } catch (err) {
    if (err instanceof CliError || err instanceof KeyringError) {
      process.stderr.write(`hearth: ${err.message}\n`);
      process.exit(err.message.startsWith('no ') ? 66 : 64);
    }
    if (err instanceof ConfigError) exitWithConfigError(err);
    throw err;
  }
}

async function clients(sub: string | undefined): Promise<void> {
  const { clientsAdd, clientsList, clientsRevoke } = await import('./clients.ts');
  try {
    if (sub === 'add') {
      const spec = {
        id: { type: 'string' },
        name: { type: 'string' },
        type: { type: 'string' },
        jwks: { type: 'string' },
        'jwks-uri': { type: 'string' },
        scope: { type: 'string' },
        'redirect-uri': { type: 'string' },
        ehr: { type: 'boolean' },
      } as const;
      process.stdout.write(clientsAdd(config, args(spec)));
    } else if (sub === 'list') {
      args({});
      process.stdout.write(clientsList(config));
    } else if (sub === 'revoke') {
      if (rest.length !== 2) fail('usage: hearth clients revoke <id>');
      process.stdout.write(clientsRevoke(config, rest[1]));
    } else fail(`unknown clients command "${sub ?? ''}": add, list or revoke`);
  } catch (err) {
    operatorFailure(err);
  }
}

/** How the account and client commands end on a refusal: one clear line and an exit code, never a stack. */
function operatorFailure(err: unknown): never {
  if (err instanceof CliError || err instanceof KeyringError) {
    process.stderr.write(`hearth: ${err.message}\n`);
    process.exit(err.message.startsWith('no ') ? 66 : 64);
  }
  // (a keyring that cannot be opened, as the server would report it)
  if (err instanceof ConfigError) exitWithConfigError(err);
  throw err;
}

async function users(sub: string | undefined): Promise<void> {
  const { usersAdd, usersDisable, usersResetMfa } = await import('./users.ts');
  try {
    if (sub === 'add') {
      const spec = { username: { type: 'string' }, role: { type: 'string' }, 'fhir-user': { type: 'string' }, 'password-file': { type: 'string' }, mfa: { type: 'string' } } as const;
      process.stdout.write(await usersAdd(config, args(spec)));
    } else if (sub === 'disable' || sub === 'reset-mfa') {
      if (rest.length !== 2) fail(`usage: hearth users ${sub} <username>`);
      process.stdout.write(await (sub === 'disable' ? usersDisable : usersResetMfa)(config, rest[1]));
    } else fail(`unknown users command "${sub ?? ''}": add, disable or reset-mfa`);
  } catch (err) {
    operatorFailure(err);
  }
}

async function mongo(sub: string | undefined): Promise<void> {
  if (sub !== 'init' || rest.length > 1) fail(`unknown mongo command "${rest.join(' ')}": init`);
  if (!config.mongodb) fail('mongo init needs HEARTH_MONGODB_URI');
  const { mongoInitCli } = await import('./mongo.ts');
  try {
    process.stdout.write(await mongoInitCli(config));
  } catch (err) {
    if (err instanceof ConfigError) exitWithConfigError(err);
    throw err;
  }
}

switch (command) {
  case 'clients':
    await clients(rest[0]);
    break;
  case 'users':
    await users(rest[0]);
    break;
  case 'mongo':
    await mongo(rest[0]);
    break;
  case 'keys':
    await keys(rest[0]);
    break;
  case 'audit':
    await audit(rest[0]);
    break;
  case 'dev-token': {
    const { checkScopes, DEV_ISSUER, devToken, widerThanPatient } = await import('./dev-token.ts');
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({
        args: rest,
        strict: true,
        options: {
          scope: { type: 'string' },
          patient: { type: 'string' },
          'allow-wider-scopes': { type: 'boolean' },
          role: { type: 'string' },
          'fhir-user': { type: 'string' },
          subject: { type: 'string', default: 'developer' },
          lifetime: { type: 'string', default: '900' },
        },
      }) as { values: Record<string, string | boolean | undefined> });
    } catch (err) {
      fail((err as Error).message);
    }
    const patient = values.patient as string | undefined;
    const scope = (values.scope as string | undefined) ?? (patient === undefined ? 'system/*.cruds' : 'patient/*.cruds launch/patient');
    const scopeProblem = checkScopes(scope) ?? (patient === undefined || values['allow-wider-scopes'] ? undefined : widerThanPatient(scope));
    if (scopeProblem) fail(scopeProblem);
    const lifetime = Number(values.lifetime);
    if (!Number.isInteger(lifetime) || lifetime < 60 || lifetime > 3600) fail('--lifetime must be a whole number of seconds from 60 to 3600');
    if (patient !== undefined && !/^[A-Za-z0-9\-.]{1,64}$/.test(patient)) fail('--patient must be a FHIR id');
    const fhirUser = values['fhir-user'] as string | undefined;
    if (fhirUser !== undefined && !/^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(fhirUser)) {
      fail('--fhir-user must be Type/id, e.g. Practitioner/123');
    }
    if (values['allow-wider-scopes'] && patient === undefined) fail('--allow-wider-scopes goes with --patient');
    const { token, jwksPath } = await devToken(config, {
      scope,
      patient,
      role: values.role as string | undefined,
      fhirUser,
      subject: (values.subject as string | undefined) ?? 'developer',
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
