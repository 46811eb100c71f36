// The MongoDB-wire-compatible server the tests and the MongoDB benchmark run against when no
// real MongoDB is configured: jongodb, a single binary shipped in the npm package
// @jongodb/memory-server-bin-linux-x64-gnu (an optional dependency: Linux x64 only, left out of
// the container image), in memory, on a free loopback port.
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';

export interface WireServer {
  /** connection string without a database */
  readonly uri: string;
  /** what the tests ran against, for their names and the benchmark's report */
  readonly kind: string;
  stop(): Promise<void>;
}

/** The wire-compatible server's binary, from its npm package. */
export function wireServerBinary(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('@jongodb/memory-server-bin-linux-x64-gnu/package.json')), 'bin', 'jongodb');
  } catch {
    // An optional dependency: published for Linux x64 (glibc) only.
    throw new Error('the MongoDB wire-protocol test server is not installed (it exists for Linux x64 only): set HEARTH_TEST_MONGODB_URI to a MongoDB replica set');
  }
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
      // In memory, nothing to flush; it takes seconds to honour SIGTERM.
      child.kill('SIGKILL');
      await exited;
    },
  };
}
