// The one composition root: everything the server, the audit writer thread and the operator
// commands need, built from the configuration. The only module that names a storage adapter.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AuditSink, type AuditWriter, auditAppendOf, storeWriter } from './audit/audit-sink.ts';
import { recoverAttempts } from './audit/recovery.ts';
import type { CheckpointSigner } from './audit/audit-store.ts';
import { checkpointSigner, loadSigningKey } from './audit/signing-key.ts';
import { openWitness, witnessed } from './audit/witness.ts';
import { loadCompartments, type Policy } from './auth/authorize.ts';
import { loadRoles } from './auth/roles.ts';
import { JwtVerifier, type TokenVerifier } from './auth/token-verifier.ts';
import { type Config, ConfigError } from './config/config.ts';
import { BlindIndex } from './crypto/blind-index.ts';
import { type KeyProvider, KeyringError, LocalKeyring } from './crypto/keyring.ts';
import { loadProtectionPolicy } from './crypto/protection.ts';
import { type FhirModel, loadFhirModel } from './fhir/definitions.ts';
import { ResourceValidator } from './fhir/validator.ts';
import { FhirRepository } from './rest/repository.ts';
import { EncryptingStore } from './store/encrypting-store.ts';
import type { Storage } from './store/port.ts';
import type { ResourceStore } from './store/resource-store.ts';
import { SqliteStore } from './store/sqlite/sqlite-store.ts';
import { WorkerAuditWriter } from './store/sqlite/worker-audit-writer.ts';

export interface ServiceDeps {
  /** The storage; the embedded SQLite store under config.dataDir when absent. */
  readonly storage?: Storage;
  readonly clock?: () => Date;
  /** Key-encryption and blind-index keys; the configured keyring when absent. */
  readonly keys?: KeyProvider;
  /**
   * Where audit facts go; by default they become chained AuditEvents in the audit store. Only
   * benchmarks replace it (to measure what the trail costs); no configuration reaches it.
   */
  readonly auditWriter?: AuditWriter;
  /** Commit AuditEvents on the request thread even for a file-backed store (tests that wrap the audit store). */
  readonly auditInPlace?: boolean;
  /** Token verification; a JwtVerifier over config.auth.issuers when absent. */
  readonly verifier?: TokenVerifier;
}

export interface Services {
  readonly config: Config;
  readonly clock: () => Date;
  readonly model: FhirModel;
  readonly storage: Storage;
  readonly keys: KeyProvider;
  /** resources, encrypted before they reach the storage */
  readonly store: ResourceStore;
  readonly sink: AuditSink;
  readonly verifier: TokenVerifier;
  readonly policy: Policy;
  readonly repository: FhirRepository;
  /** Start-up recovery: an outcome for every write-ahead attempt a crash left without one. */
  recover(): Promise<number>;
  /** Drains the audit sink, stops the audit writer thread, closes the storage. */
  close(): Promise<void>;
}

interface Definitions {
  readonly model: FhirModel;
  readonly validator: ResourceValidator;
}

const definitions = new Map<boolean, Definitions>();

/** Loads the FHIR definitions and compiles the schema once per process (they are immutable). */
export function loadDefinitions(updateCreate: boolean): Definitions {
  let d = definitions.get(updateCreate);
  if (!d) {
    const model = loadFhirModel({ updateCreate });
    d = { model, validator: new ResourceValidator(model) };
    definitions.set(updateCreate, d);
  }
  return d;
}

/** The storage the configuration names: today the embedded SQLite store under the data directory. */
export function openStorage(config: Config, clock?: () => Date): Storage {
  return new SqliteStore({ dataDir: config.dataDir, clock }).storage();
}

/** The configured storage for an operator command, or undefined when no database exists yet. */
export function existingStorage(config: Config): Storage | undefined {
  return existsSync(join(config.dataDir, 'hearth.db')) ? openStorage(config) : undefined;
}

/** The keyring of the configuration; a keyring problem stops the start like a configuration mistake. */
export function openKeyring(config: Config, mayCreate: boolean): LocalKeyring {
  try {
    return config.keyring.kind === 'env' ? LocalKeyring.fromJson(config.keyring.json) : LocalKeyring.open(config.keyring.path, mayCreate);
  } catch (err) {
    if (err instanceof KeyringError) {
      throw new ConfigError([{ name: config.keyring.kind === 'env' ? 'HEARTH_KEYRING' : 'HEARTH_KEYRING_FILE', message: err.message }]);
    }
    throw err;
  }
}

/** The signer of the audit chain's heads: the configured signing key (created on first use). */
export function auditSigner(config: Config, clock: () => Date): CheckpointSigner {
  return checkpointSigner(loadSigningKey(config.audit.signingKey), clock);
}

export function createServices(config: Config, deps: ServiceDeps = {}): Services {
  const clock = deps.clock ?? (() => new Date());
  const { model, validator } = loadDefinitions(config.updateCreate);
  const storage = deps.storage ?? openStorage(config, clock);
  const keys = deps.keys ?? openKeyring(config, !storage.hasResources());
  const protection = loadProtectionPolicy(model, config.protectionFile);
  const store = new EncryptingStore(storage.resources, keys, protection, new BlindIndex(keys.indexKey(), protection));
  // The signing key is created (or its permissions checked) at start, whichever thread signs.
  const sign = auditSigner(config, clock);
  // A file-backed embedded store gets its audit commits on a thread of their own (see
  // audit-worker.ts); an in-memory store is written in place.
  const file = storage.capabilities.adapter === 'sqlite' ? storage.capabilities.file : undefined;
  const worker =
    !deps.auditWriter && !deps.auditInPlace && file
      ? new WorkerAuditWriter({
          dbPath: file,
          dataDir: config.dataDir,
          baseUrl: config.baseUrl,
          audit: config.audit,
          keyring: config.keyring,
        })
      : undefined;
  // In place (no writer thread), the heads are published from here.
  const witness = worker || deps.auditWriter ? undefined : openWitness(config.audit.witness);
  const sink = new AuditSink(deps.auditWriter ?? worker?.write ?? storeWriter(storage.audit, model, config.baseUrl, keys, sign, witness));
  const verifier = deps.verifier ?? new JwtVerifier(config.auth, config.baseUrl, clock);
  const policy = buildPolicy(config, model);
  const repository = new FhirRepository({
    model,
    validator,
    store,
    baseUrl: config.baseUrl,
    maxIncludes: config.search.maxCount,
    compartments: policy.compartments,
  });
  return {
    config,
    clock,
    model,
    storage,
    keys,
    store,
    sink,
    verifier,
    policy,
    repository,
    async recover() {
      const appendOf = auditAppendOf(model, config.baseUrl, keys);
      return recoverAttempts({
        audit: storage.audit,
        writtenBy: (id) => storage.resources.writtenBy(id),
        append: async (events) => {
          // With a writer thread, the witness is the thread's; recovery publishes through its own.
          const own = witness ? undefined : openWitness(config.audit.witness);
          try {
            const w = witnessed(sign, witness ?? own);
            await storage.audit.appendAudit(events.map((e) => appendOf(e)), w.sign);
            w.published();
          } finally {
            own?.close();
          }
        },
        clock,
      });
    },
    async close() {
      await sink.drain();
      await worker?.close();
      witness?.close();
      await store.close();
    },
  };
}

function buildPolicy(config: Config, model: FhirModel): Policy {
  const relationshipParam = config.auth.relationshipParam;
  const def = model.types.get('Patient')?.params.get(relationshipParam);
  if (config.auth.relationship && def?.type !== 'reference') {
    throw new ConfigError([
      { name: 'HEARTH_AUTH_RELATIONSHIP_PARAM', message: `"${relationshipParam}" is not a reference search parameter of Patient` },
    ]);
  }
  return {
    model,
    roles: loadRoles(),
    baseUrl: config.baseUrl,
    compartments: loadCompartments(),
    relationship: config.auth.relationship ? { param: relationshipParam } : undefined,
  };
}
