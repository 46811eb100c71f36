// Micro benchmarks of the security path, per operation: token verification with and without
// the per-token cache, the pure authorization decision, and the encryption of a Patient (blind
// indexes, seal, open). `npm run bench` runs it after the
// load benchmark; `node bench/micro.ts` alone.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { buildAuditEvent } from '../src/audit/audit-event.ts';
import { authorize, loadCompartments, type Policy } from '../src/auth/authorize.ts';
import { loadRoles } from '../src/auth/roles.ts';
import { JwtVerifier } from '../src/auth/token-verifier.ts';
import { loadConfig } from '../src/config/config.ts';
import { BlindIndex } from '../src/crypto/blind-index.ts';
import { openResource, sealResource } from '../src/crypto/envelope.ts';
import { LocalKeyring } from '../src/crypto/keyring.ts';
import { loadProtectionPolicy } from '../src/crypto/protection.ts';
import { loadFhirModel } from '../src/fhir/definitions.ts';
import { extractIndex } from '../src/fhir/index-extractor.ts';
import type { SearchQuery } from '../src/fhir/query.ts';
import { EncryptingStore } from '../src/store/encrypting-store.ts';
import { sqliteStorage } from '../src/store/sqlite/sqlite-storage.ts';

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

// The encryption path of a Patient create and read: blind indexes of its index entries, one
// envelope seal, one open (the bench's Patient, the policy in profiles/protection.json). The
// read benches read one Patient again and again: its data key is unwrapped once.
const keyring = LocalKeyring.open(join(dir, 'keyring.json'), true);
const protection = loadProtectionPolicy(model);
const blind = new BlindIndex(keyring.indexKey(), protection, keyring.indexPrefixFrom());
const patient = {
  resourceType: 'Patient',
  id: 'p500',
  identifier: [{ system: 'urn:bench', value: 'p500' }],
  name: [{ family: 'Family0', given: ['Bench', 'G500'] }],
  gender: 'male',
  birthDate: '1950-06-10',
  address: [{ line: ['500 Main St'], city: 'Springfield', postalCode: '10500' }],
};
const patientModel = model.types.get('Patient')!;
const entries = extractIndex(patientModel, patient, config.baseUrl);
// Index extraction, every search parameter of the type evaluated: once per version written, and
// once per AuditEvent by the audit indexer.
const observation = {
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
  subject: { reference: 'Patient/p500' },
  effectiveDateTime: '2026-01-01T10:00:00Z',
  valueQuantity: { value: 5.5, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
};
const createEvent = buildAuditEvent({
  requestId: randomUUID(),
  recorded: new Date(),
  interaction: 'create',
  resourceType: 'Observation',
  status: 201,
  principal,
  address: '127.0.0.1',
  entities: [{ reference: 'Observation/o1/_history/1', role: 'domain' }],
  patients: ['Patient/p500'],
  server: { baseUrl: config.baseUrl, name: 'Hearth' },
});
for (const [type, resource] of [['Patient', patient], ['Observation', observation], ['AuditEvent', createEvent]] as const) {
  const typeModel = model.types.get(type)!;
  const n = extractIndex(typeModel, resource, config.baseUrl).length;
  const what = type === 'AuditEvent' ? 'a create\'s AuditEvent' : `the bench's ${type}`;
  rows.push(await time(`index entries of ${what} (${n} entries)`, 20_000, () => extractIndex(typeModel, resource, config.baseUrl)));
}
const paths = protection.paths.get('Patient') ?? [];
rows.push(await time(`blind indexes of a Patient's ${entries.length} index entries (${blind.entries('Patient', entries).length} after)`, 20_000, () => blind.entries('Patient', entries)));
rows.push(await time(`seal a Patient (${paths.length} protected paths)`, 20_000, () => sealResource(keyring, paths, 'Patient', 'p500', 1, patient)));
const sealed = sealResource(keyring, paths, 'Patient', 'p500', 1, patient);
rows.push(await time('open a sealed Patient read before (its data key cached)', 20_000, () => openResource(keyring, 'Patient', 'p500', 1, sealed)));
// Distinct versions, each opened once: every data key is unwrapped.
const versions = Array.from({ length: 20_200 }, (_, i) => sealResource(keyring, paths, 'Patient', 'p500', i + 2, patient));
let next = 0;
rows.push(await time('open a sealed Patient not read before', 20_000, () => openResource(keyring, 'Patient', 'p500', next + 2, versions[next++])));

// Bounded decryption: `Patient?birthdate=lt1970` over N Patients whose birth dates are encrypted
// (no other parameter narrows it, so all N are candidates), on the embedded store in memory.
for (const n of [100, 1_000, 10_000]) {
  const storage = sqliteStorage({ dataDir: ':memory:' });
  const store = new EncryptingStore(storage.resources, keyring, protection, blind, { model, baseUrl: config.baseUrl, bound: 10_000 });
  for (let i = 0; i < n; i++) {
    await store.create('Patient', (v) => {
      const resource = { ...patient, id: v.id, birthDate: `19${String(40 + (i % 60)).padStart(2, '0')}-06-10`, meta: { versionId: '1', lastUpdated: v.lastUpdated } };
      return { resource, index: extractIndex(patientModel, resource, config.baseUrl) };
    });
  }
  const query: SearchQuery = {
    type: 'Patient',
    where: [{ kind: 'exists', param: 'birthdate', where: [{ field: 'lo', op: 'lt', value: Date.UTC(1970, 0, 1) }] }],
    sort: [],
    count: 20,
    total: 'accurate',
  };
  rows.push(await time(`search Patient?birthdate=lt1970 by decrypting ${n.toLocaleString('en')} candidates`, n >= 10_000 ? 5 : 50, () => store.search(query)));
  await storage.close();
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(['| operation | time per op |', '| --- | --- |', ...rows, ''].join('\n'));
