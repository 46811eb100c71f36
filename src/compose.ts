// The one composition root: everything the server, the audit writer thread and the operator
// commands need, built from the configuration. With store/open.ts (the part that opens the
// storage, which operator commands' threads load alone), the only module that names a storage adapter.
import { AuditSink, type AuditWriter, auditAppendOf, signedAppend, storeWriter } from './audit/audit-sink.ts';
import { AuditIndexer, indexingFailed } from './audit/indexer.ts';
import { AuditProgress } from './audit/progress.ts';
import { recoverAttempts } from './audit/recovery.ts';
import { auditSigner } from './audit/signing-key.ts';
import { openWitness } from './audit/witness.ts';
import type { AuditFacts } from './audit/audit-event.ts';
import { loadCompartments, type Policy, type Principal } from './auth/authorize.ts';
import { loadRoles } from './auth/roles.ts';
import { parseScopes } from './auth/scopes.ts';
import { JwtVerifier, type TokenVerifier } from './auth/token-verifier.ts';
import type { LoginEvent, PatientList } from './authserver/interactions.ts';
import type { User } from './authserver/users.ts';
import type { SearchQuery } from './fhir/query.ts';
import { decideRoute } from './rest/routes.ts';
import { type AuthEvent, authIssuer, type AuthServer, createAuthServer } from './authserver/provider.ts';
import { secretBox } from './crypto/secret-box.ts';
import { type Config, ConfigError } from './config/config.ts';
import { BlindIndex, protectedSearchDocumentation } from './crypto/blind-index.ts';
import { type KeyProvider, KeyringError, LocalKeyring } from './crypto/keyring.ts';
import { loadProtectionPolicy } from './crypto/protection.ts';
import { type FhirModel, loadFhirModel } from './fhir/definitions.ts';
import { ResourceValidator } from './fhir/validator.ts';
import type { Health } from './http/operations-routes.ts';
import { FhirRepository } from './rest/repository.ts';
import { AuditReadBarrier } from './store/audit-read-barrier.ts';
import { EncryptingStore } from './store/encrypting-store.ts';
import type { Storage } from './store/port.ts';
import type { ResourceStore } from './store/resource-store.ts';
import { openStorage } from './store/open.ts';
import { WorkerAuditIndexer } from './store/sqlite/worker-audit-indexer.ts';
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
  /** resources, encrypted before they reach the storage; AuditEvent reads wait for the audit index */
  readonly store: ResourceStore;
  readonly sink: AuditSink;
  /** how far the audit log is committed and indexed (the indexer's lag) */
  readonly auditProgress: AuditProgress;
  readonly verifier: TokenVerifier;
  /** the built-in authorization server, when on (config.auth.server), and what its sign-in pages need */
  readonly authServer?: AuthServer;
  readonly signIn?: SignInDeps;
  readonly policy: Policy;
  readonly repository: FhirRepository;
  /** what the CapabilityStatement says of a search parameter over encrypted elements (none for the others) */
  readonly searchDocumentation: (type: string, param: string) => string | undefined;
  /** What /readyz and /metrics report: the store, the keys, the audit log writer and its indexer. */
  readonly health: Health;
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

export async function createServices(config: Config, deps: ServiceDeps = {}): Promise<Services> {
  const clock = deps.clock ?? (() => new Date());
  const { model, validator } = loadDefinitions(config.updateCreate);
  const storage = deps.storage ?? (await openStorage(config, clock, true));
  const keys = deps.keys ?? openKeyring(config, !(await storage.hasResources()));
  const protection = loadProtectionPolicy(model, config.protectionFile);
  // A reader that has to wait asks the indexer to run now (defined below, called only later).
  const progress = new AuditProgress((await storage.audit.head()).seq, await storage.auditIndex.indexedThrough(), () => indexInPlace());
  const indexer = new AuditIndexer(storage.audit, storage.auditIndex, model, config.baseUrl);
  const indexed = (seq: number) => progress.index(seq);
  const store = new AuditReadBarrier(
    new EncryptingStore(storage.resources, keys, protection, new BlindIndex(keys.indexKey(), protection, keys.indexPrefixFrom()), {
      model,
      baseUrl: config.baseUrl,
      bound: config.search.decryptBound,
    }),
    progress,
    config.audit.indexWaitMs,
  );
  // The signing key is created (or its permissions checked) at start, whichever thread signs.
  const sign = auditSigner(config.audit, clock);
  // A file-backed embedded store gets its audit commits on a thread of their own
  // (audit-worker.ts), and the indexing behind them on another (audit-index-worker.ts); an
  // in-memory store is written and indexed in place.
  const { file, auditFile } = storage.capabilities;
  const threads = !deps.auditWriter && !deps.auditInPlace && storage.capabilities.adapter === 'sqlite' && file !== undefined && auditFile !== undefined;
  const logPath = auditFile ?? '';
  const worker = threads
    ? new WorkerAuditWriter({ logPath, audit: config.audit, keyring: config.keyring })
    : undefined;
  const indexThread = threads ? new WorkerAuditIndexer({ dataDir: config.dataDir, logPath, baseUrl: config.baseUrl }, indexed) : undefined;
  // In place (no writer thread), the heads are published from here.
  const witness = worker || deps.auditWriter ? undefined : openWitness(config.audit.witness);
  // The log is the record: an indexing failure leaves the index behind (auditors' reads wait,
  // then 503), never an audit write failed. The next pass resumes from the mark.
  // One pass at a time: a pass asked for while one runs follows it.
  let indexing = Promise.resolve();
  const catchUp = () => {
    indexing = indexing.then(async () => {
      try {
        await indexer.catchUp(indexed);
      } catch (err) {
        indexingFailed(err);
      }
    });
    return indexing;
  };
  const indexInPlace = () => {
    if (indexThread) indexThread.nudge();
    else void catchUp();
  };
  if (!indexThread) {
    await indexer.applyPurges();
    await catchUp();
  }
  const inPlace = storeWriter(storage.audit, keys, sign, witness);
  const sink = new AuditSink(
    deps.auditWriter ??
    worker?.write ??
    (async (facts) => {
      const seq = await inPlace(facts);
      await catchUp();
      return seq;
    }),
    (seq) => progress.commit(seq),
    deps.auditWriter ? undefined : worker?.stage,
  );
  // The built-in authorization server is one more trusted issuer, its keys known in process.
  const trustProxy = config.trustedProxies.length > 0;
  const audit = (e: AuthEvent) => sink.recordFacts(authEventFacts(e, authIssuer(config.baseUrl), config.baseUrl, clock));
  const authServer = config.auth.server
    ? await createAuthServer({
        baseUrl: config.baseUrl,
        dataDir: config.dataDir,
        config: config.auth.server,
        trustProxy,
        audit,
        box: secretBox(keys),
        roleClaim: config.auth.roleClaim,
      })
    : undefined;
  const signIn: SignInDeps | undefined = authServer && {
    record: (e) => sink.recordFacts(loginFacts(e, authServer.issuer, config.baseUrl, clock)),
    patients: (user, request) => pickablePatients(user, request),
  };
  const builtIn = authServer && { issuer: authServer.issuer, jwks: { kind: 'file' as const, keys: authServer.jwks } };
  const issuers = builtIn ? [...config.auth.issuers, builtIn] : config.auth.issuers;
  const verifier = deps.verifier ?? new JwtVerifier({ ...config.auth, issuers }, config.baseUrl, clock);
  /**
   * The patients a user may pick at launch: a search of Patients as the user (user/Patient.rs,
   * the user's role and, with HEARTH_AUTH_RELATIONSHIP, only the user's patients) through the one
   * decision and restriction every route passes; the first 50 by name. Showing them is an access
   * like any search: it leaves its AuditEvent, naming every patient shown.
   */
  async function pickablePatients(user: User, request: { id: string; ip: string }): Promise<{ id: string; label: string }[]> {
    const scopes = ['user/Patient.rs'];
    const principal: Principal = {
      issuer: authIssuer(config.baseUrl),
      subject: user.username,
      fhirUser: user.fhirUser,
      role: user.role,
      grants: parseScopes(scopes),
      scopes,
      expiresAt: Math.floor(clock().getTime() / 1000) + 60,
    };
    const decision = decideRoute(principal, { type: 'Patient', interaction: 'search-type' }, false, model, policy, 'GET');
    const query: SearchQuery = { type: 'Patient', where: [], sort: [{ param: 'family', field: 'code', descending: false }], count: 50, total: 'none' };
    const search = { query, includes: [], revIncludes: [], linkParams: [], ignored: [] };
    const found = decision.allowed ? (await repository.search(search, decision.access)).matches : [];
    await sink.recordFacts({
      requestId: `${request.id}.patients`,
      recorded: clock(),
      interaction: 'search-type',
      resourceType: 'Patient',
      status: decision.allowed ? 200 : 403,
      principal,
      address: request.ip,
      entities: found.map((m) => ({ reference: `Patient/${m.id}/_history/${m.versionId}`, role: 'domain' as const })),
      patients: found.map((m) => `Patient/${m.id}`),
      query: '_sort=family&_count=50',
      server: { baseUrl: config.baseUrl, name: 'Hearth' },
    });
    return found.map((m) => ({ id: m.id, label: patientLabel(m.resource) }));
  }

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
    auditProgress: progress,
    health: {
      checks: async () => ({
        store: await probe(() => storage.hasResources()),
        keys: await probe(() => keys.currentKekId()),
        auditLog: worker && !worker.alive ? { status: 'failing', detail: 'the audit writer thread stopped: audited requests answer 503' } : { status: 'ok' },
        auditIndex: {
          ...(indexThread && !indexThread.alive ? { status: 'failing' as const, detail: 'the audit indexer thread stopped' } : { status: 'ok' as const }),
          committed: progress.committed,
          indexed: progress.indexed,
          lag: progress.lag,
        },
      }),
      gauges: () => [
        { name: 'hearth_audit_log_seq', help: 'Sequence number of the newest AuditEvent this server committed to the audit log.', value: progress.committed },
        { name: 'hearth_audit_index_seq', help: 'Sequence number up to which the audit log is searchable.', value: progress.indexed },
        { name: 'hearth_audit_index_lag_events', help: 'AuditEvents committed to the audit log and not yet searchable.', value: progress.lag },
      ],
    },
    verifier,
    authServer,
    signIn,
    policy,
    repository,
    searchDocumentation: (type, param) =>
      protectedSearchDocumentation(protection, type, param, config.search.decryptBound, keys.indexPrefixFrom()),
    async recover() {
      const appendOf = auditAppendOf(keys);
      return recoverAttempts({
        audit: storage.audit,
        writtenBy: (id) => storage.resources.writtenBy(id),
        append: async (events) => {
          // With a writer thread, the witness is the thread's; recovery publishes through its own.
          const own = witness ? undefined : openWitness(config.audit.witness);
          try {
            progress.commit(await signedAppend(storage.audit, events.map((e) => appendOf(e)), sign, witness ?? own));
            indexInPlace();
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
      await indexThread?.close();
      witness?.close();
      authServer?.close();
      await storage.close();
    },
  };
}

export interface SignInDeps {
  readonly record: (e: LoginEvent) => Promise<void>;
  readonly patients: PatientList;
}

/** A sign-in step as an AuditEvent: a BALP user authentication by the user (or by the account a failure named). */
function loginFacts(e: LoginEvent, issuer: string, baseUrl: string, clock: () => Date): AuditFacts {
  const status = e.outcome === 'success' ? 200 : e.outcome === 'locked' ? 423 : e.outcome === 'denied' ? 403 : 401;
  const principal: Principal | undefined =
    e.outcome === 'success' && e.user
      ? { issuer, subject: e.user.username, fhirUser: e.user.fhirUser, role: e.user.role, grants: [], scopes: [], expiresAt: 0 }
      : undefined;
  return authenticationFacts({ ...e, interaction: 'login', status, issueCode: `${e.step}-${e.outcome}`, principal, claimed: e.username }, baseUrl, clock);
}

/**
 * The facts of an authentication-side event: who (the principal, or — not authenticated — the
 * account or client the request named), from where, the outcome; no resource is touched.
 */
function authenticationFacts(
  a: Pick<AuditFacts, 'requestId' | 'address' | 'interaction' | 'status' | 'issueCode' | 'principal'> & { claimed?: string },
  baseUrl: string,
  clock: () => Date,
): AuditFacts {
  return {
    requestId: a.requestId,
    recorded: clock(),
    interaction: a.interaction,
    status: a.status,
    issueCode: a.issueCode,
    principal: a.principal,
    claimedBy: a.principal ? undefined : a.claimed,
    address: a.address,
    entities: [],
    patients: [],
    server: { baseUrl, name: 'Hearth' },
  };
}

function patientLabel(resource: Record<string, unknown> | undefined): string {
  const name = (resource?.name as { family?: string; given?: string[] }[] | undefined)?.[0];
  const text = [name?.given?.join(' '), name?.family].filter(Boolean).join(' ') || 'unnamed';
  return typeof resource?.birthDate === 'string' ? `${text} (born ${resource.birthDate})` : text;
}

/**
 * The AuditEvent facts of a request to the authorization server: a token request is a login
 * (BALP: DICOM 110114 User Authentication), by the client it authenticated — or, refused, by
 * the client it claimed to be; the scopes and the token's jti of what was issued.
 */
function authEventFacts(e: AuthEvent, issuer: string, baseUrl: string, clock: () => Date): AuditFacts {
  const scopes = e.scope?.split(' ').filter(Boolean) ?? [];
  const principal: Principal | undefined =
    e.authenticated && e.clientId
      ? {
          issuer,
          subject: e.clientId,
          clientId: e.clientId,
          grants: parseScopes(scopes),
          scopes,
          tokenId: e.tokenId,
          expiresAt: e.expiresAt ?? 0,
        }
      : undefined;
  const interaction = e.endpoint === 'token' ? 'login' : 'operation';
  return authenticationFacts({ ...e, interaction, issueCode: e.error, principal, claimed: e.clientId }, baseUrl, clock);
}

/** A dependency's check: ok when the probe answers, failing (with no detail that could carry data) when it throws. */
async function probe(run: () => unknown): Promise<{ status: 'ok' | 'failing'; detail?: string }> {
  try {
    await run();
    return { status: 'ok' };
  } catch {
    return { status: 'failing', detail: 'does not answer' };
  }
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
