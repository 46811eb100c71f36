// npm run bench:mongo: Hearth on the MongoDB adapter next to Hearth on the embedded store, started
// in the same run (in a child process), under the same load: read by id, search, create; prints
// each and the ratio MongoDB ÷ embedded, and says which MongoDB it ran against:
// BENCH_MONGODB_URI (or HEARTH_TEST_MONGODB_URI) when set — a real replica set —, otherwise the
// wire-protocol test server (jongodb, in memory: its figures say nothing of a real MongoDB's).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startWireServer } from '../scripts/wire-server.ts';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { freePort } from './free-port.ts';

const DURATION = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 10;
const SEED = 200;

if (process.argv[2] === 'serve') {
  // The child: both servers, seeded; one JSON line when ready.
  const [embeddedPort, mongoPort] = process.argv.slice(3).map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-mongo-'));
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
  const patient = (i: number) => ({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:bench', value: `p${i}` }],
    name: [{ family: `Family${i % 20}`, given: ['Bench'] }],
    gender: i % 2 ? 'female' : 'male',
    birthDate: '1970-01-01',
  });
  const readIds: string[] = [];
  for (const app of [embedded, mongo]) {
    let first = '';
    for (let i = 0; i < SEED; i++) {
      const r = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(patient(i)) });
      if (i === 0) first = (JSON.parse(r.body) as { id: string }).id;
    }
    readIds.push(first);
  }
  process.stdout.write(`${JSON.stringify({ readIds, token, server: configured ? 'the configured MongoDB (BENCH_MONGODB_URI / HEARTH_TEST_MONGODB_URI)' : wire!.kind, createBody: JSON.stringify(patient(SEED)) })}\n`);
  process.on('SIGTERM', async () => {
    await embedded.close();
    await mongo.close();
    await wire?.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
} else {
  const embeddedPort = await freePort();
  const mongoPort = await freePort();
  const child: ChildProcess = spawn(process.execPath, [new URL(import.meta.url).pathname, 'serve', String(embeddedPort), String(mongoPort)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = await once(createInterface({ input: child.stdout! }), 'line');
  type Ready = { readIds: string[]; token: string; server: string; createBody: string };
  const { readIds, token, server, createBody } = JSON.parse(line as string) as Ready;
  const load = async (url: string, method: 'GET' | 'POST' = 'GET', body?: string) => {
    const r = await autocannon({
      url,
      method,
      body,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/fhir+json' } : {}) },
      connections: CONNECTIONS,
      duration: DURATION,
    });
    return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.non2xx };
  };
  const bases = [`http://127.0.0.1:${embeddedPort}/fhir`, `http://127.0.0.1:${mongoPort}/fhir`];
  const rows: [string, (base: string, n: number) => Promise<{ rps: number; p99: number; errors: number }>][] = [
    ['read by id', (b, n) => load(`${b}/Patient/${readIds[n]}`)],
    ['search (family, _count=10, total)', (b) => load(`${b}/Patient?family=family7&_count=10&_total=accurate`)],
    ['create (encrypted, audited)', (b) => load(`${b}/Patient`, 'POST', createBody)],
  ];
  process.stdout.write(`MongoDB adapter vs embedded store, ${CONNECTIONS} connections, ${DURATION} s each; MongoDB: ${server}\n`);
  process.stdout.write('| scenario | embedded req/s (p99 ms) | MongoDB req/s (p99 ms) | MongoDB ÷ embedded |\n| --- | --- | --- | --- |\n');
  for (const [name, run] of rows) {
    const e = await run(bases[0], 0);
    const m = await run(bases[1], 1);
    const errors = e.errors + m.errors ? ` (errors: ${e.errors} / ${m.errors})` : '';
    process.stdout.write(`| ${name} | ${e.rps.toFixed(0)} (${e.p99}) | ${m.rps.toFixed(0)} (${m.p99}) | ${(m.rps / e.rps).toFixed(2)}${errors} |\n`);
  }
  child.kill('SIGTERM');
  await once(child, 'exit');
}
