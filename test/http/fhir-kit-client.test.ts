import { Client } from 'fhir-kit-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { examples, freePort, type TestApp, testApp } from '../helpers/app.ts';

// A real FHIR client over real HTTP on loopback: what an EHR integration sees on the wire.
describe('over HTTP with fhir-kit-client', () => {
  let t: TestApp;
  let client: Client;
  let baseUrl: string;

  beforeAll(async () => {
    const port = await freePort();
    t = await testApp({ HEARTH_PORT: String(port) });
    await t.app.listen({ host: '127.0.0.1', port });
    baseUrl = `http://127.0.0.1:${port}/fhir`;
    client = new Client({ baseUrl, bearerToken: t.adminToken });
  });
  afterAll(async () => {
    await t.app.close();
  });

  const status = async (p: Promise<unknown>) => {
    try {
      await p;
      return 200;
    } catch (err) {
      return (err as { response?: { status: number } }).response?.status;
    }
  };

  it('reads the capability statement', async () => {
    const cs: any = await client.capabilityStatement();
    expect(cs.resourceType).toBe('CapabilityStatement');
    expect(cs.rest[0].resource.map((r: any) => r.type)).toContain('Observation');
  });

  it('creates, reads, vreads, updates, deletes and reads history', async () => {
    const { resource } = examples('Patient').find((e) => e.file === 'Patient-example.json')!;
    const created: any = await client.create({ resourceType: 'Patient', body: resource });
    expect(created.meta.versionId).toBe('1');
    const read: any = await client.read({ resourceType: 'Patient', id: created.id });
    expect(read.name).toEqual(resource.name);
    const updated: any = await client.update({
      resourceType: 'Patient',
      id: created.id,
      body: { ...read, gender: 'other' },
    });
    expect(updated.meta.versionId).toBe('2');
    const v1: any = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
    expect(v1.gender).toBe('male');
    const hist: any = await client.history({ resourceType: 'Patient', id: created.id });
    expect(hist.total).toBe(2);
    await client.delete({ resourceType: 'Patient', id: created.id });
    expect(await status(client.read({ resourceType: 'Patient', id: created.id }))).toBe(410);
  });

  it('refuses a stale version with 412 through If-Match', async () => {
    const p: any = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', gender: 'male' } });
    await client.update({ resourceType: 'Patient', id: p.id, body: { ...p, gender: 'female' } });
    const stale = client.update({
      resourceType: 'Patient',
      id: p.id,
      body: { ...p, gender: 'other' },
      options: { headers: { 'If-Match': 'W/"1"' } },
    });
    expect(await status(stale)).toBe(412);
  });

  it('searches with GET and POST and pages with nextPage / prevPage', async () => {
    for (let i = 0; i < 25; i++) {
      await client.create({
        resourceType: 'Observation',
        body: { resourceType: 'Observation', status: 'final', code: { text: 'kit' }, valueQuantity: { value: i } },
      });
    }
    const first: any = await client.search({
      resourceType: 'Observation',
      searchParams: { 'code:text': 'kit', _count: '10', _sort: '_lastUpdated' },
    });
    expect(first.total).toBe(25);
    const values: number[] = first.entry.map((e: any) => e.resource.valueQuantity.value);
    let page: any = first;
    for (;;) {
      const next = client.nextPage({ bundle: page });
      if (!next) break;
      page = await next;
      values.push(...page.entry.map((e: any) => e.resource.valueQuantity.value));
    }
    expect(values).toEqual([...Array(25).keys()]);
    const back: any = await client.prevPage({ bundle: page });
    expect(back.entry.map((e: any) => e.resource.valueQuantity.value)).toEqual([
      10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    ]);
    const posted: any = await client.search({
      resourceType: 'Observation',
      searchParams: { 'code:text': 'kit', _sort: '-_lastUpdated', _count: '5' },
      options: { postSearch: true },
    });
    expect(posted.entry.map((e: any) => e.resource.valueQuantity.value)).toEqual([24, 23, 22, 21, 20]);
  });

  it('refuses a request without a token on the wire with 401 and WWW-Authenticate', async () => {
    const res = await fetch(`${baseUrl}/Patient`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="hearth"');
    const meta = await fetch(`${baseUrl}/metadata`);
    expect(meta.status).toBe(200);
  });

  it('answers bad input on the wire with an OperationOutcome', async () => {
    const res = await fetch(`${baseUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${t.adminToken}` },
      body: '{"resourceType":"Patient","birthDate":"not-a-date"}',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    const oo: any = await res.json();
    expect(oo.issue[0].expression).toEqual(['Patient.birthDate']);
  });
});
