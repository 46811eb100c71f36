// For benchmarks that compare the stores: Hearth on the embedded store and Hearth on MongoDB in
// one process, each listening on its port, with a bench token both accept. MongoDB is
// BENCH_MONGODB_URI (or HEARTH_TEST_MONGODB_URI) when set — a real replica set —, otherwise the
// in-memory wire-protocol test server (jongodb), whose figures say nothing of a real MongoDB's.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startWireServer } from '../scripts/wire-server.ts';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';

export interface TwoStores {
  readonly embedded: FastifyInstance;
  readonly mongo: FastifyInstance;
  readonly token: string;
  /** which MongoDB it is */
  readonly server: string;
  close(): Promise<void>;
}

export async function serveTwoStores(embeddedPort: number, mongoPort: number, name: string): Promise<TwoStores> {
  const dir = mkdtempSync(join(tmpdir(), `hearth-bench-${name}-`));
  const configured = process.env.BENCH_MONGODB_URI ?? process.env.HEARTH_TEST_MONGODB_URI;
  const wire = configured ? undefined : await startWireServer();
  const base = configured ?? wire!.uri;
  const uri = base.replace(/^(mongodb(?:\+srv)?:\/\/[^/?]*)(\/[^?]*)?/, `$1/hearth_bench_${Date.now()}`);
  const issuer = 'https://bench-issuer.local';
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256' }] }));
  const env = {
    HEARTH_LOG_LEVEL: 'error',
    HEARTH_AUTH_ISSUER: issuer,
    HEARTH_AUTH_JWKS: join(dir, 'jwks.json'),
    HEARTH_BASE_URL: 'http://127.0.0.1/fhir',
    HEARTH_RATE_LIMIT: 'off',
    HEARTH_TLS: 'off',
    HEARTH_TRUSTED_PROXIES: '127.0.0.1',
  };
  const embedded = await buildApp(loadConfig({ ...env, HEARTH_DATA_DIR: join(dir, 'embedded') }));
  const mongo = await buildApp(loadConfig({ ...env, HEARTH_DATA_DIR: join(dir, 'mongo'), HEARTH_MONGODB_URI: uri }));
  await embedded.listen({ host: '127.0.0.1', port: embeddedPort });
  await mongo.listen({ host: '127.0.0.1', port: mongoPort });
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ scope: 'system/*.cruds', sub: 'bench', client_id: 'bench' })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
    .setIssuer(issuer)
    .setAudience('http://127.0.0.1/fhir')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
  return {
    embedded,
    mongo,
    token,
    server: configured ? 'the configured MongoDB (BENCH_MONGODB_URI / HEARTH_TEST_MONGODB_URI)' : wire!.kind,
    close: async () => {
      await embedded.close();
      await mongo.close();
      await wire?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
