import { createSecretKey, hkdfSync, type KeyObject, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The KeyProvider port: key-encryption keys (versioned; one current) that wrap per-version data
 * keys, and the separate key of the blind indexes. A local keyring file is the default; a cloud
 * KMS adapter implements the same calls (docs/encryption.md).
 */
export interface KeyProvider {
  /** id of the KEK that wraps new data keys, e.g. "local:3" */
  currentKekId(): string;
  /** the KEK for an id; throws when unknown (fail closed) */
  kek(id: string): KeyObject;
  /** the HMAC key of the blind indexes (never rotated by `keys rotate`) */
  indexKey(): KeyObject;
  /**
   * The shortest prefix of a protected string its blind index holds: 1 for keyrings made since
   * short prefixes (`Il`, `NY`) are indexed, 3 for older ones, whose stored entries start at 3
   * characters (a shorter search there goes to bounded decryption).
   */
  indexPrefixFrom(): number;
}

/** What a keyring made before short prefixes were indexed holds from (its entries start there). */
export const LEGACY_PREFIX_FROM = 3;

/**
 * The KEK id of the audit trail's own key. AuditEvents are append-only and hash-chained, so their
 * data keys can never be re-wrapped; they are wrapped by a key that `keys rotate` does not touch,
 * derived from the index key (HKDF-SHA256, its own label), so there is no more material to keep.
 */
export const AUDIT_KEK = 'audit:1';

/**
 * The KEK id of the authorization server's secrets at rest (users' TOTP secrets): derived the
 * same way under its own label, so that they need no re-wrapping when `keys rotate` runs.
 */
export const AUTH_KEK = 'auth:1';

interface KeyringFile {
  readonly version: 1;
  current: number;
  keks: Record<string, string>;
  retired: number[];
  index: string;
  /** the shortest indexed prefix (absent in keyrings older than short prefixes: LEGACY_PREFIX_FROM) */
  prefixFrom?: number;
}

export class KeyringError extends Error {}

const b64 = (n: number) => randomBytes(n).toString('base64');

/** A keyring held in a JSON file with owner-only permissions, or given whole in the environment. */
export class LocalKeyring implements KeyProvider {
  #data: KeyringFile;
  #keks = new Map<string, KeyObject>();
  #index: KeyObject;
  #auditKey: KeyObject;
  #authKey: KeyObject;
  readonly path?: string;
  #mtime = 0;
  #checked = 0;

  private constructor(data: KeyringFile, path?: string) {
    this.#data = data;
    this.path = path;
    if (path) this.#mtime = statSync(path).mtimeMs;
    this.#index = this.#load(data);
    this.#auditKey = createSecretKey(Buffer.from(hkdfSync('sha256', Buffer.from(data.index, 'base64'), Buffer.alloc(0), 'hearth audit query key', 32)));
    this.#authKey = createSecretKey(Buffer.from(hkdfSync('sha256', Buffer.from(data.index, 'base64'), Buffer.alloc(0), 'hearth auth secret key', 32)));
  }

  #load(data: KeyringFile): KeyObject {
    const keks = new Map<string, KeyObject>();
    for (const [v, k] of Object.entries(data.keks)) {
      const raw = Buffer.from(k, 'base64');
      if (raw.length !== 32) throw new KeyringError(`keyring: key-encryption key ${v} is not 256 bits`);
      keks.set(`local:${v}`, createSecretKey(raw));
    }
    if (!data.keks[String(data.current)]) throw new KeyringError(`keyring: the current key version ${data.current} is missing`);
    const index = Buffer.from(data.index, 'base64');
    if (index.length !== 32) throw new KeyringError('keyring: the blind-index key is not 256 bits');
    const from = data.prefixFrom;
    if (from !== undefined && (!Number.isInteger(from) || from < 1 || from > LEGACY_PREFIX_FROM)) {
      throw new KeyringError(`keyring: prefixFrom must be an integer from 1 to ${LEGACY_PREFIX_FROM}`);
    }
    this.#keks = keks;
    return createSecretKey(index);
  }

  /**
   * A running server picks up `hearth keys rotate` without a restart: the file is looked at (at
   * most once a second) and reloaded when it changed. The blind-index key never changes.
   */
  #refresh(force = false): void {
    if (!this.path) return;
    const now = Date.now();
    if (!force && now - this.#checked < 1000) return;
    this.#checked = now;
    const mtime = statSync(this.path).mtimeMs;
    if (mtime === this.#mtime) return;
    const data = JSON.parse(readFileSync(this.path, 'utf8')) as KeyringFile;
    if (data.index !== this.#data.index || data.prefixFrom !== this.#data.prefixFrom) {
      throw new KeyringError('keyring: the blind index (its key or prefixFrom) changed; refusing to reload');
    }
    this.#load(data);
    this.#data = data;
    this.#mtime = mtime;
  }

  /**
   * Opens the keyring file, creating it on first start when `mayCreate` (no data exists yet).
   * Refuses a file others can read, and a missing file when data already exists.
   */
  static open(path: string, mayCreate: boolean): LocalKeyring {
    if (!existsSync(path)) {
      if (!mayCreate) {
        throw new KeyringError(`keyring ${path} is missing but encrypted data exists: restore the keyring (it cannot be recreated)`);
      }
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const data: KeyringFile = { version: 1, current: 1, keks: { 1: b64(32) }, retired: [], index: b64(32), prefixFrom: 1 };
      writeFileSync(path, JSON.stringify(data, null, 1), { mode: 0o600, flag: 'wx' });
    }
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) throw new KeyringError(`keyring ${path} is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
    let data: KeyringFile;
    try {
      data = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      throw new KeyringError(`keyring ${path} is not valid JSON`);
    }
    return new LocalKeyring(data, path);
  }

  /** From HEARTH_KEYRING: the same JSON, for deployments that inject secrets as environment variables. */
  static fromJson(json: string): LocalKeyring {
    try {
      return new LocalKeyring(JSON.parse(json));
    } catch (err) {
      if (err instanceof KeyringError) throw err;
      throw new KeyringError('HEARTH_KEYRING is not a keyring JSON document');
    }
  }

  currentKekId(): string {
    this.#refresh();
    return `local:${this.#data.current}`;
  }

  kek(id: string): KeyObject {
    if (id === AUDIT_KEK) return this.#auditKey;
    if (id === AUTH_KEK) return this.#authKey;
    let k = this.#keks.get(id);
    if (!k) {
      this.#refresh(true);
      k = this.#keks.get(id);
    }
    if (!k) throw new KeyringError(`unknown key-encryption key ${id}`);
    return k;
  }

  indexKey(): KeyObject {
    return this.#index;
  }

  indexPrefixFrom(): number {
    return this.#data.prefixFrom ?? LEGACY_PREFIX_FROM;
  }

  versions(): { version: number; current: boolean; retired: boolean }[] {
    const all = new Set([...Object.keys(this.#data.keks).map(Number), ...this.#data.retired]);
    return [...all]
      .sort((a, b) => a - b)
      .map((v) => ({ version: v, current: v === this.#data.current, retired: this.#data.retired.includes(v) }));
  }

  /** Adds a new KEK version and makes it current (new writes use it at once after a restart or reload). */
  rotate(): number {
    const next = Math.max(0, ...Object.keys(this.#data.keks).map(Number), ...this.#data.retired) + 1;
    this.#data.keks[String(next)] = b64(32);
    this.#data.current = next;
    this.#save();
    return next;
  }

  /** Removes a KEK version for good. The caller has checked that nothing uses it. */
  retire(version: number): void {
    if (version === this.#data.current) throw new KeyringError(`key version ${version} is current: rotate first`);
    if (!this.#data.keks[String(version)]) throw new KeyringError(`key version ${version} is not in the keyring`);
    delete this.#data.keks[String(version)];
    this.#data.retired.push(version);
    this.#save();
  }

  #save(): void {
    if (!this.path) throw new KeyringError('a keyring from HEARTH_KEYRING cannot be changed here; update the secret instead');
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#data, null, 1), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
    this.#load(this.#data);
    this.#mtime = statSync(this.path).mtimeMs;
  }
}
