import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
// npm run bench:audit-scale — the audit trail at scale: seeds AUDIT_EVENTS AuditEvents (default
// 100,000) through the audit port in batches of 1,000 (each head signed), then times
// `audit verify` over the whole chain and an auditor's "every access to patient X in one month"
// search, and reports bytes on disk per event.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAuditEvent } from '../src/audit/audit-event.ts';
import { auditAppendOf } from '../src/audit/audit-sink.ts';
import { verifyChain } from '../src/audit/chain.ts';
import { accessFor } from '../src/auth/authorize.ts';
import { parseScopes } from '../src/auth/scopes.ts';
import { createServices } from '../src/compose.ts';
import { loadConfig } from '../src/config/config.ts';
import { INTERACTIONS } from '../src/rest/interactions.ts';
import { AuditIndexer } from '../src/audit/indexer.ts';
import { sqliteStorage } from '../src/store/sqlite/sqlite-storage.ts';
import { auditSigner, loadSigningKey } from '../src/audit/signing-key.ts';
import { v7 as uuidv7 } from 'uuid';

const N = Number(process.env.AUDIT_EVENTS ?? 100_000);
const BATCH = 1000;
const dir = mkdtempSync(join(tmpdir(), 'hearth-audit-scale-'));
const config = loadConfig({ HEARTH_DATA_DIR: dir, HEARTH_LOG_LEVEL: 'silent' });
const storage = sqliteStorage({ dataDir: dir });
const services = await createServices(config, { storage, auditInPlace: true });
const appendOf = auditAppendOf(services.keys);
const sign = auditSigner(config.audit, () => new Date());
const start = Date.parse('2026-01-01T00:00:00Z');
const year = 365 * 86_400_000;

const t0 = performance.now();
for (let b = 0; b < N / BATCH; b++) {
  const events = [];
  for (let k = 0; k < BATCH; k++) {
    const i = b * BATCH + k;
    const patient = `Patient/p${(i * 7919) % 1000}`;
    const recorded = start + Math.floor((i / N) * year);
    events.push(
      appendOf(
        buildAuditEvent({
          // (as the server names requests: time-ordered, RFC 9562 version 7)
          requestId: uuidv7({ msecs: recorded }),
          recorded: new Date(recorded),
          interaction: i % 10 === 0 ? 'search-type' : 'read',
          resourceType: 'Patient',
          status: i % 50 === 0 ? 403 : 200,
          address: `10.0.${i % 7}.${i % 200}`,
          entities: [{ reference: `${patient}/_history/1`, role: 'domain' }],
          patients: [patient],
          query: i % 10 === 0 ? 'family=smith' : undefined,
          server: { baseUrl: config.baseUrl, name: 'Hearth' },
          principal: { issuer: 'https://idp', subject: `user-${i % 50}`, clientId: 'ehr', fhirUser: `Practitioner/${i % 50}`, grants: [], scopes: ['user/*.rs'], tokenId: `jti-${i}`, expiresAt: 0 },
        }),
      ),
    );
  }
  await storage.audit.appendAudit(events, sign);
}
const seeded = performance.now() - t0;

// The indexer follows the log, as its thread does on the server.
const tIndex = performance.now();
await new AuditIndexer(storage.audit, storage.auditIndex, services.model, config.baseUrl).catchUp(undefined, 1000);
const indexed = performance.now() - tIndex;

const t1 = performance.now();
const verified = await verifyChain(storage.audit, loadSigningKey(config.audit.signingKey).publicKey, undefined, storage.auditIndex);
const verifyMs = performance.now() - t1;

// What an operator runs: `hearth audit verify`, the chain walked in stretches on every core.
const cli = new URL('../src/cli/main.ts', import.meta.url).pathname;
const t3 = performance.now();
const command = spawnSync(process.execPath, [cli, 'audit', 'verify'], { env: { PATH: process.env.PATH ?? '', HEARTH_DATA_DIR: dir }, encoding: 'utf8' });
const commandMs = performance.now() - t3;

const access = accessFor({ issuer: 'i', grants: parseScopes('system/AuditEvent.rs'), scopes: [], expiresAt: 2e9 }, services.policy);
const query: [string, string][] = [['patient', 'Patient/p7'], ['date', 'ge2026-03-01'], ['date', 'lt2026-04-01'], ['_count', '100']];
const ctx = {
  baseUrl: config.baseUrl,
  model: services.model,
  repository: services.repository,
  auditStore: storage.audit,
  search: config.search,
  updateCreate: false,
  clock: () => new Date(),
  policy: services.policy,
  bundles: config.bundles,
};
const run = () =>
  INTERACTIONS['search-type'](ctx, { type: 'AuditEvent', query, body: () => undefined, form: () => [], header: () => undefined, access, audit: { touched: [] } });
await run();
const t2 = performance.now();
const found = await run();
const queryMs = performance.now() - t2;

const sizeOf = (f: string) => (statSync(join(dir, f)).isFile() ? statSync(join(dir, f)).size : 0);
const bytes = readdirSync(dir, { recursive: true }).map(String).reduce((n, f) => n + sizeOf(f), 0);
process.stdout.write(
  [
    `audit trail at scale: ${N.toLocaleString('en')} AuditEvents, batches of ${BATCH}, Node ${process.version}`,
    `appended to the log in ${(seeded / 1000).toFixed(1)} s (${((N / seeded) * 1000).toFixed(0)} events/s)`,
    `indexed behind it in ${(indexed / 1000).toFixed(1)} s (${((N / indexed) * 1000).toFixed(0)} events/s)`,
    `audit verify, one walk in process: ${verified.ok ? 'intact' : `BROKEN (${verified.problem})`}, ${verified.events} events, ${verified.checkpoints} signed heads, ${(verifyMs / 1000).toFixed(2)} s`,
    `hearth audit verify (${availableParallelism()} threads, process start included): ${(commandMs / 1000).toFixed(2)} s: ${command.stdout.trim() || command.stderr.trim()}`,
    `every access to one patient in one month (patient=, date=ge&lt, _count=100): ${(found.resource as { total?: number }).total} events, ${queryMs.toFixed(0)} ms`,
    `${(bytes / N).toFixed(0)} bytes on disk per event (${(bytes / 1048576).toFixed(0)} MB)`,
    '',
  ].join('\n'),
);
await services.close();
rmSync(dir, { recursive: true, force: true });
