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

interface Load {
  url: string;
  method?: 'GET' | 'POST';
  body?: string;
  token?: string;
}

async function run(l: Load, seconds: number, connections = CONNECTIONS) {
  const { url, method = 'GET', body, token } = l;
  return autocannon({
    url,
    method,
    body,
    headers: { ...(body ? { 'content-type': 'application/fhir+json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    connections,
    duration: seconds,
  });
}

async function load(l: Load, connections = CONNECTIONS): Promise<Result> {
  const r = await run(l, DURATION, connections);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

/**
 * The loads in turns of one second each, DURATION turns, so that the machine's speed, which
 * drifts here by half within minutes, falls on each alike and their ratios hold: req/s over all
 * its turns, the median turn's p50 and the worst turn's p99.
 */
async function interleaved(loads: readonly Load[]): Promise<Result[]> {
  const turns = loads.map(() => [] as Awaited<ReturnType<typeof run>>[]);
  for (let t = 0; t < DURATION; t++) for (const [i, l] of loads.entries()) turns[i].push(await run(l, 1));
  return turns.map((rs) => {
    const p50s = rs.map((r) => r.latency.p50).sort((a, b) => a - b);
    return {
      rps: rs.reduce((n, r) => n + r.requests.total, 0) / rs.reduce((n, r) => n + r.duration, 0),
      p50: p50s[Math.floor(p50s.length / 2)],
      p99: Math.max(...rs.map((r) => r.latency.p99)),
      errors: rs.reduce((n, r) => n + r.errors + r.non2xx, 0),
    };
  });
}

const hearthPort = await freePort();
const openPort = await freePort();
const unauditedPort = await freePort();
const plainPort = await freePort();
const barePort = await freePort();
const unlimitedPort = await freePort();
const tlsPort = await freePort();
const neitherPort = await freePort();
const child: ChildProcess = spawn(
  process.execPath,
  [new URL('./servers.ts', import.meta.url).pathname, String(hearthPort), String(openPort), String(unauditedPort), String(plainPort), String(barePort), String(unlimitedPort), String(tlsPort), String(neitherPort)],
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
const N = `http://127.0.0.1:${neitherPort}`;

// Each row: Hearth as deployed; without encryption; without token verification; without the audit
// trail; without encryption and audit trail; bare Fastify — measured in turns (interleaved).
const servers = [H, O, U, P, L, T, N];
const scenarios: [string, (base: string, tok?: string) => Load, Load][] = [
  ['read by id', (b, tok) => ({ url: `${b}/fhir/Patient/${readIds[servers.indexOf(b)]}`, token: tok }), { url: `${B}/Patient/x` }],
  ['search (family, _count=10, total)', (b, tok) => ({ url: `${b}${searchUrl}`, token: tok }), { url: `${B}/Patient` }],
  [
    'create (validate, index, durable commit)',
    (b, tok) => ({ url: `${b}/fhir/Patient`, method: 'POST', body: createBody, token: tok }),
    { url: `${B}/Patient`, method: 'POST', body: createBody },
  ],
];

const cell = (r: Result) => `${r.rps.toFixed(0)} (${r.p50}/${r.p99})`;
const rows: string[] = [];
for (const [name, hearth, bare] of scenarios) {
  await load(bare); // warm-up
  const [h, p, o, u, n, b] = await interleaved([hearth(H, token), hearth(P, token), hearth(O, 'unverified'), hearth(U, token), hearth(N, token), bare]);
  const r = (x: Result) => (h.rps / x.rps).toFixed(2);
  const errors = [h, p, o, u, n, b].reduce((e, x) => e + x.errors, 0);
  rows.push(`| ${name} | ${cell(h)} | ${cell(p)} | ${cell(o)} | ${cell(u)} | ${cell(n)} | ${cell(b)} | ${r(p)} | ${r(o)} | ${r(u)} | ${r(n)} | ${r(b)} | ${errors} |`);
}
// The rate limiter's cost: the secured read counted against a limit too high to refuse, and with no limiter.
const [limitedRead, unlimitedRead] = await interleaved([
  { url: `${H}/fhir/Patient/${readIds[0]}`, token },
  { url: `${L}/fhir/Patient/${readIds[4]}`, token },
]);
// TLS's cost: the secured read over HTTPS (kept-alive connections, as clients hold them).
const [tlsRead, plainRead] = await interleaved([
  { url: `${T}/fhir/Patient/${readIds[5]}`, token },
  { url: `${H}/fhir/Patient/${readIds[0]}`, token },
]);
// Audit throughput: 50 concurrent clients reading; every response waits for its durable AuditEvent.
const audit50 = await load({ url: `${H}/fhir/Patient/${readIds[0]}`, token }, 50);
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
    `Hearth as deployed vs Hearth without encryption at rest, without token verification, without the audit trail, without both encryption and audit`,
    `trail, and bare Fastify serving the same JSON; ${CONNECTIONS} connections, ${DURATION} s each in one-second turns (interleaved), Node ${process.version}.`,
    `req/s (median turn's p50 / worst turn's p99, ms).`,
    '',
    '| scenario | Hearth | no encryption | no token verification | no audit trail | neither | bare Fastify | ÷ no encryption | ÷ no verification | ÷ no audit | ÷ neither | ÷ bare | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `secured read over HTTPS: ${cell(tlsRead)}; over plain HTTP: ${cell(plainRead)}; ratio ${(tlsRead.rps / plainRead.rps).toFixed(2)}`,
    `secured read with the rate limiter counting: ${cell(limitedRead)}; with no rate limiter: ${cell(unlimitedRead)}; ratio ${(limitedRead.rps / unlimitedRead.rps).toFixed(2)}`,
    '',
    `audit throughput, 50 concurrent clients reading: ${audit50.rps.toFixed(0)} audited requests/s (p50 ${audit50.p50} ms, p99 ${audit50.p99} ms), ${audit50.errors} errors`,
    '',
    `start-up to first /fhir/metadata answer: ${startup.toFixed(0)} ms; resident memory after first search: ${rss.toFixed(0)} MB`,
    '',
  ].join('\n'),
);
