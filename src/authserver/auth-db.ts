import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Adapter, AdapterPayload } from 'oidc-provider';

export const AUTH_FILE = 'auth.db';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS oidc (
  model TEXT NOT NULL,
  id TEXT NOT NULL,
  payload TEXT NOT NULL,
  expires_at INTEGER,
  grant_id TEXT,
  user_code TEXT,
  uid TEXT,
  PRIMARY KEY (model, id)
) STRICT;
CREATE INDEX IF NOT EXISTS oidc_grant ON oidc (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_uid ON oidc (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_user_code ON oidc (model, user_code) WHERE user_code IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
  username TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL,
  fhir_user TEXT,
  totp_secret TEXT,
  totp_step INTEGER,
  mfa_required INTEGER NOT NULL,
  failures INTEGER NOT NULL DEFAULT 0,
  locked_until INTEGER,
  created_at TEXT NOT NULL,
  disabled_at TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS grant_context (
  grant_id TEXT PRIMARY KEY,
  patient TEXT,
  encounter TEXT,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS launch_context (
  launch TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  patient TEXT NOT NULL,
  encounter TEXT,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS clients (
  client_id TEXT PRIMARY KEY,
  metadata TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT
) STRICT;
`;

/** A confidential client's secret at rest: sealed, in its metadata under this name (never `client_secret`). */
export const SEALED_SECRET = 'hearth_sealed_secret';

/** What opens sealed secrets (crypto/secret-box.ts, under the keyring). */
export interface Opener {
  open(sealed: string, context: string): string;
}

/** The context a client secret is sealed to: it cannot be moved to another client. */
export const clientSecretContext = (clientId: string) => `client:${clientId}`;

/** A registered client as operators see it. */
export interface RegisteredClient {
  readonly clientId: string;
  /** the client's metadata as oidc-provider takes it (RFC 7591 names) */
  readonly metadata: Record<string, unknown>;
  readonly createdAt: string;
  readonly revokedAt?: string;
}

/**
 * The authorization server's state in its own SQLite file beside the data (`auth.db`): the
 * registered clients (what `hearth clients` manages), and what oidc-provider keeps between
 * requests — the client assertions' `jti`s seen (replay detection), and, as grants are added,
 * codes, refresh tokens, sessions. Entries expire by their `expires_at`; expired ones are
 * never returned and are swept as new ones are written.
 */
export class AuthDb {
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  #writes = 0;
  #opener: Opener | undefined;

  constructor(dataDir: string, now: () => number = Date.now) {
    let path = ':memory:';
    if (dataDir !== ':memory:') {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      path = join(dataDir, AUTH_FILE);
    }
    this.#db = new DatabaseSync(path);
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
    // (one transaction: one sync for the whole schema, not one per statement)
    this.#db.exec(`BEGIN IMMEDIATE; ${SCHEMA} COMMIT;`);
    this.#now = now;
  }

  /** What the server opens confidential clients' secrets with when it looks a client up. */
  openSecretsWith(opener: Opener): void {
    this.#opener = opener;
  }

  /**
   * A client as oidc-provider takes it: its metadata, its secret opened (a secret that cannot be
   * opened — another keyring, altered — leaves the client unable to authenticate).
   */
  clientForProvider(clientId: string): AdapterPayload | undefined {
    const c = this.client(clientId);
    if (!c || c.revokedAt) return undefined;
    const { [SEALED_SECRET]: sealed, ...metadata } = c.metadata;
    let secret: string | undefined;
    if (typeof sealed === 'string') {
      try {
        secret = this.#opener?.open(sealed, clientSecretContext(clientId));
      } catch {
        secret = undefined;
      }
      if (secret === undefined) return undefined;
    }
    return { ...metadata, client_id: clientId, ...(secret ? { client_secret: secret } : {}) } as AdapterPayload;
  }

  /** The connection, for the stores over this file (users.ts). */
  get sql(): DatabaseSync {
    return this.#db;
  }

  /** oidc-provider's adapter for `model` (Session, AuthorizationCode, ReplayDetection, ...); Client reads the registered clients. */
  adapter(model: string): Adapter {
    if (model === 'Client') return new ClientAdapter(this);
    return new ModelAdapter(this, model);
  }

  addClient(clientId: string, metadata: Record<string, unknown>): void {
    this.#db.prepare('INSERT INTO clients (client_id, metadata, created_at) VALUES (?, ?, ?)').run(clientId, JSON.stringify(metadata), new Date(this.#now()).toISOString());
  }

  /** A client's registration, revoked or not; undefined when there is none. */
  client(clientId: string): RegisteredClient | undefined {
    const row = this.#db.prepare('SELECT client_id, metadata, created_at, revoked_at FROM clients WHERE client_id = ?').get(clientId) as ClientRow | undefined;
    return row && toClient(row);
  }

  clients(): RegisteredClient[] {
    return (this.#db.prepare('SELECT client_id, metadata, created_at, revoked_at FROM clients ORDER BY client_id').all() as unknown as ClientRow[]).map(toClient);
  }

  /** Revokes a client: it can no longer authenticate. False when there is no such client (or it was revoked already). */
  revokeClient(clientId: string): boolean {
    const r = this.#db.prepare('UPDATE clients SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL').run(new Date(this.#now()).toISOString(), clientId);
    return r.changes > 0;
  }

  /** The launch context a grant was given (the patient picked at consent), kept as long as the grant may be used. */
  setGrantContext(grantId: string, context: { patient?: string; encounter?: string }, ttlSeconds = 30 * 24 * 3600): void {
    this.#db
      .prepare('INSERT OR REPLACE INTO grant_context (grant_id, patient, encounter, expires_at) VALUES (?, ?, ?, ?)')
      .run(grantId, context.patient ?? null, context.encounter ?? null, this.#now() + ttlSeconds * 1000);
  }

  grantContext(grantId: string): { patient?: string; encounter?: string } | undefined {
    const row = this.#db.prepare('SELECT patient, encounter FROM grant_context WHERE grant_id = ? AND expires_at > ?').get(grantId, this.#now()) as
      | { patient: string | null; encounter: string | null }
      | undefined;
    return row && { ...(row.patient ? { patient: row.patient } : {}), ...(row.encounter ? { encounter: row.encounter } : {}) };
  }

  /** An EHR's launch context (an opaque `launch` value → patient, encounter), for `ttlSeconds`. */
  setLaunch(launch: string, context: { clientId: string; patient: string; encounter?: string }, ttlSeconds: number): void {
    this.#db
      .prepare('INSERT INTO launch_context (launch, client_id, patient, encounter, expires_at) VALUES (?, ?, ?, ?, ?)')
      .run(launch, context.clientId, context.patient, context.encounter ?? null, this.#now() + ttlSeconds * 1000);
  }

  launch(launch: string): { patient: string; encounter?: string } | undefined {
    const row = this.#db.prepare('SELECT patient, encounter FROM launch_context WHERE launch = ? AND expires_at > ?').get(launch, this.#now()) as
      | { patient: string; encounter: string | null }
      | undefined;
    return row && { patient: row.patient, ...(row.encounter ? { encounter: row.encounter } : {}) };
  }

  get(model: string, id: string): AdapterPayload | undefined {
    const row = this.#db.prepare('SELECT payload, expires_at FROM oidc WHERE model = ? AND id = ?').get(model, id) as { payload: string; expires_at: number | null } | undefined;
    if (!row || (row.expires_at !== null && row.expires_at <= this.#now())) return undefined;
    return JSON.parse(row.payload) as AdapterPayload;
  }

  getBy(model: string, column: 'uid' | 'user_code', value: string): AdapterPayload | undefined {
    const row = this.#db.prepare(`SELECT id FROM oidc WHERE model = ? AND ${column} = ?`).get(model, value) as { id: string } | undefined;
    return row && this.get(model, row.id);
  }

  put(model: string, id: string, payload: AdapterPayload, expiresIn: number | undefined): void {
    const expiresAt = expiresIn ? this.#now() + expiresIn * 1000 : null;
    this.#db
      .prepare('INSERT OR REPLACE INTO oidc (model, id, payload, expires_at, grant_id, user_code, uid) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(model, id, JSON.stringify(payload), expiresAt, payload.grantId ?? null, payload.userCode ?? null, payload.uid ?? null);
    // Expired entries go now and then, so that the file does not grow with every request.
    if (++this.#writes % 1000 === 0) this.#db.prepare('DELETE FROM oidc WHERE expires_at IS NOT NULL AND expires_at <= ?').run(this.#now());
  }

  consume(model: string, id: string): void {
    // (marked used, its expiry unchanged: a consumed code presented again is how reuse is seen)
    this.#db.prepare('UPDATE oidc SET payload = json_set(payload, \'$.consumed\', ?) WHERE model = ? AND id = ?').run(Math.floor(this.#now() / 1000), model, id);
  }

  delete(model: string, id: string): void {
    this.#db.prepare('DELETE FROM oidc WHERE model = ? AND id = ?').run(model, id);
  }

  deleteGrant(grantId: string): void {
    this.#db.prepare('DELETE FROM oidc WHERE grant_id = ?').run(grantId);
  }

  close(): void {
    this.#db.close();
  }
}

interface ClientRow {
  client_id: string;
  metadata: string;
  created_at: string;
  revoked_at: string | null;
}

function toClient(row: ClientRow): RegisteredClient {
  return {
    clientId: row.client_id,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    createdAt: row.created_at,
    ...(row.revoked_at ? { revokedAt: row.revoked_at } : {}),
  };
}

class ModelAdapter implements Adapter {
  readonly #db: AuthDb;
  readonly #model: string;

  constructor(db: AuthDb, model: string) {
    this.#db = db;
    this.#model = model;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    this.#db.put(this.#model, id, payload, expiresIn);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#db.get(this.#model, id);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#db.getBy(this.#model, 'user_code', userCode);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#db.getBy(this.#model, 'uid', uid);
  }

  async consume(id: string): Promise<void> {
    this.#db.consume(this.#model, id);
  }

  async destroy(id: string): Promise<void> {
    this.#db.delete(this.#model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    this.#db.deleteGrant(grantId);
  }
}

/** Clients are what operators registered (`hearth clients add`); a revoked one is unknown. */
class ClientAdapter implements Adapter {
  readonly #db: AuthDb;

  constructor(db: AuthDb) {
    this.#db = db;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#db.clientForProvider(id);
  }

  async upsert(): Promise<void> {
    throw new Error('clients are registered with `hearth clients add`');
  }

  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async findByUid(): Promise<undefined> {
    return undefined;
  }

  async consume(): Promise<void> {}

  async destroy(): Promise<void> {}

  async revokeByGrantId(): Promise<void> {}
}
