import { isIP } from 'node:net';
import { resolve } from 'node:path';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly baseUrl: string;
  readonly logLevel: LogLevel;
  readonly bodyLimit: number;
  readonly maxJsonDepth: number;
  readonly search: { readonly defaultCount: number; readonly maxCount: number };
  readonly updateCreate: boolean;
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
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

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
    doc: 'interface to listen on; loopback only until authorization is enabled (default 127.0.0.1)',
    parse: (raw: string) =>
      LOOPBACK.has(raw)
        ? raw
        : isIP(raw) === 0
          ? { error: `must be an IP address or "localhost", got "${raw}"` }
          : {
              error: `must be a loopback address (127.0.0.1, ::1, localhost) until authorization is enabled, got "${raw}"`,
            },
  },
  HEARTH_PORT: { doc: 'TCP port (default 8080; 0 picks a free port)', parse: integer(0, 65535) },
  HEARTH_DATA_DIR: {
    doc: 'directory holding every file the server writes (default ./data)',
    parse: (raw: string) => (raw.trim() === '' ? { error: 'must not be empty' } : resolve(raw)),
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
  HEARTH_BODY_LIMIT: { doc: 'largest request body in bytes (default 2097152)', parse: integer(1024, 64 * 1024 * 1024) },
  HEARTH_MAX_JSON_DEPTH: { doc: 'deepest JSON nesting accepted (default 48)', parse: integer(8, 256) },
  HEARTH_SEARCH_DEFAULT_COUNT: { doc: 'page size when _count is absent (default 20)', parse: integer(1, 10000) },
  HEARTH_SEARCH_MAX_COUNT: { doc: 'largest _count honoured (default 500)', parse: integer(1, 10000) },
  HEARTH_UPDATE_CREATE: { doc: 'allow PUT to create a resource with a client id (default false)', parse: boolean },
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
  const port = (values.HEARTH_PORT as number | undefined) ?? 8080;
  const defaultCount = (values.HEARTH_SEARCH_DEFAULT_COUNT as number | undefined) ?? 20;
  const maxCount = (values.HEARTH_SEARCH_MAX_COUNT as number | undefined) ?? 500;
  if (defaultCount > maxCount) {
    problems.push({
      name: 'HEARTH_SEARCH_DEFAULT_COUNT',
      message: `must not exceed HEARTH_SEARCH_MAX_COUNT (${maxCount})`,
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return deepFreeze({
    host,
    port,
    dataDir: (values.HEARTH_DATA_DIR as string | undefined) ?? resolve('data'),
    baseUrl: (values.HEARTH_BASE_URL as string | undefined) ?? `http://${urlHost}:${port}/fhir`,
    logLevel: (values.HEARTH_LOG_LEVEL as LogLevel | undefined) ?? 'info',
    bodyLimit: (values.HEARTH_BODY_LIMIT as number | undefined) ?? 2 * 1024 * 1024,
    maxJsonDepth: (values.HEARTH_MAX_JSON_DEPTH as number | undefined) ?? 48,
    search: { defaultCount, maxCount },
    updateCreate: (values.HEARTH_UPDATE_CREATE as boolean | undefined) ?? false,
  });
}

function deepFreeze<T extends object>(value: T): T {
  for (const v of Object.values(value)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(value);
}
