import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { type Config, ConfigError } from './config/config.ts';
import { type FhirModel, loadFhirModel } from './fhir/definitions.ts';
import { FhirError, operationOutcome } from './fhir/errors.ts';
import { FhirRepository } from './fhir/repository.ts';
import { ResourceValidator } from './fhir/validator.ts';
import { registerBodyParsers } from './http/body-parsers.ts';
import { errorHandler } from './http/error-handler.ts';
import { fhirRoutes } from './http/fhir-routes.ts';
import { loggerOptions } from './http/logger.ts';
import { negotiate, queryPairs } from './http/negotiation.ts';
import { sendResource } from './http/respond.ts';
import { loadCompartments, type Policy } from './auth/authorize.ts';
import { loadRoles } from './auth/roles.ts';
import { JwtVerifier, type TokenVerifier } from './auth/token-verifier.ts';
import { registerAuthentication, registerAuthorization } from './http/authorization.ts';
import type { AuditStore } from './audit/audit-store.ts';
import { AuditSink, type AuditWriter, storeWriter } from './audit/audit-sink.ts';
import { checkpointSigner, loadSigningKey } from './audit/signing-key.ts';
import { registerAuditHooks } from './http/audit-hook.ts';
import { BlindIndex } from './crypto/blind-index.ts';
import { type KeyProvider, KeyringError, LocalKeyring } from './crypto/keyring.ts';
import { loadProtectionPolicy } from './crypto/protection.ts';
import { publicRoutes } from './http/public-routes.ts';
import { EncryptingStore } from './store/encrypting-store.ts';
import type { ResourceStore } from './store/resource-store.ts';
import { SqliteStore } from './store/sqlite/sqlite-store.ts';
import { WorkerAuditWriter } from './store/sqlite/worker-audit-writer.ts';

export interface AppDeps {
  /** The store; the embedded SQLite store under config.dataDir when absent. */
  readonly store?: ResourceStore;
  readonly clock?: () => Date;
  /** Key-encryption and blind-index keys; the configured keyring when absent. */
  readonly keys?: KeyProvider;
  /** The audit trail; the store's own (SqliteStore.auditStore()) when absent. */
  readonly auditStore?: AuditStore;
  /**
   * Where audit facts go; by default they become chained AuditEvents in the audit store. Only
   * benchmarks replace it (to measure what the trail costs); no configuration reaches it.
   */
  readonly auditWriter?: AuditWriter;
  /** Token verification; a JwtVerifier over config.auth.issuers when absent. */
  readonly verifier?: TokenVerifier;
  /** A pino-compatible logger instance for tests that read the log. */
  readonly loggerInstance?: import('fastify').FastifyBaseLogger;
}

export interface Definitions {
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

/** Builds the application; never listens (server.ts does). */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const clock = deps.clock ?? (() => new Date());
  const { model, validator } = loadDefinitions(config.updateCreate);
  const raw = deps.store ?? new SqliteStore({ dataDir: config.dataDir, clock });
  const keys = deps.keys ?? openKeyring(config, !((raw as Partial<SqliteStore>).hasResources?.() ?? true));
  const protection = loadProtectionPolicy(model, config.protectionFile);
  const store = new EncryptingStore(raw, keys, protection, new BlindIndex(keys.indexKey(), protection));
  const auditStore = deps.auditStore ?? (raw as Partial<SqliteStore>).auditStore?.();
  if (!auditStore) throw new Error('the store offers no audit trail: pass deps.auditStore');
  // The signing key is created (or its permissions checked) at start, whichever thread signs.
  const signingKey = loadSigningKey(config.dataDir);
  const storePath = (raw as Partial<SqliteStore>).path;
  // A file-backed embedded store gets its audit commits on a thread of their own (see
  // audit-worker.ts); an in-memory store, or an injected audit store, is written in place.
  const worker =
    !deps.auditWriter && !deps.auditStore && storePath && storePath !== ':memory:'
      ? new WorkerAuditWriter({
          dbPath: storePath,
          dataDir: config.dataDir,
          baseUrl: config.baseUrl,
          checkpointEvery: config.audit.checkpointEvery,
          checkpointSeconds: config.audit.checkpointSeconds,
          keyring: config.keyring,
        })
      : undefined;
  const sink = new AuditSink(
    deps.auditWriter ??
    worker?.write ??
    storeWriter(
      auditStore,
      model,
      config.baseUrl,
      keys,
      checkpointSigner(signingKey, config.audit.checkpointEvery, config.audit.checkpointSeconds * 1000, clock),
    ),
  );

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

  const app = Fastify({
    ...(deps.loggerInstance ? { loggerInstance: deps.loggerInstance } : { logger: loggerOptions(config) }),
    bodyLimit: config.bodyLimit,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    schemaErrorFormatter: (errors, context) => {
      const e = errors[0];
      const where = e?.instancePath?.replace(/^\//, '') ?? '';
      const what = where === 'id' ? 'resource id' : where === 'vid' ? 'version id' : `${context} ${where}`;
      const rule =
        where === 'id' ? ' (1-64 letters, digits, "-" or ".")' : where === 'vid' ? ' (a positive whole number)' : '';
      return new FhirError(400, 'HEARTH_BAD_REQUEST', { code: 'invalid', diagnostics: `invalid ${what}${rule}` });
    },
  });
  // Every route the server registers, as Fastify saw it: what the route-by-token policy test walks.
  const routes: FastifyInstance['registeredRoutes'][number][] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url, fhir: r.config?.fhir });
  });
  app.decorate('registeredRoutes', routes);
  app.decorateRequest('fhirQuery', null as unknown as [string, string][]);
  app.decorateRequest('fhirFormat', undefined);
  app.decorateRequest('auditIssue', undefined);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    request.fhirQuery = queryPairs(request.url);
    negotiate(request);
  });
  app.addHook('onClose', async () => {
    await sink.drain();
    await worker?.close();
    await store.close();
  });
  registerBodyParsers(app, config.maxJsonDepth);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    const m = /^\/fhir\/([^/?]+)/.exec(request.url);
    const diagnostics =
      m && !model.types.has(m[1]) && m[1] !== 'metadata'
        ? `resource type ${m[1].slice(0, 64)} is not served here`
        : `no FHIR interaction at ${request.method} ${request.url.split('?')[0].slice(0, 200)}`;
    sendResource(request, reply, 404, operationOutcome([{ code: 'not-found', diagnostics }]));
  });
  await app.register(publicRoutes, { prefix: '/fhir', config, model });
  // Everything else under /fhir needs a verified bearer token: its own plugin scope, not a URL allow-list.
  await app.register(
    async (api) => {
      api.decorateRequest('principal', null as never);
      api.decorateRequest('access', null as never);
      api.decorateRequest('auditNotes', null as never);
      // First, so that refusals by the hooks below are audited too.
      registerAuditHooks(api, { sink, model, compartments: policy.compartments, config, clock });
      registerAuthentication(api, verifier);
      registerAuthorization(api, { model, policy });
      await api.register(fhirRoutes, { config, model, repository, clock, auditStore });
    },
    { prefix: '/fhir' },
  );
  if (config.auth.issuers.length === 0) {
    app.log.warn('no trusted token issuer is configured (HEARTH_AUTH_ISSUER/HEARTH_AUTH_JWKS): every FHIR request except metadata is refused with 401');
  }
  return app;
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
