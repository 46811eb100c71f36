import { afterAll, describe, expect, it } from 'vitest';
import { accessFor } from '../../src/auth/authorize.ts';
import { parseScopes } from '../../src/auth/scopes.ts';
import { createServices } from '../../src/compose.ts';
import { loadConfig } from '../../src/config/config.ts';
import { FhirError } from '../../src/fhir/errors.ts';
import { INTERACTIONS } from '../../src/rest/interactions.ts';
import type { AuditNotes, RestContext, RestRequest } from '../../src/rest/request.ts';
import { sqliteStorage } from '../../src/store/sqlite/sqlite-storage.ts';
import { tempDir } from '../helpers/app.ts';
import { RecordingStore } from '../helpers/recording-store.ts';

// The interactions are plain functions over a transport-free request: what a transaction Bundle
// will loop over. Driven here with no Fastify at all.
describe('interactions without a transport', async () => {
  const config = loadConfig({ HEARTH_LOG_LEVEL: 'silent', HEARTH_DATA_DIR: tempDir() });
  const storage = sqliteStorage({ dataDir: ':memory:' });
  const services = await createServices(config, { storage, auditInPlace: true });
  afterAll(() => services.close());
  const ctx: RestContext = {
    baseUrl: config.baseUrl,
    model: services.model,
    repository: services.repository,
    auditStore: services.storage.audit,
    search: config.search,
    updateCreate: false,
    clock: () => new Date('2026-01-15T10:00:00Z'),
    policy: services.policy,
    bundles: config.bundles,
  };
  const principal = (scope: string, patient?: string) => ({ issuer: 'i', grants: parseScopes(scope), scopes: [scope], expiresAt: 2e9, patient });
  const request = (r: Partial<RestRequest> & { type: string }, scope = 'system/*.cruds', patient?: string): RestRequest & { audit: AuditNotes } => ({
    query: [],
    body: () => undefined,
    form: () => [],
    header: () => undefined,
    access: accessFor(principal(scope, patient), services.policy),
    audit: { touched: [] },
    ...r,
  });

  it('creates, reads, searches and deletes, noting what it touched for the audit', async () => {
    const created = await INTERACTIONS.create(ctx, request({ type: 'Patient', body: () => ({ resourceType: 'Patient', gender: 'female' }) }));
    expect(created.status).toBe(201);
    const id = (created.resource as { id: string }).id;
    expect(created.location).toBe(`${config.baseUrl}/Patient/${id}/_history/1`);
    const readReq = request({ type: 'Patient', id });
    const read = await INTERACTIONS.read(ctx, readReq);
    expect(read).toMatchObject({ status: 200, etag: 1, resource: { resourceType: 'Patient', id, gender: 'female' } });
    expect(readReq.audit.touched.map((t) => t.reference)).toEqual([`Patient/${id}/_history/1`]);
    const found = await INTERACTIONS['search-type'](ctx, request({ type: 'Patient', query: [['gender', 'female']] }));
    expect((found.resource as { total: number }).total).toBe(1);
    const del = await INTERACTIONS.delete(ctx, request({ type: 'Patient', id }));
    expect(del).toEqual({ status: 204, etag: 2 });
  });

  it('deletes with one read of the store, and notes the version it replaced', async () => {
    const recorder = new RecordingStore(storage.resources);
    const { repository } = await createServices(config, { storage: { ...storage, resources: recorder }, auditInPlace: true });
    const created = await INTERACTIONS.create({ ...ctx, repository }, request({ type: 'Patient', body: () => ({ resourceType: 'Patient' }) }));
    const id = (created.resource as { id: string }).id;
    recorder.calls.length = 0;
    const req = request({ type: 'Patient', id, header: (name) => (name === 'if-match' ? 'W/"1"' : undefined) });
    expect(await INTERACTIONS.delete({ ...ctx, repository }, req)).toEqual({ status: 204, etag: 2 });
    expect(recorder.calls).toEqual(['read', 'delete']);
    expect(req.audit.touched.map((t) => [t.reference, t.role])).toEqual([[`Patient/${id}/_history/1`, 'before'], [`Patient/${id}/_history/2`, 'after']]);
  });

  it('holds a patient-context access to its compartment, whoever calls it', async () => {
    const other = await INTERACTIONS.create(ctx, request({ type: 'Patient', body: () => ({ resourceType: 'Patient' }) }));
    const id = (other.resource as { id: string }).id;
    const err = await INTERACTIONS.read(ctx, request({ type: 'Patient', id }, 'patient/*.rs', 'someone-else')).catch((e) => e);
    expect(err).toBeInstanceOf(FhirError);
    expect((err as FhirError).status).toBe(404);
  });

  it('$report refuses a restricted access even without the route decision in front of it', async () => {
    const err = await INTERACTIONS.$report(ctx, request({ type: 'AuditEvent', query: [['start', '2026-01-01'], ['end', '2026-02-01']] }, 'patient/*.rs', 'p1')).catch((e) => e);
    expect((err as FhirError).status).toBe(403);
    const ok = await INTERACTIONS.$report(ctx, request({ type: 'AuditEvent', query: [['start', '2026-01-01'], ['end', '2026-02-01']] }));
    expect(ok.status).toBe(200);
    expect(ok.text?.contentType).toBe('application/json; charset=utf-8');
  });
});
