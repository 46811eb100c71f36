import { beforeAll, describe, expect, it } from 'vitest';
import { examples, json, post, type TestApp, testApp } from '../helpers/app.ts';

/** The resource minus what the server manages: id, meta.versionId, meta.lastUpdated. */
function comparable(resource: Record<string, any>) {
  const { id: _id, meta, ...rest } = resource;
  const { versionId: _v, lastUpdated: _l, ...keptMeta } = meta ?? {};
  return Object.keys(keptMeta).length > 0 ? { ...rest, meta: keptMeta } : rest;
}

describe('official R4 examples round-trip unchanged', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
  });

  const patients = examples('Patient');
  const observations = examples('Observation');

  it('ships all 22 Patient and 64 Observation examples', () => {
    expect(patients).toHaveLength(22);
    expect(observations).toHaveLength(64);
  });

  it.each([...patients, ...observations])('$file', async ({ resource }) => {
    const created = await post(t.app, `/fhir/${resource.resourceType}`, resource);
    expect(created.statusCode, created.body).toBe(201);
    const id = json(created).id;
    const read = await t.app.inject({ method: 'GET', url: `/fhir/${resource.resourceType}/${id}` });
    expect(read.statusCode).toBe(200);
    const back = json(read);
    expect(back.id).toBe(id);
    expect(back.meta.versionId).toBe('1');
    expect(comparable(back)).toEqual(comparable(resource));
  });
});
