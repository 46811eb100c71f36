// npm run bench:bundles: resources per second loaded through 1,000-entry transactions vs single
// creates, in one run, on the embedded store and on MongoDB (BENCH_MONGODB_URI or
// HEARTH_TEST_MONGODB_URI when set, otherwise the in-memory wire-protocol test server, whose
// figures say nothing of a real MongoDB's). Every resource is validated, encrypted, indexed and
// audited either way. BENCH_STORES=embedded (or MongoDB) runs one store only. The servers run in
// a child process so the load does not share their CPU time with the client's bookkeeping.
// Single creates and transactions are measured in turns (a second of the one, then one of the
// other), so that the drift in this machine's speed falls on both alike.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { freePort } from './free-port.ts';
import { serveTwoStores } from './two-stores.ts';

const DURATION = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 10;
const ENTRIES = 1000;
const TRANSACTIONS = Number(process.env.BENCH_TRANSACTIONS ?? 5);

const observation = (subject: string, n: number) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
  subject: { reference: subject },
  effectiveDateTime: '2026-01-01T10:00:00Z',
  valueQuantity: { value: 5 + (n % 40) / 10, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
});

if (process.argv[2] === 'serve') {
  const [embeddedPort, mongoPort] = process.argv.slice(3).map(Number);
  const { token, server, close } = await serveTwoStores(embeddedPort, mongoPort, 'bundles');
  process.stdout.write(`${JSON.stringify({ token, server })}\n`);
  process.on('SIGTERM', async () => {
    await close();
    process.exit(0);
  });
} else {
  const ports = [await freePort(), await freePort()];
  const child: ChildProcess = spawn(process.execPath, [new URL(import.meta.url).pathname, 'serve', ...ports.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(createInterface({ input: child.stdout! }), 'line');
  const { token, server } = JSON.parse(line as string) as { token: string; server: string };
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' };

  /** Single creates of the same Observation by CONNECTIONS clients for `seconds`: how many, in how long. */
  const singles = async (base: string, seconds: number) => {
    const r = await autocannon({ url: `${base}/Observation`, method: 'POST', body: JSON.stringify(observation('Patient/bench', 1)), headers, connections: CONNECTIONS, duration: seconds });
    return { count: r.requests.total, seconds: r.duration, errors: r.errors + r.non2xx };
  };
  /** One transaction of a Patient and 999 Observations referencing it by urn:uuid: its time in ms. */
  const transaction = async (base: string) => {
    const patientUrl = `urn:uuid:${randomUUID()}`;
    const entry = [
      { fullUrl: patientUrl, request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', name: [{ family: 'Bulk' }], birthDate: '1970-01-01' } },
      ...Array.from({ length: ENTRIES - 1 }, (_, n) => ({ request: { method: 'POST', url: 'Observation' }, resource: observation(patientUrl, n) })),
    ];
    const body = JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry });
    const t0 = performance.now();
    const res = await fetch(`${base}/`, { method: 'POST', headers, body });
    await res.text();
    return { ms: performance.now() - t0, failed: res.status !== 200 };
  };
  /**
   * In turns, so that the machine's drifting speed falls on both alike: single creates for
   * DURATION / TRANSACTIONS seconds, then one transaction, TRANSACTIONS times.
   */
  const measure = async (base: string) => {
    const turn = Math.max(1, Math.round(DURATION / TRANSACTIONS));
    let count = 0;
    let seconds = 0;
    let errors = 0;
    const ms: number[] = [];
    for (let i = 0; i < TRANSACTIONS; i++) {
      const s = await singles(base, turn);
      count += s.count;
      seconds += s.seconds;
      errors += s.errors;
      const t = await transaction(base);
      ms.push(t.ms);
      if (t.failed) errors++;
    }
    const total = ms.reduce((a, b) => a + b, 0);
    return {
      singles: count / seconds,
      transactions: (TRANSACTIONS * ENTRIES * 1000) / total,
      median: ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)],
      errors,
    };
  };
  process.stdout.write(
    `Bulk loading: ${TRANSACTIONS} transactions of ${ENTRIES} entries (one after another) vs single creates (${CONNECTIONS} connections, ${DURATION} s), ` +
    `in turns; MongoDB: ${server}\n`,
  );
  process.stdout.write('| store | single creates, resources/s | transactions, resources/s (median ms per transaction) | transactions ÷ single creates |\n| --- | --- | --- | --- |\n');
  const only = process.env.BENCH_STORES?.split(',');
  for (const [name, port] of [['embedded', ports[0]], ['MongoDB', ports[1]]] as const) {
    if (only && !only.includes(name)) continue;
    const m = await measure(`http://127.0.0.1:${port}/fhir`);
    const errors = m.errors ? ` (errors: ${m.errors})` : '';
    process.stdout.write(`| ${name} | ${m.singles.toFixed(0)} | ${m.transactions.toFixed(0)} (${m.median.toFixed(0)}) | ${(m.transactions / m.singles).toFixed(1)}${errors} |\n`);
  }
  child.kill('SIGTERM');
  await once(child, 'exit');
}
