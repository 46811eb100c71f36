// Child process of bench/run.ts. Four servers on loopback, each over a file-backed SQLite store
// of its own (so that no server's audit writer or indexer thread works for another's load):
// Hearth as deployed (JWT verification, authorization, durable audit), Hearth with a verifier
// that accepts any bearer as a system/*.cruds principal (the baseline for the cost of token
// verification), Hearth whose audit facts go nowhere (the baseline for the cost of the audit
// trail: building, indexing, chaining and durably committing each event), Hearth without
// encryption at rest, Hearth without the rate limiter (the others count every request against a
// limit too high to refuse any: its cost without its refusals), Hearth as deployed over HTTPS
// (the others speak plain HTTP, as behind a TLS-terminating proxy), Hearth with neither
// encryption at rest nor the audit trail (the baseline of the audit issue's create), and a bare
// Fastify route serving the same bytes. Prints one JSON line when
// ready: the id of the read target in each store, in the order of the ports.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import Fastify from 'fastify';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { buildApp } from '../src/app.ts';
import type { Principal } from '../src/auth/authorize.ts';
import { parseScopes } from '../src/auth/scopes.ts';
import { loadConfig } from '../src/config/config.ts';

const [securedPort, openPort, unauditedPort, plainPort, barePort, unlimitedPort, tlsPort, neitherPort] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-'));
const issuer = 'https://bench-issuer.local';
const { publicKey, privateKey } = await generateKeyPair('ES256');
writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256' }] }));
const env = {
  HEARTH_DATA_DIR: join(dir, 'data'),
  // Errors only: stdout carries the one JSON line run.ts reads (first-start warnings would come first).
  HEARTH_LOG_LEVEL: 'error',
  HEARTH_AUTH_ISSUER: issuer,
  HEARTH_AUTH_JWKS: join(dir, 'jwks.json'),
  HEARTH_BASE_URL: 'http://127.0.0.1/fhir',
  HEARTH_RATE_LIMIT: '1000000',
  // Plain HTTP, as behind a TLS-terminating proxy (bench/run.ts measures TLS on its own).
  HEARTH_TLS: 'off',
  HEARTH_TRUSTED_PROXIES: '127.0.0.1',
};
const config = loadConfig(env);
const secured = await buildApp(config);
/** The configuration of one more server: a data directory of its own, and `more` settings. */
const own = (name: string, more: Record<string, string> = {}) => loadConfig({ ...env, HEARTH_DATA_DIR: join(dir, name), ...more });
const principal: Principal = {
  issuer,
  subject: 'bench',
  grants: parseScopes('system/*.cruds'),
  scopes: ['system/*.cruds'],
  expiresAt: 4_000_000_000,
};
const open = await buildApp(own('open'), { verifier: { verify: async () => principal } });
const unaudited = await buildApp(own('unaudited'), { auditWriter: async () => undefined });
const unlimited = await buildApp(own('unlimited', { HEARTH_RATE_LIMIT: 'off' }));
// Hearth as deployed over HTTPS (its development certificate), beside the same over plain HTTP.
const overTls = await buildApp(own('tls', { HEARTH_TLS: 'on' }));
// The same server without encryption at rest: an empty protection policy, a store of its own.
writeFileSync(join(dir, 'protection-none.json'), JSON.stringify({ protect: {} }));
const unencrypted = { HEARTH_PROTECTION_FILE: join(dir, 'protection-none.json') };
const plain = await buildApp(own('plain', unencrypted));
// And without the audit trail as well.
const neither = await buildApp(own('neither', unencrypted), { auditWriter: async () => undefined });
await plain.listen({ host: '127.0.0.1', port: plainPort });
await neither.listen({ host: '127.0.0.1', port: neitherPort });
await secured.listen({ host: '127.0.0.1', port: securedPort });
await open.listen({ host: '127.0.0.1', port: openPort });
await unaudited.listen({ host: '127.0.0.1', port: unauditedPort });
await unlimited.listen({ host: '127.0.0.1', port: unlimitedPort });
await overTls.listen({ host: '127.0.0.1', port: tlsPort });

const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({ scope: 'system/*.cruds', sub: 'bench', client_id: 'bench' })
  .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
  .setIssuer(issuer)
  .setAudience(config.baseUrl)
  .setIssuedAt(now)
  .setExpirationTime(now + 3600)
  .sign(privateKey);

// Seed: 1,000 patients, the read target among them.
const patient = (i: number) => ({
  resourceType: 'Patient',
  identifier: [{ system: 'urn:bench', value: `p${i}` }],
  name: [{ family: `Family${i % 100}`, given: ['Bench', `G${i}`] }],
  gender: i % 2 ? 'female' : 'male',
  birthDate: `19${String(50 + (i % 50)).padStart(2, '0')}-0${1 + (i % 9)}-1${i % 10}`,
  address: [{ line: [`${i} Main St`], city: 'Springfield', postalCode: String(10000 + i) }],
});
const auth = { authorization: `Bearer ${token}` };
// In the order of the ports: secured, open, unaudited, plain (the bare server between), unlimited, TLS, neither.
const servers = [secured, open, unaudited, plain, unlimited, overTls, neither];
const readIds = servers.map(() => '');
for (let i = 0; i < 1000; i++) {
  for (const [n, app] of servers.entries()) {
    const res = await app.inject({
      method: 'POST',
      url: '/fhir/Patient',
      headers: { 'content-type': 'application/fhir+json', ...auth },
      payload: JSON.stringify(patient(i)),
    });
    if (i === 500) readIds[n] = JSON.parse(res.body).id;
  }
}
const readId = readIds[0];
const readBody = (await secured.inject({ method: 'GET', url: `/fhir/Patient/${readId}`, headers: auth })).body;
const searchUrl = '/fhir/Patient?family=Family7&_count=10';
const searchBody = (await secured.inject({ method: 'GET', url: searchUrl, headers: auth })).body;

const bare = Fastify({ logger: false });
bare.addContentTypeParser('application/fhir+json', { parseAs: 'string' }, (_req, body, done) => done(null, JSON.parse(body as string)));
bare.get('/Patient/:id', async (_req, reply) => reply.type('application/fhir+json').send(readBody));
bare.get('/Patient', async (_req, reply) => reply.type('application/fhir+json').send(searchBody));
bare.post('/Patient', async (req, reply) => reply.code(201).send(req.body));
await bare.listen({ host: '127.0.0.1', port: barePort });

// With BENCH_PROFILE=<file> (bench/profile.ts), the request thread is profiled from here on: after
// seeding, so that the profile shows requests only.
const profiler = process.env.BENCH_PROFILE ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}

process.stdout.write(`${JSON.stringify({ readIds, searchUrl, token, createBody: JSON.stringify(patient(5000)) })}\n`);
process.on('SIGTERM', async () => {
  if (profiler) writeFileSync(process.env.BENCH_PROFILE!, JSON.stringify((await profiler.post('Profiler.stop')).profile));
  await secured.close();
  await open.close();
  await unaudited.close();
  await plain.close();
  await neither.close();
  await unlimited.close();
  await overTls.close();
  await bare.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
});
