import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { FHIR_JSON, json, type TestApp, testApp } from '../helpers/app.ts';

// The edge of the server: what every response carries, which bodies are decoded, and what is
// audited of the requests no route answers.

const patient = { resourceType: 'Patient', name: [{ family: 'Müller', given: ['Zoë'] }], gender: 'female' };

describe('the edge', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
  });

  it.each([
    ['a read', { method: 'GET' as const, url: '/fhir/Patient?_count=1' }],
    ['a refusal', { method: 'GET' as const, url: '/fhir/Patient/no-such-id' }],
    ['a refusal before routing', { method: 'GET' as const, url: '/fhir/Patient/%E0%A4%A' }],
    ['a path outside the API', { method: 'GET' as const, url: '/nothing-here' }],
    ['metadata', { method: 'GET' as const, url: '/fhir/metadata' }],
  ])('security headers and no-store on %s', async (_name, request) => {
    const res = await t.app.inject(request);
    expect(res.headers).toMatchObject({
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'content-security-policy': 'default-src \'none\';frame-ancestors \'none\'',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
      // and the rest of helmet's defaults
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-resource-policy': 'same-origin',
      'origin-agent-cluster': '?1',
      'x-dns-prefetch-control': 'off',
      'x-download-options': 'noopen',
      'x-permitted-cross-domain-policies': 'none',
      'x-xss-protection': '0',
    });
    expect(res.headers['x-powered-by']).toBeUndefined();
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ])('decodes a body in %s: the resource is stored as sent', async (coding, compress) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/fhir/Patient',
      headers: { 'content-type': `${FHIR_JSON}; charset=utf-8`, 'content-encoding': coding },
      payload: compress(Buffer.from(JSON.stringify(patient), 'utf8')),
    });
    expect(res.statusCode, res.body).toBe(201);
    const read = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${json(res).id}` });
    expect(json(read)).toMatchObject({ name: [{ family: 'Müller', given: ['Zoë'] }], gender: 'female' });
  });

  it('a coding on a request whose body is not read (GET, DELETE) is harmless: answered, and no uncaught error stops the server', async () => {
    const statuses = [];
    for (const method of ['GET', 'DELETE', 'HEAD'] as const) {
      statuses.push((await t.app.inject({ method, url: '/fhir/Patient/x', headers: { 'content-encoding': 'gzip' } })).statusCode);
    }
    const withBody = await t.app.inject({ method: 'GET', url: '/fhir/Patient?_count=1', headers: { 'content-encoding': 'br' }, payload: 'not brotli' });
    expect([...statuses, withBody.statusCode]).toEqual([404, 404, 404, 200]);
    // (vitest fails the file on an unhandled error, which is what a broken stream here raised)
    await new Promise((r) => setImmediate(r));
  });

  it('audits a refusal no route answers when the request carries a token, valid or not; counts it when it carries none', async () => {
    const metric = async () =>
      Number(/^hearth_unaudited_refusals_total (\d+)$/m.exec((await t.app.inject({ method: 'GET', url: '/metrics' })).body)?.[1]);
    const before = await metric();
    const sent = [
      await t.app.inject({ method: 'GET', url: '/fhir/Patient/%E0%A4%A' }),
      await t.app.inject({ method: 'GET', url: '/outside', headers: { authorization: 'Bearer not-a-token' } }),
      await t.app.inject({ method: 'GET', url: `/fhir/Patient/${'a'.repeat(201)}`, headers: { authorization: 'Bearer not-a-token' } }),
      await t.app.inject({ method: 'GET', url: '/outside', headers: { authorization: 'Bearer two words' } }),
    ];
    expect(sent.map((r) => r.statusCode)).toEqual([400, 404, 414, 404]);
    const events = await Promise.all(sent.map((r) => t.store.read('AuditEvent', r.headers['x-request-id'] as string)));
    expect(events.map((e) => (e?.resource as { outcomeDesc?: string }).outcomeDesc)).toEqual(['400 structure', '404 not-found', '414 too-long', '404 not-found']);
    // Who: the verified client for a valid token; for an invalid one, no agent beyond the server.
    const agents = events.map((e) => JSON.stringify((e?.resource as { agent?: unknown[] }).agent));
    expect(agents[0]).toContain('test-system');
    expect(agents[1]).not.toContain('test-system');
    // No token, outside the API: counted, not audited.
    const anonymous = await t.app.inject({ method: 'GET', url: '/outside', headers: { authorization: '' } });
    expect(anonymous.statusCode).toBe(404);
    expect(await t.store.read('AuditEvent', anonymous.headers['x-request-id'] as string)).toBeUndefined();
    expect(await metric()).toBe(before + 1);
  });

  it('audits a public route (metadata, discovery, health) when the request carries a token, and only then', async () => {
    const withToken = await t.app.inject({ method: 'GET', url: '/fhir/metadata' });
    const discovery = await t.app.inject({ method: 'GET', url: '/fhir/.well-known/smart-configuration', headers: { authorization: 'Bearer not a token' } });
    const anonymous = await t.app.inject({ method: 'GET', url: '/healthz', headers: { authorization: '' } });
    expect([withToken.statusCode, discovery.statusCode, anonymous.statusCode]).toEqual([200, 200, 200]);
    const event = async (r: { headers: Record<string, unknown> }) => t.store.read('AuditEvent', r.headers['x-request-id'] as string);
    expect((await event(withToken))?.resource).toMatchObject({ outcome: '0' });
    expect(JSON.stringify((await event(withToken))?.resource)).toContain('test-system');
    expect((await event(discovery))?.resource).toMatchObject({ outcome: '0' });
    expect(await event(anonymous)).toBeUndefined();
  });
});

describe('CORS for SMART apps in a browser', () => {
  const APP = 'https://app.example.org';
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp({ HEARTH_CORS_ORIGINS: `${APP}, http://localhost:3000` });
  });
  const preflight = (origin: string, url = '/fhir/Patient') =>
    t.raw.inject({
      method: 'OPTIONS',
      url,
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });

  it.each(['/fhir/Patient', '/fhir/Observation/abc', '/fhir/metadata', '/fhir/.well-known/smart-configuration'])(
    'answers the preflight of an allowed origin to %s with what SMART apps send',
    async (url) => {
      const res = await preflight(APP, url);
      expect(res.statusCode).toBe(204);
      expect(res.headers).toMatchObject({
        'access-control-allow-origin': APP,
        'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE',
        'access-control-allow-headers':
          'Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer, X-Request-Id',
        'access-control-max-age': '600',
        'cache-control': 'no-store',
      });
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    },
  );

  it('refuses the preflight of any other origin with a 403 OperationOutcome naming it', async () => {
    const res = await preflight('https://evil.example');
    expect(res.statusCode).toBe(403);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    expect(json(res).issue).toEqual([
      { severity: 'error', code: 'forbidden', diagnostics: 'origin https://evil.example may not call this server from a browser (HEARTH_CORS_ORIGINS)' },
    ]);
  });

  it('lets an allowed page read the answer to a call with Authorization, and no other page', async () => {
    const allowed = await t.app.inject({ method: 'GET', url: '/fhir/Patient?_count=1', headers: { origin: APP } });
    expect(allowed.statusCode).toBe(200);
    expect(allowed.headers['access-control-allow-origin']).toBe(APP);
    expect(allowed.headers['access-control-expose-headers']).toBe('Location, Content-Location, ETag, Last-Modified, X-Request-Id, WWW-Authenticate, Retry-After');
    expect(allowed.headers.vary).toContain('Origin');
    const other = await t.app.inject({ method: 'GET', url: '/fhir/Patient?_count=1', headers: { origin: 'https://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allows no origin by default', async () => {
    const plain = await testApp();
    const res = await plain.raw.inject({ method: 'OPTIONS', url: '/fhir/Patient', headers: { origin: APP, 'access-control-request-method': 'GET' } });
    expect(res.statusCode).toBe(403);
  });
});
