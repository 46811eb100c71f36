import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Requests a second per verified client and user: the default, per role, and a Redis shared by instances. */
export interface RateLimitConfig {
  /** undefined: no limit (HEARTH_RATE_LIMIT=off) */
  readonly perSecond: number | undefined;
  readonly byRole: Readonly<Record<string, number>>;
  readonly redisUrl?: string;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** MongoDB instead of the embedded store: the connection string, and whether a standalone server is refused */
  readonly mongodb?: { readonly uri: string; readonly requireReplicaSet: boolean };
  readonly baseUrl: string;
  readonly logLevel: LogLevel;
  readonly bodyLimit: number;
  readonly maxJsonDepth: number;
  /** how long a client may take, in ms: to send its headers, its whole request, and between requests on a kept-alive connection */
  readonly timeouts: { readonly headersMs: number; readonly requestMs: number; readonly keepAliveMs: number; readonly idleMs: number };
  readonly rateLimit: RateLimitConfig;
  /** HTTPS from configured files, HTTPS with a development certificate made on first start, or plain HTTP behind a proxy */
  readonly tls: { readonly kind: 'files'; readonly cert: string; readonly key: string } | { readonly kind: 'development' } | { readonly kind: 'off' };
  /** addresses (or CIDR ranges) of proxies whose X-Forwarded-For is believed */
  readonly trustedProxies: readonly string[];
  /** open connections one client address may hold */
  readonly maxConnectionsPerAddress: number;
  /** browser origins allowed to call the API cross-origin (SMART apps); none by default */
  readonly corsOrigins: readonly string[];
  /** page sizes, and how many candidates a search over encrypted elements may decrypt (0: none) */
  readonly search: { readonly defaultCount: number; readonly maxCount: number; readonly decryptBound: number };
  /** batch and transaction Bundles: most entries, largest body */
  readonly bundles: { readonly maxEntries: number; readonly bodyLimit: number };
  readonly updateCreate: boolean;
  readonly auth: AuthConfig;
  readonly audit: AuditConfig;
  /** the keyring: a file (created on first start) or a JSON document from the environment */
  readonly keyring: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'env'; readonly json: string };
  /** the protection policy: which elements are encrypted (default profiles/protection.json) */
  readonly protectionFile?: string;
}

export interface AuditConfig {
  /** events older than this may be purged (by command only) */
  readonly retentionDays: number;
  /** the Ed25519 private key (PEM) that signs the head of every committed batch; its public key beside it (.pub.pem) */
  readonly signingKey: string;
  /** where signed heads are published as they are made: a file (appended) or standard output; none when absent */
  readonly witness?: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'stdout' };
  /** how long an AuditEvent read or search waits for the search index to reach the audit log before a 503 */
  readonly indexWaitMs: number;
}

export interface TrustedIssuer {
  readonly issuer: string;
  /** a JWKS file path (read at start) or an https URL (fetched and cached) */
  readonly jwks: { readonly kind: 'file'; readonly keys: { keys: object[] } } | { readonly kind: 'url'; readonly url: string };
  readonly authorizationEndpoint?: string;
  readonly tokenEndpoint?: string;
  /** the SMART capabilities the operator says this issuer offers (discovery lists these only) */
  readonly capabilities?: readonly string[];
}

/** The built-in authorization server (src/authserver): on unless switched off. */
export interface AuthServerConfig {
  /** access token lifetime in seconds (backend services' tokens are capped at 300) */
  readonly accessTokenSeconds: number;
}

export interface AuthConfig {
  readonly issuers: readonly TrustedIssuer[];
  /** the built-in authorization server, trusted as one more issuer; undefined when switched off */
  readonly server?: AuthServerConfig;
  readonly clockSkewSeconds: number;
  readonly maxTokenLifetimeSeconds: number;
  readonly roleClaim: string;
  /** least seconds between two fetches of a remote JWKS (an unknown kid triggers one) */
  readonly jwksCooldownSeconds: number;
  /** clinician access limited to patients whose `relationshipParam` references the user */
  readonly relationship: boolean;
  readonly relationshipParam: string;
}

export interface ConfigProblem {
  readonly name: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.name}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

interface Setting<T> {
  readonly doc: string;
  readonly parse: (raw: string) => T | { error: string };
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);

/** `a, b,,c` → ['a', 'b', 'c'] */
/** The database a MongoDB connection string names ('' for none), or undefined when it is not one. */
export function mongoDatabaseOf(uri: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/[^/?#]+(?:\/([^?#]*))?(?:\?[^#]*)?$/.exec(uri);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1] ?? '');
  } catch {
    return undefined;
  }
}

const commaList = (raw: string) => raw.split(',').map((item) => item.trim()).filter((item) => item !== '');

const readablePem = (raw: string): string | { error: string } => {
  const path = resolve(raw);
  return existsSync(path) ? path : { error: `cannot read ${path}` };
};

const integer =
  (min: number, max: number) =>
    (raw: string): number | { error: string } => {
      if (!/^[0-9]+$/.test(raw)) return { error: `must be a whole number from ${min} to ${max}, got "${raw}"` };
      const n = Number(raw);
      return n >= min && n <= max ? n : { error: `must be a whole number from ${min} to ${max}, got ${raw}` };
    };

const boolean = (raw: string): boolean | { error: string } =>
  raw === 'true' ? true : raw === 'false' ? false : { error: `must be "true" or "false", got "${raw}"` };

/** Every setting Hearth reads, with its environment variable, default and what it allows. */
export const SETTINGS = {
  HEARTH_HOST: {
    doc: 'interface to listen on (default 127.0.0.1; 0.0.0.0 or :: for every interface)',
    parse: (raw: string) =>
      raw === 'localhost' || isIP(raw) !== 0 ? raw : { error: `must be an IP address or "localhost", got "${raw}"` },
  },
  HEARTH_PORT: { doc: 'TCP port (default 8080; 0 picks a free port)', parse: integer(0, 65535) },
  HEARTH_DATA_DIR: {
    doc: 'directory holding every file the server writes (default ./data)',
    parse: (raw: string) => (raw.trim() === '' ? { error: 'must not be empty' } : resolve(raw)),
  },
  HEARTH_MONGODB_URI: {
    doc: 'store resources and the audit log in MongoDB (mongodb:// or mongodb+srv:// URI naming the database, default database "hearth") instead of the embedded store under HEARTH_DATA_DIR',
    parse: (raw: string) => {
      // (Never echoed: it may carry a password.)
      const db = mongoDatabaseOf(raw);
      if (db === undefined) return { error: 'must be a mongodb:// or mongodb+srv:// connection string: mongodb://host[:port][,host...]/[database][?options]' };
      try {
        // The driver is loaded only when a MongoDB is configured (~0.2 s of every start and command otherwise).
        const { MongoClient } = createRequire(import.meta.url)('mongodb') as typeof import('mongodb');
        new MongoClient(raw);
      } catch (err) {
        return { error: `is not a connection string the MongoDB driver accepts: ${(err as Error).message.replace(/\/\/[^@/]*@/g, '//***@')}` };
      }
      // See: https://www.mongodb.com/docs/manual/reference/limits/#naming-restrictions
      if (db !== '' && !/^[^/\\. "$*<>:|?]{1,63}$/.test(db)) return { error: 'names a database MongoDB does not allow' };
      return raw;
    },
  },
  HEARTH_MONGODB_REQUIRE_REPLICA_SET: {
    doc: 'refuse to start on a standalone MongoDB server (default true; false for development only: writes are then not transactions)',
    parse: boolean,
  },
  HEARTH_BASE_URL: {
    doc: 'public FHIR base URL used in links (default http://<host>:<port>/fhir)',
    parse: (raw: string) => {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        return { error: `must be an absolute http(s) URL, got "${raw}"` };
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        return { error: `must use http or https, got "${url.protocol}"` };
      if (url.search || url.hash) return { error: 'must not carry a query or fragment' };
      return url.href.replace(/\/+$/, '');
    },
  },
  HEARTH_LOG_LEVEL: {
    doc: `log level: ${LOG_LEVELS.join(', ')} (default info)`,
    parse: (raw: string) =>
      (LOG_LEVELS as readonly string[]).includes(raw)
        ? (raw as LogLevel)
        : { error: `must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"` },
  },
  HEARTH_CORS_ORIGINS: {
    doc: 'browser origins allowed to call the API cross-origin (SMART apps), comma-separated, e.g. https://app.example.org,http://localhost:3000 (default: none)',
    parse: (raw: string) => {
      const origins = commaList(raw);
      for (const o of origins) {
        let url: URL | undefined;
        try {
          url = new URL(o);
        } catch {
          url = undefined;
        }
        if (!url || url.origin !== o || !/^https?:$/.test(url.protocol)) {
          return { error: `each origin must be scheme://host[:port] with no path or trailing slash, got "${o}"` };
        }
      }
      return origins;
    },
  },
  HEARTH_BODY_LIMIT: { doc: 'largest request body in bytes (default 2097152)', parse: integer(1024, 64 * 1024 * 1024) },
  HEARTH_HEADERS_TIMEOUT_MS: { doc: 'ms a client has to send all request headers; slower ones are cut off with 408 (default 10000)', parse: integer(100, 600000) },
  HEARTH_REQUEST_TIMEOUT_MS: { doc: 'ms a client has to send its whole request, body included (default 30000)', parse: integer(100, 3600000) },
  HEARTH_KEEPALIVE_TIMEOUT_MS: { doc: 'ms an idle kept-alive connection stays open between requests (default 5000)', parse: integer(100, 600000) },
  HEARTH_IDLE_TIMEOUT_MS: { doc: 'ms a connection may stay silent in either direction before it is closed, not counting the server\'s work on a FHIR API request (default 60000)', parse: integer(100, 3600000) },
  HEARTH_TLS: {
    doc: 'on (default: HTTPS, TLS 1.2 or later, AEAD ciphers only) or off (plain HTTP, only behind a TLS-terminating proxy named in HEARTH_TRUSTED_PROXIES)',
    parse: (raw: string) => (raw === 'on' || raw === 'off' ? raw : { error: `must be "on" or "off", got "${raw.slice(0, 40)}"` }),
  },
  HEARTH_TLS_CERT: { doc: 'the server certificate (PEM, chain included), with HEARTH_TLS_KEY (default: a development certificate made on first start)', parse: readablePem },
  HEARTH_TLS_KEY: { doc: 'the private key of HEARTH_TLS_CERT (PEM)', parse: readablePem },
  HEARTH_TRUSTED_PROXIES: {
    doc: 'comma-separated addresses or CIDR ranges of the proxies in front (their X-Forwarded-For names the client)',
    parse: (raw: string) => {
      const list = commaList(raw);
      const bad = list.find((a) => {
        const [ip, bits, more] = a.split('/');
        const family = isIP(ip);
        return family === 0 || more !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)));
      });
      return bad === undefined && list.length > 0 ? list : { error: `must be IP addresses or CIDR ranges, comma-separated, got "${(bad ?? raw).slice(0, 60)}"` };
    },
  },
  HEARTH_RATE_LIMIT: {
    doc: 'requests a second one client and user may make (default 100; more are 429), or off',
    parse: (raw: string) => (raw === 'off' ? 'off' : integer(1, 1_000_000)(raw)),
  },
  HEARTH_RATE_LIMIT_ROLES: {
    doc: 'requests a second per role, overriding HEARTH_RATE_LIMIT: a JSON object such as {"auditor": 20, "system": 500}',
    parse: (raw: string) => {
      try {
        const o = JSON.parse(raw) as unknown;
        if (o && typeof o === 'object' && !Array.isArray(o) && Object.values(o).every((v) => Number.isInteger(v) && (v as number) >= 1)) {
          return o;
        }
      } catch {
        // reported below
      }
      return { error: `must be a JSON object of role names to whole numbers of requests a second, got ${raw.slice(0, 80)}` };
    },
  },
  HEARTH_RATE_LIMIT_REDIS: {
    doc: 'a Redis URL (redis://host:6379) where every instance counts request rates together (default: each counts alone)',
    parse: (raw: string) => (/^rediss?:\/\/[^\s]+$/.test(raw) ? raw : { error: `must be a redis:// or rediss:// URL, got "${raw.slice(0, 80)}"` }),
  },
  HEARTH_MAX_CONNECTIONS_PER_ADDRESS: {
    doc: 'open connections one client address may hold; more are closed at once (default 256)',
    parse: integer(1, 100000),
  },
  HEARTH_MAX_JSON_DEPTH: { doc: 'deepest JSON nesting accepted (default 48)', parse: integer(8, 256) },
  HEARTH_SEARCH_DEFAULT_COUNT: { doc: 'page size when _count is absent (default 20)', parse: integer(1, 10000) },
  HEARTH_SEARCH_MAX_COUNT: { doc: 'largest _count honoured (default 500)', parse: integer(1, 10000) },
  HEARTH_SEARCH_DECRYPT_BOUND: {
    doc: 'a search over encrypted elements that the blind indexes cannot answer is answered by decrypting its candidates when its other parameters leave at most this many (default 10000; 0: never, such searches are 400)',
    parse: integer(0, 1_000_000),
  },
  HEARTH_BUNDLE_MAX_ENTRIES: { doc: 'most entries in a batch or transaction Bundle; more is 413 (default 1000)', parse: integer(1, 100_000) },
  HEARTH_BUNDLE_BODY_LIMIT: {
    doc: 'largest batch or transaction Bundle body in bytes, decoded (default 33554432); 413 above',
    parse: integer(1024, 512 * 1024 * 1024),
  },
  HEARTH_UPDATE_CREATE: { doc: 'allow PUT to create a resource with a client id (default false)', parse: boolean },
  HEARTH_KEYRING_FILE: {
    doc: 'the keyring file (default <data dir>/keys/keyring.json; keep it off the data volume in production)',
    parse: (raw: string) => (raw.trim() === '' ? { error: 'must not be empty' } : resolve(raw)),
  },
  HEARTH_PROTECTION_FILE: {
    doc: 'the protection policy, which elements are encrypted (default profiles/protection.json)',
    parse: (raw: string) => {
      const path = resolve(raw);
      try {
        const p = JSON.parse(readFileSync(path, 'utf8')) as { protect?: unknown };
        if (!p.protect || typeof p.protect !== 'object') return { error: `"${raw}" has no "protect" map` };
        return path;
      } catch {
        return { error: `cannot read a protection policy from "${raw}"` };
      }
    },
  },
  HEARTH_KEYRING: {
    doc: 'the keyring JSON itself, instead of a file (for secrets injected as environment variables)',
    parse: (raw: string) => {
      try {
        const k = JSON.parse(raw) as { keks?: unknown; index?: unknown; current?: unknown };
        return k && typeof k.keks === 'object' && typeof k.index === 'string' && typeof k.current === 'number'
          ? raw
          : { error: 'must be a keyring JSON document ({"version":1,"current":n,"keks":{...},"index":"..."})' };
      } catch {
        return { error: 'must be a keyring JSON document' };
      }
    },
  },
  HEARTH_AUDIT_RETENTION_DAYS: {
    doc: 'days AuditEvents are kept before `hearth audit purge` may remove them (default 2192, six years)',
    parse: integer(1, 36500),
  },
  HEARTH_AUDIT_SIGNING_KEY: {
    doc: 'the audit signing key (Ed25519 PEM), created there on first start; keep it off the data volume (default <data dir>/keys/audit-signing-key.pem)',
    parse: (raw: string) => {
      const path = resolve(raw);
      if (!raw.endsWith('.pem')) return { error: `must be a path ending in .pem, got "${raw}"` };
      return existsSync(dirname(path)) ? path : { error: `the directory ${dirname(path)} does not exist` };
    },
  },
  HEARTH_AUDIT_INDEX_WAIT_MS: {
    doc: 'how long an AuditEvent read or search waits for the audit search index to catch up with the audit log before answering 503 (default 5000)',
    parse: integer(1, 600000),
  },
  HEARTH_AUDIT_WITNESS: {
    doc: 'where each signed audit head is published: a file on another volume (appended), or - for standard output',
    parse: (raw: string) => {
      if (raw === '-') return { kind: 'stdout' };
      const path = resolve(raw);
      return existsSync(dirname(path)) ? { kind: 'file', path } : { error: `the directory ${dirname(path)} does not exist` };
    },
  },
  HEARTH_AUTH_ISSUER: { doc: 'the trusted token issuer (iss), with HEARTH_AUTH_JWKS', parse: (raw: string) => parseIssuerUrl(raw) },
  HEARTH_AUTH_JWKS: { doc: 'that issuer\'s keys: a JWKS file path or an https URL', parse: parseJwks },
  HEARTH_AUTH_ISSUERS: {
    doc: 'several trusted issuers: a JSON list of {"issuer", "jwks", "authorization_endpoint"?, "token_endpoint"?, "capabilities"?}',
    parse: parseIssuers,
  },
  HEARTH_AUTH_SERVER: {
    doc: 'the built-in SMART authorization server under /auth, trusted as an issuer (default true; false to trust only external issuers)',
    parse: boolean,
  },
  HEARTH_AUTH_SERVER_TOKEN_LIFETIME: {
    doc: 'lifetime in seconds of the access tokens the built-in server issues, 60..3600 (default 900; backend services at most 300)',
    parse: integer(60, 3600),
  },
  HEARTH_AUTH_CLOCK_SKEW: { doc: 'seconds of clock skew tolerated on exp/nbf/iat (default 30)', parse: integer(0, 300) },
  HEARTH_AUTH_MAX_TOKEN_LIFETIME: { doc: 'longest accepted token lifetime in seconds, from iat (default 3600)', parse: integer(60, 86400) },
  HEARTH_AUTH_JWKS_COOLDOWN: {
    doc: 'least seconds between two fetches of a remote JWKS; an unknown kid triggers a refetch (default 30)',
    parse: integer(0, 3600),
  },
  HEARTH_AUTH_ROLE_CLAIM: {
    doc: 'token claim naming the role (default role)',
    parse: (raw: string) => (/^[A-Za-z_][\w:.\-/]{0,127}$/.test(raw) ? raw : { error: `must be a claim name, got "${raw}"` }),
  },
  HEARTH_AUTH_RELATIONSHIP: {
    doc: 'limit clinician (user/) access to patients assigned to the practitioner (default false)',
    parse: boolean,
  },
  HEARTH_AUTH_RELATIONSHIP_PARAM: {
    doc: 'Patient reference search parameter naming the assigned practitioner (default general-practitioner)',
    parse: (raw: string) => (/^[a-z][a-z0-9-]{0,63}$/.test(raw) ? raw : { error: `must be a search parameter code, got "${raw}"` }),
  },
} satisfies Record<string, Setting<unknown>>;

type Name = keyof typeof SETTINGS;

/** Reads, validates and freezes the configuration; every mistake is reported at once with its name. */
export function loadConfig(env: Env): Config {
  const problems: ConfigProblem[] = [];
  const values: Partial<Record<Name, unknown>> = {};
  for (const key of Object.keys(env)) {
    if (key.startsWith('HEARTH_') && !(key in SETTINGS)) {
      problems.push({ name: key, message: `unknown setting; known settings are ${Object.keys(SETTINGS).join(', ')}` });
    }
  }
  for (const name of Object.keys(SETTINGS) as Name[]) {
    const raw = env[name];
    if (raw === undefined) continue;
    const parsed = (SETTINGS[name] as Setting<unknown>).parse(raw);
    if (parsed && typeof parsed === 'object' && 'error' in parsed)
      problems.push({ name, message: String(parsed.error) });
    else values[name] = parsed;
  }
  const host = (values.HEARTH_HOST as string | undefined) ?? '127.0.0.1';
  const trustedProxies = (values.HEARTH_TRUSTED_PROXIES as string[] | undefined) ?? [];
  const tlsCert = values.HEARTH_TLS_CERT as string | undefined;
  const tlsKey = values.HEARTH_TLS_KEY as string | undefined;
  if ((tlsCert === undefined) !== (tlsKey === undefined) && !problems.some((p) => p.name.startsWith('HEARTH_TLS_'))) {
    problems.push({ name: tlsCert ? 'HEARTH_TLS_KEY' : 'HEARTH_TLS_CERT', message: 'HEARTH_TLS_CERT and HEARTH_TLS_KEY go together' });
  }
  const tlsOff = values.HEARTH_TLS === 'off';
  // PHI never crosses the network in the clear by accident: plain HTTP only when a proxy in front does TLS.
  if (tlsOff && trustedProxies.length === 0 && !problems.some((p) => p.name === 'HEARTH_TRUSTED_PROXIES')) {
    problems.push({ name: 'HEARTH_TLS', message: 'off serves PHI over plain HTTP: only behind a TLS-terminating proxy, named in HEARTH_TRUSTED_PROXIES' });
  }
  if (tlsOff && tlsCert) problems.push({ name: 'HEARTH_TLS', message: 'off, yet HEARTH_TLS_CERT is given: choose one' });
  const tls: Config['tls'] = tlsOff ? { kind: 'off' } : tlsCert && tlsKey ? { kind: 'files', cert: tlsCert, key: tlsKey } : { kind: 'development' };
  const port = (values.HEARTH_PORT as number | undefined) ?? 8080;
  const defaultCount = (values.HEARTH_SEARCH_DEFAULT_COUNT as number | undefined) ?? 20;
  const maxCount = (values.HEARTH_SEARCH_MAX_COUNT as number | undefined) ?? 500;
  if (defaultCount > maxCount) {
    problems.push({
      name: 'HEARTH_SEARCH_DEFAULT_COUNT',
      message: `must not exceed HEARTH_SEARCH_MAX_COUNT (${maxCount})`,
    });
  }
  const issuers = [...((values.HEARTH_AUTH_ISSUERS as TrustedIssuer[] | undefined) ?? [])];
  const single = values.HEARTH_AUTH_ISSUER as string | undefined;
  const singleJwks = values.HEARTH_AUTH_JWKS as TrustedIssuer['jwks'] | undefined;
  if ((single === undefined) !== (singleJwks === undefined) && !problems.some((p) => p.name.startsWith('HEARTH_AUTH_'))) {
    problems.push({ name: single ? 'HEARTH_AUTH_JWKS' : 'HEARTH_AUTH_ISSUER', message: 'HEARTH_AUTH_ISSUER and HEARTH_AUTH_JWKS go together' });
  }
  if (single && singleJwks) issuers.unshift({ issuer: single, jwks: singleJwks });
  if (new Set(issuers.map((i) => i.issuer)).size !== issuers.length) {
    problems.push({ name: 'HEARTH_AUTH_ISSUERS', message: 'each issuer may be trusted only once' });
  }
  if (values.HEARTH_KEYRING !== undefined && values.HEARTH_KEYRING_FILE !== undefined) {
    problems.push({ name: 'HEARTH_KEYRING', message: 'give HEARTH_KEYRING or HEARTH_KEYRING_FILE, not both' });
  }
  // Listening on every interface, no address of this machine is the one clients use: the base URL
  // (the tokens' audience, every link) must be said.
  if ((host === '0.0.0.0' || host === '::') && values.HEARTH_BASE_URL === undefined && !problems.some((p) => p.name === 'HEARTH_BASE_URL')) {
    problems.push({ name: 'HEARTH_BASE_URL', message: `is required with HEARTH_HOST=${host}: the public FHIR base URL clients use (and tokens name as their audience)` });
  }
  if (values.HEARTH_MONGODB_REQUIRE_REPLICA_SET !== undefined && values.HEARTH_MONGODB_URI === undefined) {
    problems.push({ name: 'HEARTH_MONGODB_REQUIRE_REPLICA_SET', message: 'applies only with HEARTH_MONGODB_URI' });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const dataDir = (values.HEARTH_DATA_DIR as string | undefined) ?? resolve('data');
  const tokenSeconds = (values.HEARTH_AUTH_SERVER_TOKEN_LIFETIME as number | undefined) ?? 900;
  return deepFreeze({
    host,
    port,
    dataDir,
    ...(values.HEARTH_MONGODB_URI !== undefined
      ? {
          mongodb: {
            uri: values.HEARTH_MONGODB_URI as string,
            requireReplicaSet: (values.HEARTH_MONGODB_REQUIRE_REPLICA_SET as boolean | undefined) ?? true,
          },
        }
      : {}),
    protectionFile: values.HEARTH_PROTECTION_FILE as string | undefined,
    keyring:
      values.HEARTH_KEYRING !== undefined
        ? { kind: 'env' as const, json: values.HEARTH_KEYRING as string }
        : { kind: 'file' as const, path: (values.HEARTH_KEYRING_FILE as string | undefined) ?? resolve(dataDir, 'keys', 'keyring.json') },
    baseUrl: (values.HEARTH_BASE_URL as string | undefined) ?? `${tls.kind === 'off' ? 'http' : 'https'}://${urlHost}:${port}/fhir`,
    tls,
    trustedProxies,
    logLevel: (values.HEARTH_LOG_LEVEL as LogLevel | undefined) ?? 'info',
    bodyLimit: (values.HEARTH_BODY_LIMIT as number | undefined) ?? 2 * 1024 * 1024,
    corsOrigins: (values.HEARTH_CORS_ORIGINS as string[] | undefined) ?? [],
    maxJsonDepth: (values.HEARTH_MAX_JSON_DEPTH as number | undefined) ?? 48,
    timeouts: {
      headersMs: (values.HEARTH_HEADERS_TIMEOUT_MS as number | undefined) ?? 10_000,
      requestMs: (values.HEARTH_REQUEST_TIMEOUT_MS as number | undefined) ?? 30_000,
      keepAliveMs: (values.HEARTH_KEEPALIVE_TIMEOUT_MS as number | undefined) ?? 5_000,
      idleMs: (values.HEARTH_IDLE_TIMEOUT_MS as number | undefined) ?? 60_000,
    },
    maxConnectionsPerAddress: (values.HEARTH_MAX_CONNECTIONS_PER_ADDRESS as number | undefined) ?? 256,
    rateLimit: {
      perSecond: values.HEARTH_RATE_LIMIT === 'off' ? undefined : ((values.HEARTH_RATE_LIMIT as number | undefined) ?? 100),
      byRole: (values.HEARTH_RATE_LIMIT_ROLES as Record<string, number> | undefined) ?? {},
      redisUrl: values.HEARTH_RATE_LIMIT_REDIS as string | undefined,
    },
    search: { defaultCount, maxCount, decryptBound: (values.HEARTH_SEARCH_DECRYPT_BOUND as number | undefined) ?? 10_000 },
    bundles: {
      maxEntries: (values.HEARTH_BUNDLE_MAX_ENTRIES as number | undefined) ?? 1000,
      bodyLimit: (values.HEARTH_BUNDLE_BODY_LIMIT as number | undefined) ?? 32 * 1024 * 1024,
    },
    updateCreate: (values.HEARTH_UPDATE_CREATE as boolean | undefined) ?? false,
    audit: {
      retentionDays: (values.HEARTH_AUDIT_RETENTION_DAYS as number | undefined) ?? 2192,
      signingKey: (values.HEARTH_AUDIT_SIGNING_KEY as string | undefined) ?? resolve(dataDir, 'keys', 'audit-signing-key.pem'),
      witness: values.HEARTH_AUDIT_WITNESS as AuditConfig['witness'],
      indexWaitMs: (values.HEARTH_AUDIT_INDEX_WAIT_MS as number | undefined) ?? 5000,
    },
    auth: {
      issuers,
      server: values.HEARTH_AUTH_SERVER === false ? undefined : { accessTokenSeconds: tokenSeconds },
      clockSkewSeconds: (values.HEARTH_AUTH_CLOCK_SKEW as number | undefined) ?? 30,
      maxTokenLifetimeSeconds: (values.HEARTH_AUTH_MAX_TOKEN_LIFETIME as number | undefined) ?? 3600,
      roleClaim: (values.HEARTH_AUTH_ROLE_CLAIM as string | undefined) ?? 'role',
      jwksCooldownSeconds: (values.HEARTH_AUTH_JWKS_COOLDOWN as number | undefined) ?? 30,
      relationship: (values.HEARTH_AUTH_RELATIONSHIP as boolean | undefined) ?? false,
      relationshipParam: (values.HEARTH_AUTH_RELATIONSHIP_PARAM as string | undefined) ?? 'general-practitioner',
    },
  });
}

function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname) || /^127\./.test(url.hostname);
}

function parseIssuerUrl(raw: string): string | { error: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { error: `must be the issuer's URL exactly as in its tokens' "iss", got "${raw}"` };
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackUrl(url))) {
    return { error: `must be an https URL (http only on loopback), got "${raw}"` };
  }
  return raw;
}

/** A JWKS given as an https URL (http on loopback only, for local issuers) or as a file path. */
function parseJwks(raw: string): TrustedIssuer['jwks'] | { error: string } {
  if (/^[a-z]+:\/\//i.test(raw)) {
    const checked = parseIssuerUrl(raw);
    if (typeof checked !== 'string') return { error: checked.error.replace('the issuer\'s URL exactly as in its tokens\' "iss"', 'a JWKS URL') };
    return { kind: 'url', url: raw };
  }
  let text: string;
  try {
    text = readFileSync(raw, 'utf8');
  } catch (err) {
    return { error: `cannot read JWKS file "${raw}": ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}` };
  }
  try {
    const jwks = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) return { error: `"${raw}" is not a JWKS (no "keys" list)` };
    if (jwks.keys.some((k) => typeof k !== 'object' || k === null || 'd' in (k as object))) {
      return { error: `"${raw}" must hold public keys only` };
    }
    return { kind: 'file', keys: jwks as { keys: object[] } };
  } catch {
    return { error: `"${raw}" is not JSON` };
  }
}

// See: SMART App Launch 2.x, conformance.html#capabilities
const SMART_CAPABILITIES = new Set([
  'launch-ehr', 'launch-standalone', 'authorize-post', 'client-public', 'client-confidential-symmetric',
  'client-confidential-asymmetric', 'sso-openid-connect', 'context-banner', 'context-style', 'context-ehr-patient',
  'context-ehr-encounter', 'context-standalone-patient', 'context-standalone-encounter', 'permission-offline',
  'permission-online', 'permission-patient', 'permission-user', 'permission-v1', 'permission-v2',
]);

function parseIssuers(raw: string): TrustedIssuer[] | { error: string } {
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    return { error: 'must be a JSON list of {"issuer", "jwks"} objects' };
  }
  if (!Array.isArray(list) || list.length === 0) return { error: 'must be a non-empty JSON list of {"issuer", "jwks"} objects' };
  const out: TrustedIssuer[] = [];
  for (const [n, entry] of list.entries()) {
    const e = entry as Record<string, unknown>;
    if (typeof e !== 'object' || e === null || typeof e.issuer !== 'string' || typeof e.jwks !== 'string') {
      return { error: `entry ${n} must have string "issuer" and "jwks"` };
    }
    const unknown = Object.keys(e).filter((k) => !['issuer', 'jwks', 'authorization_endpoint', 'token_endpoint', 'capabilities'].includes(k));
    if (unknown.length) return { error: `entry ${n} has unknown field "${unknown[0]}"` };
    const issuer = parseIssuerUrl(e.issuer);
    if (typeof issuer !== 'string') return { error: `entry ${n} issuer ${issuer.error}` };
    const jwks = parseJwks(e.jwks);
    if ('error' in jwks) return { error: `entry ${n} jwks ${jwks.error}` };
    for (const k of ['authorization_endpoint', 'token_endpoint'] as const) {
      if (e[k] !== undefined && (typeof e[k] !== 'string' || typeof parseIssuerUrl(e[k] as string) !== 'string')) {
        return { error: `entry ${n} ${k} must be an https URL` };
      }
    }
    const caps = e.capabilities;
    if (caps !== undefined && (!Array.isArray(caps) || !caps.every((c) => typeof c === 'string' && SMART_CAPABILITIES.has(c)))) {
      const bad = Array.isArray(caps) ? caps.find((c) => typeof c !== 'string' || !SMART_CAPABILITIES.has(c)) : caps;
      return { error: `entry ${n} capabilities must be a list of SMART capabilities; "${String(bad)}" is none` };
    }
    out.push({
      issuer,
      jwks,
      authorizationEndpoint: e.authorization_endpoint as string | undefined,
      tokenEndpoint: e.token_endpoint as string | undefined,
      ...(caps ? { capabilities: caps as string[] } : {}),
    });
  }
  return out;
}

function deepFreeze<T extends object>(value: T): T {
  for (const v of Object.values(value)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(value);
}

/**
 * For process entry points (server, CLI): the configuration, or a clear message naming every
 * mistake and exit status 78 (EX_CONFIG). Never a stack trace.
 */
export function configOrExit(env: Env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) exitWithConfigError(err);
    throw err;
  }
}

export function exitWithConfigError(err: ConfigError): never {
  process.stderr.write(`hearth: ${err.message}\n`);
  process.exit(78);
}
