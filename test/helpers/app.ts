import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import type { Storage } from '../../src/store/port.ts';
import type { AuditIndex, AuditStore } from '../../src/audit/audit-store.ts';
import { sqliteStorage } from '../../src/store/sqlite/sqlite-storage.ts';
import type { Fdatasync } from '../../src/store/sqlite/wal-sync.ts';
import { parseExact } from '../../src/fhir/json.ts';
import { mongoTestStorage } from './mongo.ts';
import { RecordingStore } from './recording-store.ts';

export const BASE = 'http://127.0.0.1:8080/fhir';
export const FHIR_JSON = 'application/fhir+json';

export const ISSUER = 'https://issuer.test/realms/hearth';
/** A protection policy that encrypts nothing: the plain baseline. */
export const PLAIN = { HEARTH_PROTECTION_FILE: new URL('../fixtures/protection-none.json', import.meta.url).pathname };

/** One signing key per test process, published as a JWKS file the app is configured to trust. */
const keys = await (async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'test-key-1', alg: 'ES256', use: 'sig' };
  const file = join(mkdtempSync(join(tmpdir(), 'hearth-jwks-')), 'jwks.json');
  writeFileSync(file, JSON.stringify({ keys: [jwk] }));
  return { privateKey, file, publicJwk: jwk };
})();

export const JWKS_FILE = keys.file;
afterAll(() => rmSync(dirname(keys.file), { recursive: true, force: true }));
export const TEST_PRIVATE_KEY = keys.privateKey;

export interface TokenOptions {
  audience?: string;
  issuer?: string;
  /** seconds from the app clock */
  lifetime?: number;
  now?: Date;
  alg?: string;
  kid?: string;
}

/** Signs an access token with the trusted test key. */
export async function signToken(claims: JWTPayload, o: TokenOptions = {}): Promise<string> {
  const now = Math.floor((o.now ?? new Date()).getTime() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: o.alg ?? 'ES256', kid: o.kid ?? 'test-key-1', typ: 'at+jwt' })
    .setIssuer(o.issuer ?? ISSUER)
    .setAudience(o.audience ?? BASE)
    .setIssuedAt(now)
    .setExpirationTime(now + (o.lifetime ?? 900))
    .setJti(`jti-${Math.random().toString(36).slice(2)}`)
    .sign(keys.privateKey);
}

export interface TestApp {
  /** The app; inject() sends the default token unless the request sets its own authorization header. */
  app: FastifyInstance;
  /** The app with no default token. */
  raw: FastifyInstance;
  /** A token for this app (its audience and clock). */
  token: (claims: JWTPayload, o?: TokenOptions) => Promise<string>;
  adminToken: string;
  /** the app's resource store (the raw adapter, recorded): what reached it, and faults to inject */
  store: RecordingStore;
  /** the whole storage port under the app (resources unrecorded), and the configuration */
  storage: Storage;
  config: Config;
  /** Moves the injected clock forward. */
  tick: (ms: number) => void;
  now: () => Date;
  /** waits until every AuditEvent committed so far is searchable (the indexer follows the log) */
  auditIndexed: () => Promise<void>;
}

/** Whether this run's apps store in MongoDB (the second pass of the end-to-end suites). */
export const ON_MONGODB = process.env.HEARTH_TEST_STORE === 'mongodb';

/**
 * The real app on the real SQLite adapter (in memory unless a data dir is given), or on MongoDB
 * in the "mongodb" test project, with a controllable clock.
 */
export async function testApp(
  env: Record<string, string> = {},
  options: {
    dataDir?: string;
    /** on MongoDB whatever the project */
    mongodb?: boolean;
    wrapAudit?: (s: AuditStore) => AuditStore;
    wrapAuditIndex?: (s: AuditIndex) => AuditIndex;
    /** how the embedded store flushes hearth.db's write-ahead log (tests that hold it) */
    fdatasync?: Fdatasync;
  } = {},
): Promise<TestApp> {
  let t = Date.parse('2026-01-15T10:00:00.000Z');
  const clock = () => new Date(t);
  const config = loadConfig({
    HEARTH_LOG_LEVEL: 'silent',
    HEARTH_DATA_DIR: options.dataDir ?? tempDir(),
    HEARTH_AUTH_ISSUER: ISSUER,
    HEARTH_AUTH_JWKS: keys.file,
    // The injected clock moves a millisecond a call: thousands of requests share a "second".
    // Tests of the limit set their own.
    HEARTH_RATE_LIMIT: '1000000',
    // inject() needs no TLS; the TLS tests (tls.test.ts) turn it on.
    HEARTH_TLS: 'off',
    HEARTH_TRUSTED_PROXIES: '127.0.0.1',
    ...env,
  });
  const storeClock = () => {
    t += 1;
    return new Date(t);
  };
  // The end-to-end suites run once more on MongoDB (vitest.config.ts, project "mongodb").
  const storage =
    options.mongodb || (ON_MONGODB && options.dataDir === undefined)
      ? await mongoTestStorage(storeClock)
      : sqliteStorage({ dataDir: options.dataDir ?? ':memory:', clock: storeClock, fdatasync: options.fdatasync });
  const recording = new RecordingStore(storage.resources);
  const wrapped = {
    ...storage,
    resources: recording,
    audit: options.wrapAudit ? options.wrapAudit(storage.audit) : storage.audit,
    auditIndex: options.wrapAuditIndex ? options.wrapAuditIndex(storage.auditIndex) : storage.auditIndex,
  };
  const inPlace = options.wrapAudit !== undefined || options.wrapAuditIndex !== undefined;
  const raw = await buildApp(config, { storage: wrapped, clock, auditInPlace: inPlace });
  opened.add(raw);
  const token = (claims: JWTPayload, o: TokenOptions = {}) =>
    signToken(claims, { audience: config.baseUrl, now: clock(), lifetime: 3600, ...o });
  const adminToken = await token({ sub: 'test-system', client_id: 'test-client', scope: 'system/*.cruds' });
  const app = new Proxy(raw, {
    get(target, prop) {
      if (prop === 'inject') {
        return (opts: InjectOptions) => {
          const headers = { ...(opts.headers ?? {}) } as Record<string, string>;
          if (!('authorization' in headers)) headers.authorization = `Bearer ${adminToken}`;
          if (headers.authorization === '') delete headers.authorization;
          return target.inject({ ...opts, headers });
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return {
    app,
    raw,
    token,
    adminToken,
    store: recording,
    storage,
    config,
    auditIndexed: async () => {
      if (!(await raw.auditProgress.caughtUp(10_000))) throw new Error('the audit index did not catch up');
    },
    tick: (ms) => {
      t += ms;
    },
    now: clock,
  };
}

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-test-'));
  made.add(dir);
  return dir;
}

// What the helpers open, they close: every app built and every directory made in a test file
// is closed and removed when the file's tests are done.
const opened = new Set<FastifyInstance>();
const made = new Set<string>();
afterAll(async () => {
  for (const app of opened) await app.close().catch(() => undefined);
  opened.clear();
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  made.clear();
});

export function json(res: { body: string }): any {
  return JSON.parse(res.body);
}

/** A FHIR JSON body sent with `method`; a string body goes as it is. */
function send(method: 'POST' | 'PUT') {
  return (app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method,
      url,
      headers: { 'content-type': FHIR_JSON, ...headers },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    } as InjectOptions);
}

export const post = send('POST');
export const put = send('PUT');

/** Creates a resource and returns the stored representation. */
export async function create(app: FastifyInstance, resource: Record<string, unknown>): Promise<any> {
  const res = await post(app, `/fhir/${resource.resourceType}`, resource);
  if (res.statusCode !== 201) throw new Error(`create failed ${res.statusCode} ${res.body}`);
  return json(res);
}

export async function search(app: FastifyInstance, query: string): Promise<any> {
  const res = await app.inject({ method: 'GET', url: `/fhir/${query}` });
  if (res.statusCode !== 200) throw new Error(`search ${query} failed ${res.statusCode} ${res.body}`);
  return json(res);
}

export const ids = (bundle: any): string[] =>
  (bundle.entry ?? []).filter((e: any) => e.search?.mode === 'match').map((e: any) => e.resource.id);

const examplesDir = new URL('../fixtures/examples/', import.meta.url);
export function examples(prefix: 'Patient' | 'Observation'): { file: string; resource: any }[] {
  return readdirSync(examplesDir)
    .filter((f) => f.startsWith(`${prefix}-`) && f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, resource: parseExact(readFileSync(new URL(file, examplesDir), 'utf8'), true) as any }));
}

/** The 173 Patient and Observation resources inside the official example Bundles (fixtures README), numbers as written. */
export function bundledExamples(): { file: string; resource: any }[] {
  const list = parseExact(readFileSync(new URL('in-bundles.json', examplesDir), 'utf8'), true) as { bundle: string; entry: number; resource: any }[];
  return list.map((e) => ({ file: `${e.bundle}#entry[${e.entry}]`, resource: e.resource }));
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** An audit index that refuses to index while `failing()` says so (an index volume full): for the index-behind paths. */
export function failingIndex(failing: () => boolean) {
  return (index: AuditIndex): AuditIndex => ({
    indexedThrough: () => index.indexedThrough(),
    index: async (events, through) => {
      if (failing()) throw new Error('index volume full');
      await index.index(events, through);
    },
    removeBefore: (cutoff) => index.removeBefore(cutoff),
    ids: () => index.ids(),
  });
}
