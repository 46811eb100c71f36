// A MongoDB for the tests: HEARTH_TEST_MONGODB_URI when set (a real replica set), otherwise a
// MongoDB-wire-compatible server started here from the npm package
// @jongodb/memory-server-bin-linux-x64-gnu (in memory, one per test file, on a free loopback
// port). Each call gets a database of its own.
import { randomUUID } from 'node:crypto';
import { afterAll } from 'vitest';
import { startWireServer, type WireServer } from '../../scripts/wire-server.ts';
import { mongoStorage } from '../../src/store/mongo/mongo-storage.ts';
import type { Storage } from '../../src/store/port.ts';

export { startWireServer };

const external = process.env.HEARTH_TEST_MONGODB_URI;

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
