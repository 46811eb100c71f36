import Fastify from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCompartments } from '../../src/auth/authorize.ts';
import { loadRoles } from '../../src/auth/roles.ts';
import { loadFhirModel } from '../../src/fhir/definitions.ts';
import { registerAuthorization } from '../../src/http/authorization.ts';
import { create, type TestApp, testApp } from '../helpers/app.ts';

// One policy, every route: every route the server registers (read from Fastify, not from a hand
// list) × every kind of token → the exact status. The requests aim at patient B, who is neither
// the patient of the patient-context tokens (A) nor assigned to the clinician (Practitioner/dr1)
// under the relationship policy. A route added without a row here fails the first test.
const KINDS = ['none', 'patient', 'user', 'system', 'administrator', 'provider', 'nurse', 'billing', 'patient role', 'auditor'] as const;
type Kind = (typeof KINDS)[number];

const READ_ALL = '401 200 200 200 200 200 200 200 200 403';
const READ_B = '401 404 404 200 404 404 404 404 404 403';
const WRITE_B = '401 403 403 201 403 403 403 403 403 403';
const UPDATE_B = '401 403 403 200 403 403 403 403 403 403';
const DELETE_B = '401 404 404 204 404 404 403 403 403 403';
const NOT_OFFERED = '401 405 405 405 405 405 405 405 405 405';
const PUBLIC = '200 200 200 200 200 200 200 200 200 200';
// The CORS plugin's route: a preflight needs an allowed Origin (edge.test.ts); without one, OPTIONS
// of a FHIR URL is answered with its Allow header alone, the same for everyone.
const OPTIONS_ALLOW = '204 204 204 204 204 204 204 204 204 204';
const AUDIT_SEARCH = '401 200 403 200 200 403 403 403 403 200';

interface Fixture {
  b: string;
  ob: string;
  eventAboutB: string;
  /** a fresh Patient or Observation of B, for requests that change it */
  fresh: (type: 'Patient' | 'Observation') => Promise<{ id: string; identifier: string; body: Record<string, unknown> }>;
}
type Request = { url: string; body?: unknown; contentType?: string };
type Build = (f: Fixture) => Promise<Request> | Request;

const search: Build = () => ({ url: '' });
const postSearch: Build = () => ({ url: '/_search', body: '_count=5', contentType: 'application/x-www-form-urlencoded' });

function typeRows(type: 'Patient' | 'Observation'): Record<string, [Build, string]> {
  const target = (f: Fixture) => (type === 'Patient' ? f.b : f.ob);
  const freshOf = async (f: Fixture) => f.fresh(type);
  return {
    [`GET /fhir/${type}`]: [search, READ_ALL],
    [`HEAD /fhir/${type}`]: [search, READ_ALL],
    [`POST /fhir/${type}/_search`]: [postSearch, READ_ALL],
    [`POST /fhir/${type}`]: [async (f) => ({ url: '', body: (await freshOf(f)).body }), WRITE_B],
    [`PUT /fhir/${type}`]: [async (f) => {
      const x = await freshOf(f);
      return { url: `?identifier=${encodeURIComponent(x.identifier)}`, body: x.body };
    }, UPDATE_B],
    [`GET /fhir/${type}/_history`]: [() => ({ url: '/_history' }), READ_ALL],
    [`HEAD /fhir/${type}/_history`]: [() => ({ url: '/_history' }), READ_ALL],
    [`GET /fhir/${type}/:id`]: [(f) => ({ url: `/${target(f)}` }), READ_B],
    [`HEAD /fhir/${type}/:id`]: [(f) => ({ url: `/${target(f)}` }), READ_B],
    [`PUT /fhir/${type}/:id`]: [async (f) => {
      const x = await freshOf(f);
      return { url: `/${x.id}`, body: { ...x.body, id: x.id } };
    }, UPDATE_B],
    [`DELETE /fhir/${type}/:id`]: [async (f) => ({ url: `/${(await freshOf(f)).id}` }), DELETE_B],
    [`GET /fhir/${type}/:id/_history`]: [(f) => ({ url: `/${target(f)}/_history` }), READ_B],
    [`HEAD /fhir/${type}/:id/_history`]: [(f) => ({ url: `/${target(f)}/_history` }), READ_B],
    [`GET /fhir/${type}/:id/_history/:vid`]: [(f) => ({ url: `/${target(f)}/_history/1` }), READ_B],
    [`HEAD /fhir/${type}/:id/_history/:vid`]: [(f) => ({ url: `/${target(f)}/_history/1` }), READ_B],
    [`DELETE /fhir/${type}`]: [() => ({ url: '?identifier=x' }), NOT_OFFERED],
    [`PATCH /fhir/${type}`]: [() => ({ url: '?identifier=x', body: [] }), NOT_OFFERED],
    [`PATCH /fhir/${type}/:id`]: [(f) => ({ url: `/${target(f)}`, body: [] }), NOT_OFFERED],
    [`POST /fhir/${type}/:id`]: [(f) => ({ url: `/${target(f)}`, body: { resourceType: type } }), NOT_OFFERED],
  };
}

/** A batch of one entry: the route's status is that entry's (the Bundle itself is 200 once authenticated). */
const batchOf = (method: string, url: string, resource?: unknown) => ({
  url: '',
  body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method, url }, ...(resource === undefined ? {} : { resource }) }] },
});

const auditEvent = { resourceType: 'AuditEvent', type: { code: 'rest' }, recorded: '2026-01-01T00:00:00Z', agent: [{ requestor: true }], source: { observer: { display: 'x' } } };
const TABLE: Record<string, [Build, string]> = {
  'OPTIONS *': [() => ({ url: '/fhir/Patient' }), OPTIONS_ALLOW],
  'GET /healthz': [() => ({ url: '' }), PUBLIC],
  'HEAD /healthz': [() => ({ url: '' }), PUBLIC],
  'GET /readyz': [() => ({ url: '' }), PUBLIC],
  'HEAD /readyz': [() => ({ url: '' }), PUBLIC],
  'GET /metrics': [() => ({ url: '' }), PUBLIC],
  'HEAD /metrics': [() => ({ url: '' }), PUBLIC],
  'GET /fhir/metadata': [() => ({ url: '' }), PUBLIC],
  'HEAD /fhir/metadata': [() => ({ url: '' }), PUBLIC],
  'GET /fhir/.well-known/smart-configuration': [() => ({ url: '' }), PUBLIC],
  'HEAD /fhir/.well-known/smart-configuration': [() => ({ url: '' }), PUBLIC],
  ...typeRows('Patient'),
  ...typeRows('Observation'),
  'GET /fhir/AuditEvent': [search, AUDIT_SEARCH],
  'HEAD /fhir/AuditEvent': [search, AUDIT_SEARCH],
  'POST /fhir/AuditEvent/_search': [postSearch, AUDIT_SEARCH],
  'POST /fhir/AuditEvent': [() => ({ url: '', body: auditEvent }), NOT_OFFERED],
  'PUT /fhir/AuditEvent': [() => ({ url: '?outcome=0', body: auditEvent }), NOT_OFFERED],
  'GET /fhir/AuditEvent/_history': [() => ({ url: '/_history' }), NOT_OFFERED],
  'HEAD /fhir/AuditEvent/_history': [() => ({ url: '/_history' }), NOT_OFFERED],
  'GET /fhir/AuditEvent/:id': [(f) => ({ url: `/${f.eventAboutB}` }), '401 404 403 200 200 403 403 403 403 200'],
  'HEAD /fhir/AuditEvent/:id': [(f) => ({ url: `/${f.eventAboutB}` }), '401 404 403 200 200 403 403 403 403 200'],
  'PUT /fhir/AuditEvent/:id': [(f) => ({ url: `/${f.eventAboutB}`, body: { ...auditEvent, id: f.eventAboutB } }), NOT_OFFERED],
  'DELETE /fhir/AuditEvent/:id': [(f) => ({ url: `/${f.eventAboutB}` }), NOT_OFFERED],
  'GET /fhir/AuditEvent/:id/_history': [(f) => ({ url: `/${f.eventAboutB}/_history` }), NOT_OFFERED],
  'HEAD /fhir/AuditEvent/:id/_history': [(f) => ({ url: `/${f.eventAboutB}/_history` }), NOT_OFFERED],
  'GET /fhir/AuditEvent/:id/_history/:vid': [(f) => ({ url: `/${f.eventAboutB}/_history/1` }), NOT_OFFERED],
  'HEAD /fhir/AuditEvent/:id/_history/:vid': [(f) => ({ url: `/${f.eventAboutB}/_history/1` }), NOT_OFFERED],
  'GET /fhir/AuditEvent/$report': [() => ({ url: '/$report?start=2020-01-01&end=2030-01-01' }), '401 403 403 200 200 403 403 403 403 200'],
  'HEAD /fhir/AuditEvent/$report': [() => ({ url: '/$report?start=2020-01-01&end=2030-01-01' }), '401 403 403 200 200 403 403 403 403 200'],
  'DELETE /fhir/AuditEvent': [() => ({ url: '?outcome=0' }), NOT_OFFERED],
  'PATCH /fhir/AuditEvent': [() => ({ url: '?outcome=0', body: [] }), NOT_OFFERED],
  'PATCH /fhir/AuditEvent/:id': [(f) => ({ url: `/${f.eventAboutB}`, body: [] }), NOT_OFFERED],
  'POST /fhir/AuditEvent/:id': [(f) => ({ url: `/${f.eventAboutB}`, body: auditEvent }), NOT_OFFERED],
  // A batch's entry passes the same decision as the route it names (every route: the test below).
  'POST /fhir': [(f) => batchOf('GET', `Patient/${f.b}`), READ_B],
};

/**
 * The app under the relationship policy, patients A (the patient tokens' own, Practitioner/dr1's)
 * and B (neither), an Observation of B, and a token of every kind.
 */
async function setUp(system: string): Promise<{ t: TestApp; f: Fixture; tokens: Record<Kind, string | undefined> }> {
  const t = await testApp({ HEARTH_AUTH_RELATIONSHIP: 'true' });
  const a = (await create(t.app, { resourceType: 'Patient', generalPractitioner: [{ reference: 'Practitioner/dr1' }] })).id;
  const b = (await create(t.app, { resourceType: 'Patient', generalPractitioner: [{ reference: 'Practitioner/dr2' }] })).id;
  const ob = (await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${b}` } })).id;
  const read = await t.app.inject({ method: 'GET', url: `/fhir/Patient/${b}` });
  let n = 0;
  const fresh: Fixture['fresh'] = async (type) => {
    const identifier = `${system}|${++n}`;
    const [sys, value] = identifier.split('|');
    const body =
      type === 'Patient'
        ? { resourceType: 'Patient', identifier: [{ system: sys, value }], generalPractitioner: [{ reference: 'Practitioner/dr2' }], link: [{ other: { reference: `Patient/${b}` }, type: 'seealso' }] }
        : { resourceType: 'Observation', identifier: [{ system: sys, value }], status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${b}` } };
    return { id: (await create(t.app, body)).id, identifier, body };
  };
  const clinician = (scope: string, role?: string) => t.token({ sub: `u-${role ?? 'none'}`, fhirUser: 'Practitioner/dr1', scope, ...(role ? { role } : {}) });
  const tokens = { none: undefined } as Record<Kind, string | undefined>;
  tokens.patient = await t.token({ sub: 'pa', patient: a, scope: 'patient/*.cruds' });
  tokens.user = await clinician('user/*.cruds');
  tokens.system = await t.token({ sub: 'backend', scope: 'system/*.cruds' });
  for (const role of ['administrator', 'provider', 'nurse', 'billing', 'auditor'] as const) tokens[role] = await clinician('user/*.cruds', role);
  tokens['patient role'] = await t.token({ sub: 'pa2', patient: a, scope: 'patient/*.cruds', role: 'patient' });
  return { t, f: { b, ob, eventAboutB: read.headers['x-request-id'] as string, fresh }, tokens };
}

describe('one policy, every route: each registered route × each kind of token', () => {
  let t: TestApp;
  let f: Fixture;
  let tokens: Record<Kind, string | undefined>;

  beforeAll(async () => {
    ({ t, f, tokens } = await setUp('urn:route-policy'));
  });

  it('has a row for every route the server registers, and no row for a route it does not', async () => {
    // The built-in authorization server's endpoints (/auth) are outside the FHIR API: they reach
    // no FHIR data, take no bearer token, and are oidc-provider's (test/auth/authorization-server.test.ts).
    const auth = t.raw.registeredRoutes.filter((r) => r.url === '/auth' || r.url.startsWith('/auth/'));
    expect(new Set(auth.map((r) => r.url))).toEqual(
      new Set(['/auth', '/auth/*', '/auth/launch', '/auth/interaction/:uid', '/auth/interaction/:uid/login', '/auth/interaction/:uid/mfa', '/auth/interaction/:uid/consent']),
    );
    for (const r of auth) expect(r.fhir, `${r.method} ${r.url}`).toBeUndefined();
    const registered = t.raw.registeredRoutes.filter((r) => !auth.includes(r)).map((r) => `${r.method} ${r.url}`).sort();
    expect(registered).toEqual(Object.keys(TABLE).sort());
    // Every route but the public ones declares its interaction, which the decision reads.
    for (const r of t.raw.registeredRoutes) if (!auth.includes(r) && !/metadata|smart-configuration|healthz|readyz|metrics|^\*$/.test(r.url)) expect(r.fhir, `${r.method} ${r.url}`).toBeDefined();
  });

  it.each(Object.keys(TABLE))('%s', async (route) => {
    const [build, expected] = TABLE[route];
    const [method, pattern] = route.split(' ');
    const statuses = expected.split(' ').map(Number);
    const got: string[] = [];
    for (const [i, kind] of KINDS.entries()) {
      const r = await build(f);
      const url = pattern.replace(/\/(:id|_search|_history|\$report).*$/, '').replace(/^\*$/, '') + r.url;
      const body = r.body === undefined ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
      const res = await t.raw.inject({
        method: method as 'GET',
        url,
        headers: {
          ...(tokens[kind] ? { authorization: `Bearer ${tokens[kind]}` } : {}),
          ...(body !== undefined ? { 'content-type': r.contentType ?? 'application/fhir+json' } : {}),
        },
        ...(body !== undefined ? { payload: body } : {}),
      });
      // A batch answers 200 once authenticated; what the decision said is its entry's status.
      const status = method === 'POST' && pattern === '/fhir' && res.statusCode === 200 ? Number.parseInt(JSON.parse(res.body).entry[0].response.status) : res.statusCode;
      got.push(`${kind}:${status}`);
      if (status !== statuses[i]) continue;
      // Refused or not, the access left its AuditEvent — on a public route, when it carried a token.
      if (!/^OPTIONS/.test(route) && (tokens[kind] || !/metadata|smart-configuration|healthz|readyz|metrics/.test(route))) {
        const event = await t.store.read('AuditEvent', res.headers['x-request-id'] as string);
        expect(event, `${kind}: AuditEvent of ${method} ${url}`).toBeDefined();
      }
    }
    expect(got).toEqual(KINDS.map((k, i) => `${k}:${statuses[i]}`));
  });
});

describe('one policy inside a batch: every type route, sent as a batch entry, gets the status the route gets', () => {
  it.each(['Patient', 'Observation'] as const)('%s', async (type) => {
    const { t, f, tokens } = await setUp('urn:batch-policy');
    const rows = Object.entries(typeRows(type)).filter(([route]) => !/^HEAD |_search/.test(route));
    expect(rows.length).toBe(13);
    for (const [route, [build, expected]] of rows) {
      const [method, pattern] = route.split(' ');
      const got: string[] = [];
      for (const kind of KINDS) {
        const r = await build(f);
        const url = `${type}${pattern.replace(`/fhir/${type}`, '').replace(/\/(:id|_history).*$/, '')}${r.url}`;
        const res = await t.raw.inject({
          method: 'POST',
          url: '/fhir',
          headers: { ...(tokens[kind] ? { authorization: `Bearer ${tokens[kind]}` } : {}), 'content-type': 'application/fhir+json' },
          payload: JSON.stringify(batchOf(method, url, r.body).body),
        });
        got.push(`${kind}:${res.statusCode === 200 ? Number.parseInt(JSON.parse(res.body).entry[0].response.status) : res.statusCode}`);
      }
      expect(got, route).toEqual(KINDS.map((k, i) => `${k}:${expected.split(' ')[i]}`));
    }
  }, 60_000);
});

describe('a protected route that declares no interaction', () => {
  it('stops the server from starting, so that no route escapes the decision', async () => {
    const model = loadFhirModel({ updateCreate: false });
    const app = Fastify();
    const start = async () => {
      await app.register(async (api) => {
        registerAuthorization(api, { model, policy: { model, roles: loadRoles(), baseUrl: 'http://x/fhir', compartments: loadCompartments() } });
        api.get('/Patient/$everything', async () => ({}));
      });
      await app.ready();
    };
    await expect(start()).rejects.toThrow('GET /Patient/$everything declares no FHIR interaction, so no authorization decision would apply to it');
  });

  it('refuses an operation the policy does not know, even when declared', async () => {
    const model = loadFhirModel({ updateCreate: false });
    const app = Fastify();
    await app.register(async (api) => {
      api.decorateRequest('principal', null as never);
      api.addHook('onRequest', async (request) => {
        request.principal = { issuer: 'i', grants: [{ context: 'system', type: '*', permissions: new Set(['c', 'r', 'u', 'd', 's']), scope: 'system/*.cruds' }], scopes: ['system/*.cruds'], expiresAt: 2e9 };
      });
      registerAuthorization(api, { model, policy: { model, roles: loadRoles(), baseUrl: 'http://x/fhir', compartments: loadCompartments() } });
      api.get('/Patient/$everything', { config: { fhir: { type: 'Patient', interaction: 'read', operation: '$everything' } } }, async () => ({ leaked: true }));
    });
    app.setErrorHandler((err: { status?: number }, _req, reply) => reply.code(err.status ?? 500).send({ refused: true }));
    const res = await app.inject({ method: 'GET', url: '/Patient/$everything' });
    expect(res.statusCode).toBe(403);
    expect(res.body).not.toContain('leaked');
  });
});
