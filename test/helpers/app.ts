import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { ResourceStore } from '../../src/store/resource-store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

export const BASE = 'http://127.0.0.1:8080/fhir';
export const FHIR_JSON = 'application/fhir+json';

export interface TestApp {
  app: FastifyInstance;
  store: ResourceStore;
  /** Moves the injected clock forward. */
  tick: (ms: number) => void;
  now: () => Date;
}

/** The real app on the real SQLite adapter (in memory unless a data dir is given), with a controllable clock. */
export async function testApp(env: Record<string, string> = {}, options: { dataDir?: string } = {}): Promise<TestApp> {
  let t = Date.parse('2026-01-15T10:00:00.000Z');
  const clock = () => new Date(t);
  const config = loadConfig({ HEARTH_LOG_LEVEL: 'silent', HEARTH_DATA_DIR: options.dataDir ?? tempDir(), ...env });
  const store = new SqliteStore({
    dataDir: options.dataDir ?? ':memory:',
    clock: () => {
      t += 1;
      return new Date(t);
    },
  });
  const app = await buildApp(config, { store, clock });
  return {
    app,
    store,
    tick: (ms) => {
      t += ms;
    },
    now: clock,
  };
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'hearth-test-'));
}

export function json(res: { body: string }): any {
  return JSON.parse(res.body);
}

export async function post(app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': FHIR_JSON, ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  } as InjectOptions);
}

export async function put(app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'PUT',
    url,
    headers: { 'content-type': FHIR_JSON, ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  } as InjectOptions);
}

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
    .map((file) => ({ file, resource: JSON.parse(readFileSync(new URL(file, examplesDir), 'utf8')) }));
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
