import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { FhirError } from '../fhir/errors.ts';
import { parseStored } from '../fhir/json.ts';
import type { KeyProvider } from './keyring.ts';

/** Where a sealed resource keeps its envelope. The name cannot collide with a FHIR element. */
export const ENVELOPE = '_hearthEnvelope';
/** Where a stored body names the key-encryption key of its data key: what key maintenance selects on. */
export const KEK_ID_PATH = [ENVELOPE, 'kek'] as const;

export interface Envelope {
  /**
   * 3 since 2026-12-02: as 2, under a data key the versions one store transaction wrote share
   * (`key`). 2 since 2026-12-01: every protected element in one sealed document, under the
   * version's own data key. 1 (still read): one sealed value per element.
   */
  readonly v: 1 | 2 | 3;
  /** id of the KEK that wrapped the data key */
  readonly kek: string;
  /** version 3: the shared data key's id (random, 128 bits), which its wrapping binds instead of a version */
  readonly key?: string;
  /** the data key, wrapped: base64(nonce | ciphertext | tag) */
  readonly dek: string;
  /** versions 2 and 3: base64(nonce | ciphertext | tag) of the JSON object {element path: value} of every protected element */
  readonly c?: string;
  /** version 1: protected element path → base64(nonce | ciphertext | tag) of its JSON */
  readonly f?: Record<string, string>;
}

/**
 * A data key for the versions of one store transaction (envelope version 3): drawn and wrapped
 * once, so that each version costs one AES-GCM operation, not two, and reading them back
 * unwraps it once (the unwrapped-key cache holds it by its wrapped form).
 */
export interface SharedDataKey {
  readonly id: string;
  readonly kek: string;
  readonly key: KeyObject;
  /** wrapped under `kek`, AAD `key/<id>#dek#<kek>` */
  readonly dek: string;
}

/** The AAD a shared data key is wrapped with: its id and the KEK's, no record (each version's own seal binds that). */
const sharedKeyAad = (id: string, kek: string) => `key/${id}#dek#${kek}`;

/**
 * A fresh data key to share among the versions of one transaction, wrapped by the current KEK.
 * Sharing is sound under AES-GCM with random 96-bit nonces up to 2^32 seals a key (NIST SP
 * 800-38D §8.3); a transaction has at most HEARTH_BUNDLE_MAX_ENTRIES (≤ 100,000) versions.
 */
export function sharedDataKey(keys: KeyProvider): SharedDataKey {
  const random = randomBytes(32 + 16 + 12);
  const raw = random.subarray(0, 32);
  const id = random.subarray(32, 48).toString('base64url');
  const kek = keys.currentKekId();
  const dek = seal(keys.kek(kek), raw, sharedKeyAad(id, kek), random.subarray(48, 60));
  const key = createSecretKey(raw);
  random.fill(0, 0, 32);
  return { id, kek, key, dek };
}

type Json = Record<string, unknown>;

/** Tampered, moved or undecryptable data: a server fault the client sees as a generic 500, recorded as a security issue. */
export function integrityFailure(what: string): FhirError {
  return new FhirError('HEARTH_INTEGRITY', { code: 'security', diagnostics: `integrity failure: ${what}` });
}

function seal(key: Parameters<typeof createCipheriv>[1], plaintext: Buffer, aad: string, iv: Buffer = randomBytes(12)): string {
  // AES-256-GCM with a fresh 96-bit nonce for every value. See: NIST SP 800-38D §8.2.2 (random IVs)
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = cipher.update(plaintext);
  const last = cipher.final();
  return Buffer.concat([iv, ct, last, cipher.getAuthTag()]).toString('base64');
}

function open(key: Parameters<typeof createDecipheriv>[1], sealed: string, aad: string): Buffer {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < 28) throw new Error('too short');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
}

/** The keys of `node` that a protected element name stands for: itself, its choice variants, their `_` twins. */
function keysFor(node: Json, element: string): string[] {
  const out: string[] = [];
  for (const k of Object.keys(node)) {
    const from = k.charCodeAt(0) === 95 /* _ */ ? 1 : 0;
    if (!k.startsWith(element, from)) continue;
    const next = k.charCodeAt(from + element.length);
    // the element itself, or a choice variant (`valueQuantity`: an upper-case letter follows)
    if (Number.isNaN(next) || (next >= 65 && next <= 90)) out.push(k);
  }
  return out;
}

const SPLIT = new WeakMap<readonly string[], [string, string | undefined][]>();

/** A policy's paths as [element, child element], split once. */
function split(paths: readonly string[]): [string, string | undefined][] {
  let parts = SPLIT.get(paths);
  if (!parts) {
    parts = paths.map((p) => {
      const [head, child] = p.split('.');
      return [head, child];
    });
    SPLIT.set(paths, parts);
  }
  return parts;
}

/**
 * [path, parent, key] of every protected value in `resource` for the policy's paths. With `copy`,
 * the parents are fresh copies put in place of the originals in `resource` (itself a copy), so
 * that removing the values leaves the caller's document as it was.
 */
function locate(resource: Json, paths: readonly string[], copy = false): [string, Json, string][] {
  const out: [string, Json, string][] = [];
  for (const [head, child] of split(paths)) {
    if (!child) {
      for (const k of keysFor(resource, head)) out.push([k, resource, k]);
      continue;
    }
    let list = resource[head];
    if (!Array.isArray(list)) continue;
    if (copy) {
      list = list.map((item) => (item && typeof item === 'object' && !Array.isArray(item) && keysFor(item as Json, child).length > 0 ? { ...item } : item));
      resource[head] = list;
    }
    (list as unknown[]).forEach((item, i) => {
      if (item && typeof item === 'object') for (const k of keysFor(item as Json, child)) out.push([`${head}.${i}.${k}`, item as Json, k]);
    });
  }
  return out;
}

/**
 * Envelope encryption of one resource version: a fresh 256-bit data key (or `shared`, the one
 * its transaction's versions share); the protected elements taken out and sealed under it
 * together, as one JSON object {path: value}, with AAD binding type, id and version (so the
 * ciphertext cannot be moved to another record or version); the data key wrapped by the current
 * KEK with AAD binding the same version (a shared key: its own id). One seal for all of them:
 * each AES-GCM operation costs ~9 µs in Node whatever its size, and a Patient has up to eight
 * protected elements. Returns a new object (sharing what it does not change with the input), or
 * the input itself when it holds nothing to seal; the input is never changed.
 */
export function sealResource(
  keys: KeyProvider,
  paths: readonly string[],
  type: string,
  id: string,
  version: number,
  resource: Json,
  kekId?: string,
  shared?: SharedDataKey,
): Json {
  // Nothing to protect (an AuditEvent of a read has no query): the input as it is, uncopied.
  if (locate(resource, paths).length === 0) return resource;
  const out: Json = { ...resource };
  const elements: Json = {};
  for (const [path, parent, key] of locate(out, paths, true)) {
    elements[path] = parent[key];
    delete parent[key];
  }
  const where = `${type}/${id}/_history/${version}`;
  const plaintext = Buffer.from(JSON.stringify(elements), 'utf8');
  if (shared) {
    out[ENVELOPE] = { v: 3, kek: shared.kek, key: shared.id, dek: shared.dek, c: seal(shared.key, plaintext, `${where}#v3`) } satisfies Envelope;
    return out;
  }
  // The data key and both nonces from one draw of the CSPRNG.
  const random = randomBytes(32 + 12 + 12);
  const dekRaw = random.subarray(0, 32);
  const kek = kekId ?? keys.currentKekId();
  const c = seal(createSecretKey(dekRaw), plaintext, `${where}#v2`, random.subarray(32, 44));
  const envelope: Envelope = { v: 2, kek, dek: seal(keys.kek(kek), dekRaw, `${where}#dek#${kek}`, random.subarray(44, 56)), c };
  random.fill(0, 0, 32);
  out[ENVELOPE] = envelope;
  return out;
}

/** Puts a decrypted element back at its path (`name`, or `component.0.valueQuantity`), copying what it changes. */
function restore(out: Json, path: string, value: unknown): void {
  const parts = path.split('.');
  if (parts.length === 1) {
    out[parts[0]] = value;
    return;
  }
  const list = (out[parts[0]] as Json[]).map((x) => ({ ...x }));
  out[parts[0]] = list;
  list[Number(parts[1])][parts[2]] = value;
}

/** The AAD an envelope's data key is wrapped with: the version's record, or (version 3) the shared key's id. */
function wrapAad(envelope: Envelope, where: string, kek = envelope.kek): string {
  if (envelope.v !== 3) return `${where}#dek#${kek}`;
  if (typeof envelope.key !== 'string' || envelope.key.length === 0) throw new Error('no data key id');
  return sharedKeyAad(envelope.key, kek);
}

/** How many unwrapped data keys each KEK keeps, at most (the least recently used go first). */
const UNWRAPPED_MAX = 4096;
/** Data keys unwrapped lately, per KEK object (a reloaded or another keyring starts afresh), by AAD and wrapped key. */
const unwrappedBy = new WeakMap<KeyObject, Map<string, KeyObject>>();

/**
 * The data key of an envelope. Unwrapping is deterministic (the same wrapped key, AAD and KEK
 * give the same key or the same failure), so a key unwrapped before is taken from a bounded
 * cache: a version read again costs one AES-GCM operation, not two. The cache holds nothing the
 * process does not already hold (the KEKs that unwrap them are in memory too), and it is keyed
 * by the whole wrapped key and its AAD (record, version, KEK id), so a wrapped key moved or
 * edited misses it and fails to unwrap as before.
 */
function dataKey(keys: KeyProvider, envelope: Envelope, where: string): KeyObject {
  const kek = keys.kek(envelope.kek);
  const aad = wrapAad(envelope, where);
  const id = `${aad}\n${envelope.dek}`;
  let cache = unwrappedBy.get(kek);
  const known = cache?.get(id);
  if (cache && known) {
    cache.delete(id);
    cache.set(id, known);
    return known;
  }
  const raw = open(kek, envelope.dek, aad);
  const dek = createSecretKey(raw);
  raw.fill(0);
  if (!cache) unwrappedBy.set(kek, (cache = new Map()));
  cache.set(id, dek);
  if (cache.size > UNWRAPPED_MAX) cache.delete(cache.keys().next().value!);
  return dek;
}

/** The inverse of sealResource; any failure (wrong key, tampered or moved ciphertext) is an integrity failure. */
export function openResource(keys: KeyProvider, type: string, id: string, version: number, stored: Json): Json {
  const envelope = stored[ENVELOPE] as Envelope | undefined;
  if (!envelope) return stored;
  const out: Json = { ...stored };
  delete out[ENVELOPE];
  const where = `${type}/${id}/_history/${version}`;
  try {
    if (envelope.v !== 1 && envelope.v !== 2 && envelope.v !== 3) throw new Error('unknown envelope version');
    const dek = dataKey(keys, envelope, where);
    if (envelope.v !== 1) {
      if (typeof envelope.c !== 'string') throw new Error('no sealed elements');
      const elements = parseStored(open(dek, envelope.c, `${where}#v${envelope.v}`).toString('utf8')) as Json;
      for (const [path, value] of Object.entries(elements)) restore(out, path, value);
    } else {
      if (!envelope.f || Object.keys(envelope.f).length === 0) throw new Error('no sealed elements');
      for (const [path, sealed] of Object.entries(envelope.f)) restore(out, path, parseStored(open(dek, sealed, `${where}#${path}`).toString('utf8')));
    }
  } catch {
    throw integrityFailure(`${type}/${id} version ${version} cannot be decrypted`);
  }
  return out;
}

/**
 * Shared data keys re-wrapped lately, per KEK object they were re-wrapped under (another keyring
 * starts afresh), so that the versions sharing one keep sharing its one wrapped form.
 */
const REWRAPPED_MAX = 1024;
const rewrappedUnder = new WeakMap<KeyObject, Map<string, string>>();

/** Re-wraps the data key of a stored version under the current KEK; undefined when already current. */
export function rewrapResource(keys: KeyProvider, type: string, id: string, version: number, stored: Json): Json | undefined {
  const envelope = stored[ENVELOPE] as Envelope | undefined;
  const current = keys.currentKekId();
  if (!envelope || envelope.kek === current) return undefined;
  const where = `${type}/${id}/_history/${version}`;
  // (the same plaintext key and AAD under the same KEK: one wrapping serves every version that shares it)
  const currentKek = keys.kek(current);
  let rewrapped = rewrappedUnder.get(currentKek);
  if (!rewrapped) rewrappedUnder.set(currentKek, (rewrapped = new Map()));
  const memo = envelope.v === 3 ? `${envelope.kek}\n${envelope.key}\n${envelope.dek}` : undefined;
  let dek = memo === undefined ? undefined : rewrapped.get(memo);
  if (dek === undefined) {
    let dekRaw: Buffer;
    try {
      dekRaw = open(keys.kek(envelope.kek), envelope.dek, wrapAad(envelope, where));
    } catch {
      throw integrityFailure(`${type}/${id} version ${version}: data key cannot be unwrapped`);
    }
    dek = seal(currentKek, dekRaw, wrapAad(envelope, where, current));
    dekRaw.fill(0);
    if (memo !== undefined) {
      rewrapped.set(memo, dek);
      if (rewrapped.size > REWRAPPED_MAX) rewrapped.delete(rewrapped.keys().next().value!);
    }
  }
  const next: Envelope = { ...envelope, kek: current, dek };
  return { ...stored, [ENVELOPE]: next };
}
