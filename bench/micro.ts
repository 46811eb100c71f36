// Micro benchmarks of the security path, per operation: token verification with and without
// the per-token cache, and the pure authorization decision. `npm run bench` runs it after the
// load benchmark; `node bench/micro.ts` alone.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { authorize, loadCompartments, type Policy } from '../src/auth/authorize.ts';
import { loadRoles } from '../src/auth/roles.ts';
import { JwtVerifier } from '../src/auth/token-verifier.ts';
import { loadConfig } from '../src/config/config.ts';
import { loadFhirModel } from '../src/fhir/definitions.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-micro-'));
const { publicKey, privateKey } = await generateKeyPair('ES256');
writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' }] }));
const config = loadConfig({ HEARTH_AUTH_ISSUER: 'https://i.local', HEARTH_AUTH_JWKS: join(dir, 'jwks.json') });
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({ scope: 'patient/*.rs', patient: 'p1' })
  .setProtectedHeader({ alg: 'ES256', kid: 'k' })
  .setIssuer('https://i.local')
  .setAudience(config.baseUrl)
  .setIssuedAt(now)
  .setExpirationTime(now + 3600)
  .sign(privateKey);

async function time(name: string, n: number, fn: () => unknown | Promise<unknown>): Promise<string> {
  for (let i = 0; i < Math.min(n, 200); i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const us = ((performance.now() - t0) * 1000) / n;
  return `| ${name} | ${us.toFixed(2)} µs |`;
}

const clock = () => new Date();
const rows = [
  await time('verify ES256 token, uncached (new verifier each time)', 2000, () =>
    new JwtVerifier(config.auth, config.baseUrl, clock).verify(token),
  ),
];
const cached = new JwtVerifier(config.auth, config.baseUrl, clock);
rows.push(await time('verify the same token, cached', 200_000, () => cached.verify(token)));
const principal = await cached.verify(token);
const model = loadFhirModel({ updateCreate: false });
const policy: Policy = { model, roles: loadRoles(), baseUrl: config.baseUrl, compartments: loadCompartments() };
rows.push(
  await time('authorize(read Observation) + compartment restriction', 200_000, () => {
    const d = authorize(principal, 'read', 'Observation', policy);
    if (d.allowed) d.access.restriction('Observation', 'r');
  }),
);
process.stdout.write(['| operation | time per op |', '| --- | --- |', ...rows, ''].join('\n'));
