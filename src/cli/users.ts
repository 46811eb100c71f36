import { readFileSync } from 'node:fs';
import { AuthDb } from '../authserver/auth-db.ts';
import { USER_ROLES, type UserRole, Users } from '../authserver/users.ts';
import { openKeyring } from '../compose.ts';
import type { Config } from '../config/config.ts';
import { secretBox } from '../crypto/secret-box.ts';
import { CliError } from './audit.ts';

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
const MIN_PASSWORD = 12;

export interface UsersAddArgs {
  username?: string;
  role?: string;
  'fhir-user'?: string;
  /** a file holding the password (its first line), or - for standard input */
  'password-file'?: string;
  /** "optional": the account may sign in with its password alone (TOTP is required by default) */
  mfa?: string;
}

async function withUsers<T>(config: Config, work: (users: Users) => Promise<T> | T): Promise<T> {
  const db = new AuthDb(config.dataDir);
  try {
    // (the keyring only when a secret is sealed or opened, which these commands never do: so
    // that accounts can be made before the server's first start has made the keyring)
    const box = () => secretBox(openKeyring(config, false));
    return await work(new Users(db, { seal: (p, c) => box().seal(p, c), open: (p, c) => box().open(p, c) }));
  } finally {
    db.close();
  }
}

/**
 * `hearth users add`: an account of the built-in authorization server, with a role from
 * profiles/roles.json and who it is in the data (`--fhir-user Practitioner/1`; a patient's own
 * Patient). The password comes from a file or standard input, never from the command line (it
 * would stay in the shell's history and the process list); it is hashed with argon2id.
 */
export async function usersAdd(config: Config, a: UsersAddArgs, stdin: () => string = () => readFileSync(0, 'utf8')): Promise<string> {
  if (!a.username || !USERNAME.test(a.username)) throw new CliError('--username is required: 1-128 letters, digits, ".", "_", "@" or "-"');
  if (!a.role || !(USER_ROLES as readonly string[]).includes(a.role)) throw new CliError(`--role is required: one of ${USER_ROLES.join(', ')}`);
  const fhirUser = a['fhir-user'];
  if (fhirUser !== undefined && !/^(Practitioner|Patient|RelatedPerson|Person)\/[A-Za-z0-9\-.]{1,64}$/.test(fhirUser)) {
    throw new CliError('--fhir-user must be Practitioner/<id>, Patient/<id>, RelatedPerson/<id> or Person/<id>');
  }
  if (a.role === 'patient' && !fhirUser?.startsWith('Patient/')) throw new CliError('a patient account needs --fhir-user Patient/<id>: the record it may see');
  if (a.mfa !== undefined && a.mfa !== 'optional' && a.mfa !== 'required') throw new CliError('--mfa must be "required" (the default) or "optional"');
  if (!a['password-file']) throw new CliError('--password-file <file> (or - for standard input) is required: a password never goes on the command line');
  let password: string;
  try {
    password = (a['password-file'] === '-' ? stdin() : readFileSync(a['password-file'], 'utf8')).split('\n')[0];
  } catch (err) {
    throw new CliError(`--password-file: cannot read it (${(err as Error).message})`);
  }
  if (password.length < MIN_PASSWORD) throw new CliError(`the password must have at least ${MIN_PASSWORD} characters`);
  return withUsers(config, async (users) => {
    if (users.get(a.username!)) throw new CliError(`a user "${a.username}" exists already`);
    await users.add({ username: a.username!, password, role: a.role as UserRole, fhirUser, mfaRequired: a.mfa !== 'optional' });
    return `added user ${a.username} (${a.role}${fhirUser ? `, ${fhirUser}` : ''}); second factor ${a.mfa === 'optional' ? 'optional' : 'required: enrolled at the first sign-in'}\n`;
  });
}

export function usersDisable(config: Config, username: string | undefined): Promise<string> {
  if (!username) throw new CliError('which user? hearth users disable <username>');
  return withUsers(config, (users) => {
    if (!users.disable(username)) throw new CliError(users.get(username) ? `user ${username} is disabled already` : `no user ${username}`);
    return `disabled user ${username}\n`;
  });
}

export function usersResetMfa(config: Config, username: string | undefined): Promise<string> {
  if (!username) throw new CliError('which user? hearth users reset-mfa <username>');
  return withUsers(config, (users) => {
    if (!users.resetMfa(username)) throw new CliError(`no user ${username}`);
    return `reset the second factor of ${username}: the next sign-in enrols a new one\n`;
  });
}
