// A MongoDB for the tests: HEARTH_TEST_MONGODB_URI when set (a real replica set), otherwise a
// MongoDB-wire-compatible server started here from the npm package
// @jongodb/memory-server-bin-linux-x64-gnu (in memory, one per test file, on a free loopback
// port). Each call gets a database of its own.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll } from 'vitest';
import { mongoStorage } from '../../src/store/mongo/mongo-storage.ts';
import type { Storage } from '../../src/store/port.ts';

export interface WireServer {
  /** connection string without a database */
  readonly uri: string;
  /** what the tests ran against, for their names and the benchmark's report */
  readonly kind: string;
  stop(): Promise<void>;
}

const external = process.env.HEARTH_TEST_MONGODB_URI;

/** The wire-compatible server's binary, from its npm package. */
export function wireServerBinary(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@jongodb/memory-server-bin-linux-x64-gnu/package.json')), 'bin', 'jongodb');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

/** Starts the wire-compatible server: a single-node replica set (rs0) unless `standalone`. */
export async function startWireServer(standalone = false): Promise<WireServer> {
  const port = await freePort();
  const args = [`--host=127.0.0.1`, `--port=${port}`];
  if (!standalone) args.push('--topology-profile=singleNodeReplicaSet', '--replica-set-name=rs0');
  const child: ChildProcess = spawn(wireServerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Never outlives the test process, however it ends.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  const uri = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the wire server did not start: ${out}`)), 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /JONGODB_URI=(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(standalone ? `mongodb://127.0.0.1:${port}/` : `mongodb://127.0.0.1:${port}/?replicaSet=rs0`);
      }
    });
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`the wire server exited (${code}): ${out}`)));
  });
  return {
    uri,
    kind: `jongodb ${standalone ? 'standalone' : 'single-node replica set'} (MongoDB wire protocol, in memory)`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

let shared: Promise<WireServer> | undefined;
afterAll(async () => {
  const server = shared;
  shared = undefined;
  await (await server)?.stop();
});

/** The server of this test file (started on first use, stopped after the file), or the configured one. */
export function testMongo(): Promise<WireServer> {
  if (external) return Promise.resolve({ uri: external, kind: 'HEARTH_TEST_MONGODB_URI', stop: async () => undefined });
  shared ??= startWireServer();
  return shared;
}

/** A URI naming a database no other test uses. */
export function withDatabase(uri: string, name = `hearth_test_${randomUUID().slice(0, 8)}`): string {
  const u = new URL(uri);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Storage on a database of its own, on the test file's server. */
export async function mongoTestStorage(clock?: () => Date, database?: string): Promise<Storage & { uri: string }> {
  const server = await testMongo();
  const uri = withDatabase(server.uri, database);
  const storage = await mongoStorage({ uri, requireReplicaSet: true, clock });
  return Object.assign(storage, { uri });
}
