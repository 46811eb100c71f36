// Child process of bench/run.ts: Hearth (real app, file-backed SQLite) and a bare Fastify
// baseline serving the same bytes, on two loopback ports. Prints one JSON line when ready.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';

const dataDir = join(tmpdir(), `hearth-bench-${process.pid}`);
rmSync(dataDir, { recursive: true, force: true });
const hearthPort = Number(process.argv[2]);
const barePort = Number(process.argv[3]);
const config = loadConfig({ HEARTH_PORT: String(hearthPort), HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn' });
const hearth = await buildApp(config);
await hearth.listen({ host: '127.0.0.1', port: hearthPort });

// Seed: 1,000 patients, the read target among them.
const patient = (i: number) => ({
  resourceType: 'Patient',
  identifier: [{ system: 'urn:bench', value: `p${i}` }],
  name: [{ family: `Family${i % 100}`, given: ['Bench', `G${i}`] }],
  gender: i % 2 ? 'female' : 'male',
  birthDate: `19${String(50 + (i % 50)).padStart(2, '0')}-0${1 + (i % 9)}-1${i % 10}`,
  address: [{ line: [`${i} Main St`], city: 'Springfield', postalCode: String(10000 + i) }],
});
let readId = '';
for (let i = 0; i < 1000; i++) {
  const res = await hearth.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { 'content-type': 'application/fhir+json' },
    payload: JSON.stringify(patient(i)),
  });
  if (i === 500) readId = JSON.parse(res.body).id;
}
const readBody = (await hearth.inject({ method: 'GET', url: `/fhir/Patient/${readId}` })).body;
const searchUrl = '/fhir/Patient?family=Family7&_count=10';
const searchBody = (await hearth.inject({ method: 'GET', url: searchUrl })).body;

const bare = Fastify({ logger: false });
bare.addContentTypeParser('application/fhir+json', { parseAs: 'string' }, (_req, body, done) =>
  done(null, JSON.parse(body as string)),
);
bare.get('/Patient/:id', async (_req, reply) => reply.type('application/fhir+json').send(readBody));
bare.get('/Patient', async (_req, reply) => reply.type('application/fhir+json').send(searchBody));
bare.post('/Patient', async (req, reply) => reply.code(201).send(req.body));
await bare.listen({ host: '127.0.0.1', port: barePort });

process.stdout.write(`${JSON.stringify({ readId, searchUrl, createBody: JSON.stringify(patient(5000)) })}\n`);
process.on('SIGTERM', async () => {
  await hearth.close();
  await bare.close();
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
});
