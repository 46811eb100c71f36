// npm run bench:mongo: Hearth on the MongoDB adapter next to Hearth on the embedded store, started
// in the same run (in a child process), under the same load: read by id, search, create; prints
// each and the ratio MongoDB ÷ embedded, and says which MongoDB it ran against:
// BENCH_MONGODB_URI (or HEARTH_TEST_MONGODB_URI) when set — a real replica set —, otherwise the
// wire-protocol test server (jongodb, in memory: its figures say nothing of a real MongoDB's).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { freePort } from './free-port.ts';
import { serveTwoStores } from './two-stores.ts';

const DURATION = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 10;
const SEED = 200;

if (process.argv[2] === 'serve') {
  // The child: both servers, seeded; one JSON line when ready.
  const [embeddedPort, mongoPort] = process.argv.slice(3).map(Number);
  const { embedded, mongo, token, server, close } = await serveTwoStores(embeddedPort, mongoPort, 'mongo');
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
  process.stdout.write(`${JSON.stringify({ readIds, token, server, createBody: JSON.stringify(patient(SEED)) })}\n`);
  process.on('SIGTERM', async () => {
    await close();
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
