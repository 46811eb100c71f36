import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { parseScopes } from '../src/auth/scopes.ts';
const dir = mkdtempSync(join(tmpdir(), 'lat-'));
const config = loadConfig({ HEARTH_DATA_DIR: dir, HEARTH_LOG_LEVEL: 'silent' });
const principal = { issuer: 'i', subject: 'b', grants: parseScopes('system/*.cruds'), scopes: ['system/*.cruds'], expiresAt: 4e9 };
for (const audited of [true, false]) {
  const app = await buildApp(config, { verifier: { verify: async () => principal }, ...(audited ? {} : { auditWriter: async () => undefined }) });
  const c = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json', authorization: 'Bearer x' }, payload: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'X' }] }) });
  const id = JSON.parse(c.body).id;
  let n = 0; const lat: number[] = [];
  const end = performance.now() + 4000;
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (performance.now() < end) { const t = performance.now(); await app.inject({ method: 'GET', url: `/fhir/Patient/${id}`, headers: { authorization: 'Bearer x' } }); lat.push(performance.now() - t); n++; }
  }));
  lat.sort((a, b) => a - b);
  console.log(audited ? 'audited' : 'no audit', (n / 4).toFixed(0), 'req/s p50', lat[lat.length >> 1].toFixed(2), 'p99', lat[Math.floor(lat.length * 0.99)].toFixed(2));
  await app.close();
}
