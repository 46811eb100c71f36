// npm run bench:soak — sustained load on the real server process: a fixed offered rate of mixed
// requests (60 % reads, 30 % searches, 10 % creates) for SOAK_MINUTES, printing per minute the
// throughput delivered, p50/p99, errors, resident memory, the audit indexer's lag at the end of
// the step and bytes on disk per request (every file of the data directory counted). Its one
// client would spend a per-client rate limit at once: the server runs with HEARTH_RATE_LIMIT=off.
// Loopback only; it stops by itself.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import autocannon from 'autocannon';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { freePort } from './free-port.ts';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 2);
const RATE = Number(process.env.SOAK_RATE ?? 200);
const STEP_SECONDS = Number(process.env.SOAK_STEP_SECONDS ?? 60);
const CONNECTIONS = 20;

const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'hearth-soak-'));
const dataDir = join(dir, 'data');
const issuer = 'https://soak-issuer.local';
const { publicKey, privateKey } = await generateKeyPair('ES256');
writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'soak', alg: 'ES256' }] }));
const base = `http://127.0.0.1:${port}/fhir`;
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({ scope: 'system/*.cruds', sub: 'soak', client_id: 'soak' })
  .setProtectedHeader({ alg: 'ES256', kid: 'soak' })
  .setIssuer(issuer)
  .setAudience(base)
  .setIssuedAt(now)
  .setExpirationTime(now + 3600)
  .sign(privateKey);

const server = spawn(process.execPath, [new URL('../src/server.ts', import.meta.url).pathname], {
  env: { PATH: process.env.PATH ?? '', HEARTH_PORT: String(port), HEARTH_DATA_DIR: dataDir, HEARTH_LOG_LEVEL: 'warn', HEARTH_RATE_LIMIT: 'off', HEARTH_TLS: 'off', HEARTH_TRUSTED_PROXIES: '127.0.0.1', HEARTH_AUTH_ISSUER: issuer, HEARTH_AUTH_JWKS: join(dir, 'jwks.json') },
  stdio: ['ignore', 'ignore', 'inherit'],
});
for (let i = 0; i < 300; i++) {
  try {
    if ((await fetch(`${base}/metadata`)).ok) break;
  } catch {}
  await new Promise((r) => setTimeout(r, 50));
}

const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' };
const patient = (i: number) => JSON.stringify({ resourceType: 'Patient', name: [{ family: `Soak${i % 50}`, given: [`G${i}`] }], gender: 'female', birthDate: '1970-01-01' });
const ids: string[] = [];
for (let i = 0; i < 200; i++) {
  const res = await fetch(`${base}/Patient`, { method: 'POST', headers, body: patient(i) });
  ids.push(((await res.json()) as { id: string }).id);
}
// Ten requests, cycled: six reads, three searches, one create.
const requests = [
  ...Array.from({ length: 6 }, (_, i) => ({ method: 'GET' as const, path: `/fhir/Patient/${ids[(i * 37) % ids.length]}` })),
  ...Array.from({ length: 3 }, (_, i) => ({ method: 'GET' as const, path: `/fhir/Patient?family=Soak${i * 7}&_count=10` })),
  { method: 'POST' as const, path: '/fhir/Patient', body: patient(9999) },
];

const du = (d: string): number => readdirSync(d, { recursive: true }).map(String).reduce((n, f) => {
  const s = statSync(join(d, f));
  return n + (s.isFile() ? s.size : 0);
}, 0);
/** Events committed to the audit log and not yet in its search index, read from the files. */
const indexerLag = (): number => {
  const log = new DatabaseSync(join(dataDir, 'audit.db'), { readOnly: true });
  const index = new DatabaseSync(join(dataDir, 'audit-index.db'), { readOnly: true });
  try {
    const head = (log.prepare('SELECT MAX(seq) AS n FROM audit_log').get() as { n: number | null }).n ?? 0;
    const mark = (index.prepare('SELECT seq FROM audit_indexed').get() as { seq: number } | undefined)?.seq ?? 0;
    return head - mark;
  } finally {
    log.close();
    index.close();
  }
};
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? Number.NaN) / 1024;

process.stdout.write(`soak: ${RATE} req/s offered (60 % reads, 30 % searches, 10 % creates), ${CONNECTIONS} connections, ${MINUTES} × ${STEP_SECONDS} s, Node ${process.version}\n\n`);
process.stdout.write('| step | req/s delivered | p50 ms | p99 ms | errors | RSS MB | audit indexer lag (events) | disk MB | bytes on disk per request |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n');
let disk = du(dataDir);
for (let m = 1; m <= MINUTES; m++) {
  const r = await autocannon({ url: `http://127.0.0.1:${port}`, headers, requests, connections: CONNECTIONS, overallRate: RATE, duration: STEP_SECONDS });
  const after = du(dataDir);
  const perRequest = r.requests.total > 0 ? (after - disk) / r.requests.total : Number.NaN;
  disk = after;
  process.stdout.write(
    `| ${m} | ${r.requests.average.toFixed(0)} | ${r.latency.p50} | ${r.latency.p99} | ${r.errors + r.non2xx} | ${rss().toFixed(0)} | ${indexerLag()} | ${(after / 1048576).toFixed(1)} | ${perRequest.toFixed(0)} |\n`,
  );
}
server.kill('SIGTERM');
await once(server, 'exit');
rmSync(dir, { recursive: true, force: true });
