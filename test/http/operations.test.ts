import { describe, expect, it } from 'vitest';
import { failingIndex, json, testApp } from '../helpers/app.ts';

// Liveness, readiness and gauges, outside the FHIR API: no token, no data, not audited.
describe('operations endpoints', () => {
  it('/healthz answers alive, uncached, with no token, and leaves no AuditEvent', async () => {
    const t = await testApp();
    const before = (await Array.fromAsync(t.storage.audit.chain())).length;
    const res = await t.raw.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(json(res)).toEqual({ status: 'alive' });
    expect(res.headers['cache-control']).toBe('no-store');
    expect((await Array.fromAsync(t.storage.audit.chain())).length).toBe(before);
  });

  it('/readyz reports the store, the keys, the audit log and the indexer with its lag; /metrics the same as gauges', async () => {
    let failing = false;
    const t = await testApp({ HEARTH_AUDIT_INDEX_WAIT_MS: '20' }, { wrapAuditIndex: failingIndex(() => failing) });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    failing = true;
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    await t.app.inject({ method: 'GET', url: '/fhir/Patient' });
    const ready = await t.raw.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.headers['cache-control']).toBe('no-store');
    expect(json(ready)).toEqual({
      status: 'ready',
      checks: {
        store: { status: 'ok' },
        keys: { status: 'ok' },
        auditLog: { status: 'ok' },
        auditIndex: { status: 'ok', committed: 3, indexed: 1, lag: 2 },
      },
    });
    const metrics = await t.raw.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(metrics.body).toContain('# TYPE hearth_audit_index_lag_events gauge\nhearth_audit_index_lag_events 2\n');
    expect(metrics.body).toContain('\nhearth_audit_log_seq 3\n');
    expect(metrics.body).toContain('\nhearth_audit_index_seq 1\n');
  });

  it('/readyz answers 503 naming what fails when the store does not answer', async () => {
    const t = await testApp();
    await t.storage.close();
    const res = await t.raw.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(json(res)).toMatchObject({ status: 'not ready', checks: { store: { status: 'failing', detail: 'does not answer' }, keys: { status: 'ok' } } });
  });
});
