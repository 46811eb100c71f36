import { beforeAll, describe, expect, it } from 'vitest';
import { withNumbers } from '../../src/fhir/json.ts';
import { bundledExamples, examples, json, post, type TestApp, testApp } from '../helpers/app.ts';

/** The resource minus what the server manages: id, meta.versionId, meta.lastUpdated. */
function comparable(resource: Record<string, any>) {
  const { id: _id, meta, ...rest } = resource;
  const { versionId: _v, lastUpdated: _l, ...keptMeta } = meta ?? {};
  return Object.keys(keptMeta).length > 0 ? { ...rest, meta: keptMeta } : rest;
}

/** JSON text parsed with every number replaced by its exact text: `0.40` and `0.4` stay apart. */
const numbersAsText = (text: string) =>
  JSON.parse(text, (_k, v, context) => (typeof v === 'number' ? `number:${context.source}` : v)) as Record<string, any>;

describe('official R4 examples round-trip unchanged, numbers byte for byte', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
  });

  const patients = examples('Patient');
  const observations = examples('Observation');
  const bundled = bundledExamples();

  it('ships all 22 Patient and 64 Observation examples, and the 173 inside the example Bundles', () => {
    expect(patients).toHaveLength(22);
    expect(observations).toHaveLength(64);
    expect(bundled).toHaveLength(173);
    // What the test is about: decimals whose text a JavaScript number would change (0.40, 6.0).
    const lossy = (r: unknown) => JSON.stringify(r) !== JSON.stringify(withNumbers(r));
    expect([...patients, ...observations].filter((e) => lossy(e.resource)).map((e) => e.file)).toEqual([
      'Observation-body-height.json',
      'Observation-decimal.json',
      'Observation-f003.json',
    ]);
    expect(bundled.filter((e) => lossy(e.resource))).toHaveLength(18);
  });

  it.each([...patients, ...observations, ...bundled])('$file', async ({ resource }) => {
    const created = await post(t.app, `/fhir/${resource.resourceType}`, resource);
    expect(created.statusCode, created.body).toBe(201);
    expect(comparable(numbersAsText(created.body))).toEqual(comparable(numbersAsText(JSON.stringify(resource))));
    const id = json(created).id;
    const read = await t.app.inject({ method: 'GET', url: `/fhir/${resource.resourceType}/${id}` });
    expect(read.statusCode).toBe(200);
    const back = numbersAsText(read.body);
    expect(back.id).toBe(id);
    expect(back.meta.versionId).toBe('1');
    expect(comparable(back)).toEqual(comparable(numbersAsText(JSON.stringify(resource))));
  });
});
