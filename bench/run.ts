// npm run bench: Hearth next to a bare Fastify route serving the same JSON, started in the same
// run, under the same load; prints throughput, latency and the ratio of each pair. Then start-up
// time and resident memory of the real server process.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { get as httpsGet } from 'node:https';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { freePort } from './free-port.ts';

const DURATION = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 10;

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(url: string, method: 'GET' | 'POST' = 'GET', body?: string, token?: string, connections = CONNECTIONS): Promise<Result> {
  const r = await autocannon({
    url,
    method,
    body,
    headers: { ...(body ? { 'content-type': 'application/fhir+json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    connections,
    duration: DURATION,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

const hearthPort = await freePort();
const openPort = await freePort();
const unauditedPort = await freePort();
const plainPort = await freePort();
const barePort = await freePort();
const unlimitedPort = await freePort();
const tlsPort = await freePort();
const child: ChildProcess = spawn(
  process.execPath,
  [new URL('./servers.ts', import.meta.url).pathname, String(hearthPort), String(openPort), String(unauditedPort), String(plainPort), String(barePort), String(unlimitedPort), String(tlsPort)],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const [line] = await once(createInterface({ input: child.stdout! }), 'line');
const { readIds, searchUrl, createBody, token } = JSON.parse(line as string);
const H = `http://127.0.0.1:${hearthPort}`;
const O = `http://127.0.0.1:${openPort}`;
const U = `http://127.0.0.1:${unauditedPort}`;
const P = `http://127.0.0.1:${plainPort}`;
const B = `http://127.0.0.1:${barePort}`;
const L = `http://127.0.0.1:${unlimitedPort}`;
const T = `https://127.0.0.1:${tlsPort}`;

// Each row: Hearth as deployed; without token verification; without the audit trail; bare Fastify.
const scenarios: [string, (base: string, tok?: string) => Promise<Result>, () => Promise<Result>][] = [
  ['read by id', (b, tok) => load(`${b}/fhir/Patient/${readIds[[H, O, U, P, L].indexOf(b)]}`, 'GET', undefined, tok), () => load(`${B}/Patient/x`)],
  ['search (family, _count=10, total)', (b, tok) => load(`${b}${searchUrl}`, 'GET', undefined, tok), () => load(`${B}/Patient`)],
  [
    'create (validate, index, durable commit)',
    (b, tok) => load(`${b}/fhir/Patient`, 'POST', createBody, tok),
    () => load(`${B}/Patient`, 'POST', createBody),
  ],
];

const cell = (r: Result) => `${r.rps.toFixed(0)} (${r.p50}/${r.p99})`;
const rows: string[] = [];
for (const [name, hearth, bare] of scenarios) {
  await load(`${B}/Patient/x`); // warm-up
  const b = await bare();
  const o = await hearth(O, 'unverified');
  const u = await hearth(U, token);
  const p = await hearth(P, token);
  const h = await hearth(H, token);
  const r = (x: Result) => (h.rps / x.rps).toFixed(2);
  rows.push(
    `| ${name} | ${cell(h)} | ${cell(p)} | ${cell(o)} | ${cell(u)} | ${cell(b)} | ${r(p)} | ${r(o)} | ${r(u)} | ${r(b)} | ${h.errors + p.errors + o.errors + u.errors + b.errors} |`,
  );
}
// The rate limiter's cost: the secured read counted against a limit too high to refuse, and with no limiter.
const unlimitedRead = await load(`${L}/fhir/Patient/${readIds[4]}`, 'GET', undefined, token);
const limitedRead = await load(`${H}/fhir/Patient/${readIds[0]}`, 'GET', undefined, token);
// TLS's cost: the secured read over HTTPS (kept-alive connections, as clients hold them).
const tlsRead = await load(`${T}/fhir/Patient/${readIds[5]}`, 'GET', undefined, token);
// Audit throughput: 50 concurrent clients reading; every response waits for its durable AuditEvent.
const audit50 = await load(`${H}/fhir/Patient/${readIds[0]}`, 'GET', undefined, token, 50);
child.kill('SIGTERM');
await once(child, 'exit');

// Start-up to first answered request, and resident memory once the schema is compiled.
const port = await freePort();
const t0 = performance.now();
const server = spawn(process.execPath, [new URL('../src/server.ts', import.meta.url).pathname], {
  env: {
    PATH: process.env.PATH ?? '',
    HEARTH_PORT: String(port),
    HEARTH_DATA_DIR: `/tmp/hearth-bench-start-${process.pid}`,
    HEARTH_LOG_LEVEL: 'warn',
  },
  stdio: 'ignore',
});
// As `npm start` runs: HTTPS with the development certificate it makes on first start.
const metadataOk = () =>
  new Promise<boolean>((resolve) => {
    const req = httpsGet(`https://127.0.0.1:${port}/fhir/metadata`, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
  });
let startup = Number.NaN;
for (let i = 0; i < 300; i++) {
  if (await metadataOk()) {
    startup = performance.now() - t0;
    break;
  }
  await new Promise((r) => setTimeout(r, 10));
}
await metadataOk();
const { readFileSync, rmSync } = await import('node:fs');
const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? Number.NaN) / 1024;
server.kill('SIGTERM');
await once(server, 'exit');
rmSync(`/tmp/hearth-bench-start-${process.pid}`, { recursive: true, force: true });

process.stdout.write(
  [
    `Hearth as deployed vs Hearth without encryption at rest, without token verification, without the audit trail, and bare Fastify serving the same JSON;`,
    `${CONNECTIONS} connections, ${DURATION} s each, Node ${process.version}. req/s (p50/p99 ms).`,
    '',
    '| scenario | Hearth | no encryption | no token verification | no audit trail | bare Fastify | ÷ no encryption | ÷ no verification | ÷ no audit | ÷ bare | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `secured read over HTTPS: ${cell(tlsRead)}; over plain HTTP: ${cell(limitedRead)}; ratio ${(tlsRead.rps / limitedRead.rps).toFixed(2)}`,
    `secured read with the rate limiter counting: ${cell(limitedRead)}; with no rate limiter: ${cell(unlimitedRead)}; ratio ${(limitedRead.rps / unlimitedRead.rps).toFixed(2)}`,
    '',
    `audit throughput, 50 concurrent clients reading: ${audit50.rps.toFixed(0)} audited requests/s (p50 ${audit50.p50} ms, p99 ${audit50.p99} ms), ${audit50.errors} errors`,
    '',
    `start-up to first /fhir/metadata answer: ${startup.toFixed(0)} ms; resident memory after first search: ${rss.toFixed(0)} MB`,
    '',
  ].join('\n'),
);
