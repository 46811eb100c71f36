import { hash, verify } from '@node-rs/argon2';
import { Secret, TOTP } from 'otpauth';
import type { AuthDb } from './auth-db.ts';

/** The roles of profiles/roles.json a user account may hold. */
export const USER_ROLES = ['administrator', 'provider', 'nurse', 'billing', 'patient', 'auditor'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** Seals a user's TOTP secret at rest (crypto/secret-box.ts, under the keyring). */
export interface Sealer {
  seal(plain: string, context: string): string;
  open(sealed: string, context: string): string;
}

export interface User {
  readonly username: string;
  readonly role: UserRole;
  /** `Practitioner/123` or `Patient/456`: who the user is in the FHIR data */
  readonly fhirUser?: string;
  readonly mfaRequired: boolean;
  readonly mfaEnrolled: boolean;
  readonly disabled: boolean;
}

/** How many wrong passwords (or codes) lock an account, and for how long. */
export const LOCKOUT = { failures: 5, seconds: 15 * 60 } as const;

// OWASP's argon2id minimum (m = 19 MiB, t = 2, p = 1). See: OWASP Password Storage Cheat Sheet
const ARGON2 = { algorithm: 2 /* argon2id */, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** RFC 6238 TOTP as authenticator apps speak it: SHA-1, 6 digits, 30 s, ±1 step of drift. */
const totpOf = (username: string, secret: string) =>
  new TOTP({ issuer: 'Hearth', label: username, algorithm: 'SHA1', digits: 6, period: 30, secret: Secret.fromBase32(secret) });

interface UserRow {
  username: string;
  password_hash: string;
  role: string;
  fhir_user: string | null;
  totp_secret: string | null;
  totp_step: number | null;
  mfa_required: number;
  failures: number;
  locked_until: number | null;
  disabled_at: string | null;
}

/**
 * The authorization server's user accounts (auth.db): passwords hashed with argon2id, a TOTP
 * second factor (required for every role unless an operator says otherwise), failures counted
 * per account with a lockout. Operators manage them with `hearth users`.
 */
export class Users {
  readonly #db: AuthDb;
  readonly #box: Sealer;
  readonly #now: () => number;

  constructor(db: AuthDb, box: Sealer, now: () => number = Date.now) {
    this.#db = db;
    this.#box = box;
    this.#now = now;
  }

  async add(u: { username: string; password: string; role: UserRole; fhirUser?: string; mfaRequired: boolean }): Promise<void> {
    const passwordHash = await hash(u.password, ARGON2);
    this.#db.sql
      .prepare('INSERT INTO users (username, password_hash, role, fhir_user, mfa_required, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(u.username, passwordHash, u.role, u.fhirUser ?? null, u.mfaRequired ? 1 : 0, new Date(this.#now()).toISOString());
  }

  get(username: string): User | undefined {
    const row = this.#row(username);
    return row && toUser(row);
  }

  /** A disabled account cannot sign in; its grants stay until they expire (revoke them apart). */
  disable(username: string): boolean {
    return this.#db.sql.prepare('UPDATE users SET disabled_at = ? WHERE username = ? AND disabled_at IS NULL').run(new Date(this.#now()).toISOString(), username).changes > 0;
  }

  /** Forgets the second factor: the next sign-in enrols a new one. */
  resetMfa(username: string): boolean {
    return this.#db.sql.prepare('UPDATE users SET totp_secret = NULL, failures = 0, locked_until = NULL WHERE username = ?').run(username).changes > 0;
  }

  /**
   * Checks a password: the user when it is right (failures reset); 'locked' while the account is
   * locked (the password is not even checked); undefined otherwise — no such user, disabled, or
   * wrong (counted: LOCKOUT.failures in a row lock it for LOCKOUT.seconds).
   */
  async checkPassword(username: string, password: string): Promise<User | 'locked' | undefined> {
    const row = this.#row(username);
    if (row?.locked_until && row.locked_until > this.#now()) return 'locked';
    // Unknown users cost an argon2 verification too, so that timing does not tell who exists.
    const ok = await verify(row?.password_hash ?? DUMMY_HASH, password).catch(() => false);
    if (!row || row.disabled_at) return undefined;
    if (!ok) return this.#failed(row);
    this.#db.sql.prepare('UPDATE users SET failures = 0, locked_until = NULL WHERE username = ?').run(username);
    return toUser(row);
  }

  /** A new TOTP secret for enrolment, not yet stored: its otpauth:// URI (the QR code's content) and the secret. */
  enrolment(username: string): { uri: string; secret: string } {
    const secret = new Secret({ size: 20 }).base32;
    return { uri: totpOf(username, secret).toString(), secret };
  }

  /** Completes enrolment when `code` is right for `secret`; the sealed secret is stored (and the code spent). */
  enrol(username: string, secret: string, code: string): boolean {
    const step = this.#step(username, secret, code);
    if (step === undefined) return false;
    this.#db.sql.prepare('UPDATE users SET totp_secret = ?, totp_step = ? WHERE username = ?').run(this.#box.seal(secret, `totp:${username}`), step, username);
    return true;
  }

  /** The time step `code` belongs to (this one, or one either side for clock drift); undefined when it is wrong. */
  #step(username: string, secret: string, code: string): number | undefined {
    const now = this.#now();
    const delta = totpOf(username, secret).validate({ token: code, window: 1, timestamp: now });
    return delta === null ? undefined : Math.floor(now / 30_000) + delta;
  }

  /** Checks a TOTP code of an enrolled user; wrong codes count towards the lockout as passwords do. */
  checkCode(username: string, code: string): User | 'locked' | undefined {
    const row = this.#row(username);
    if (!row || row.disabled_at || !row.totp_secret) return undefined;
    if (row.locked_until && row.locked_until > this.#now()) return 'locked';
    const secret = this.#box.open(row.totp_secret, `totp:${username}`);
    const step = this.#step(username, secret, code);
    // A code is good once: one of a step already used (this one or an earlier) is refused, so a
    // code seen over a shoulder or in a log cannot be replayed. See: RFC 6238 §5.2
    if (step === undefined || (row.totp_step !== null && step <= row.totp_step)) return this.#failed(row);
    this.#db.sql.prepare('UPDATE users SET failures = 0, totp_step = ? WHERE username = ?').run(step, username);
    return toUser(row);
  }

  #failed(row: UserRow): 'locked' | undefined {
    const failures = row.failures + 1;
    const lock = failures >= LOCKOUT.failures ? this.#now() + LOCKOUT.seconds * 1000 : null;
    this.#db.sql.prepare('UPDATE users SET failures = ?, locked_until = ? WHERE username = ?').run(lock ? 0 : failures, lock, row.username);
    return lock ? 'locked' : undefined;
  }

  #row(username: string): UserRow | undefined {
    return this.#db.sql.prepare('SELECT * FROM users WHERE username = ?').get(username) as UserRow | undefined;
  }
}

// An argon2id hash of a random password: what an unknown username is checked against.
const DUMMY_HASH = '$argon2id$v=19$m=19456,t=2,p=1$506BZMs04lQXP3e+JKUvtQ$XzN3Ayki6OEn3t1SebpWvT99Vz49KgNrNXorFo/h3AE';

function toUser(row: UserRow): User {
  return {
    username: row.username,
    role: row.role as UserRole,
    ...(row.fhir_user ? { fhirUser: row.fhir_user } : {}),
    mfaRequired: row.mfa_required === 1,
    mfaEnrolled: row.totp_secret !== null,
    disabled: row.disabled_at !== null,
  };
}
