import { beforeAll, describe, expect, it } from 'vitest';
import { create, json, type TestApp, testApp } from '../helpers/app.ts';

const form = 'application/x-www-form-urlencoded';
const repeat = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
const ors = (n: number, f: (i: number) => string) => repeat(n, f).join(',');

// Limits come before the database: over a limit is a 400 naming it; within them no search is a 5xx.
describe('search limits', () => {
  let t: TestApp;
  let patient: string;
  let patientToken: string;
  let granularToken: string;
  beforeAll(async () => {
    t = await testApp();
    patient = (await create(t.app, { resourceType: 'Patient', name: [{ family: 'Limit' }], birthDate: '1970-01-01' })).id;
    await create(t.app, { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${patient}` }, valueQuantity: { value: 1 } });
    patientToken = await t.token({ patient, scope: 'patient/*.rs' });
    granularToken = await t.token({ scope: 'user/Observation.rs?category=laboratory user/Patient.rs?gender=female' });
  });

  const postSearch = (type: string, body: string, token?: string) =>
    t.app.inject({
      method: 'POST',
      url: `/fhir/${type}/_search`,
      headers: { 'content-type': form, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      payload: body,
    });

  it.each<[string, string, () => string, string]>([
    ['1,000 _tag parameters', 'Patient', () => repeat(1000, (i) => `_tag=urn:t|t${i}`).join('&'), 'the search has 1000 parameters; the limit is 40'],
    ['20,000 family parameters', 'Patient', () => repeat(20000, (i) => `family=f${i}`).join('&'), 'the form body of the search is 268889 bytes; the limit is 65536'],
    ['1,000 _tag parameters in a small body', 'Patient', () => repeat(1000, (i) => `_tag=${i}`).join('&'), 'the search has 1000 parameters; the limit is 40'],
    ['a _sort of 10,000 keys', 'Patient', () => `_sort=${ors(10000, () => 'birthdate')}`, 'the form body of the search is 100005 bytes; the limit is 65536'],
    ['a _sort of 500 keys', 'Patient', () => `_sort=${ors(500, () => 'gender')}`, '_sort has 500 keys; the limit is 8'],
    ['101 values in one parameter', 'Patient', () => `_id=${ors(101, (i) => `id${i}`)}`, 'at most 100 values may be ORed in one parameter'],
    ['17 includes', 'Observation', () => repeat(17, () => '_include=Observation:subject').join('&'), 'the search has 17 _include and _revinclude entries; the limit is 16'],
    ['a value of 5,000 characters', 'Patient', () => `family=${'x'.repeat(5000)}`, 'the value of family is 5000 characters; the limit is 4096'],
    ['a form body of 2 MB', 'Patient', () => `family=${'x'.repeat(2 * 1024 * 1024 - 10)}`, 'bytes; the limit is 65536'],
  ])('%s → 400 too-costly naming the limit, also with lenient handling', async (_n, type, body, message) => {
    for (const prefer of ['handling=strict', 'handling=lenient']) {
      const res = await t.app.inject({ method: 'POST', url: `/fhir/${type}/_search`, headers: { 'content-type': form, prefer }, payload: body() });
      expect(res.statusCode, res.body.slice(0, 300)).toBe(400);
      expect(json(res).issue[0].code).toBe('too-costly');
      expect(json(res).issue[0].diagnostics).toContain(message);
    }
  });

  it('caps GET searches the same way', async () => {
    const res = await t.app.inject({ method: 'GET', url: `/fhir/Observation?${repeat(41, (i) => `code=c${i}`).join('&')}` });
    expect(res.statusCode).toBe(400);
    expect(json(res).issue[0].diagnostics).toBe('the search has 41 parameters; the limit is 40');
  });

  // Every shape at its limits, on the default (encrypting) protection, for unrestricted,
  // compartment-restricted and granular tokens: never a 5xx.
  const shapes: [string, string, string][] = [
    ['40 _tag × 100 values', 'Patient', repeat(40, (p) => `_tag=${ors(100, (i) => `urn:t|t${p}-${i}`)}`).join('&')],
    ['40 family × 100 values (blind index)', 'Patient', repeat(40, (p) => `family=${ors(100, (i) => `fam${p}x${i}`)}`).join('&')],
    ['40 given:contains', 'Patient', repeat(40, (p) => `name:contains=ab${p}`).join('&')],
    ['40 _id × 100 values', 'Patient', repeat(40, (p) => `_id=${ors(100, (i) => `i${p}-${i}`)}`).join('&')],
    ['40 birthdate × 100 values', 'Patient', repeat(40, (p) => `birthdate=${ors(100, (i) => `19${String((i + p) % 100).padStart(2, '0')}`)}`).join('&')],
    ['40 chains × 100 values', 'Observation', repeat(40, (p) => `subject:Patient.family=${ors(100, (i) => `ch${p}y${i}`)}`).join('&')],
    ['40 three-link chains', 'Observation', repeat(40, (p) => `subject:Patient.link:Patient.general-practitioner=${ors(60, (i) => `Practitioner/p${p}-${i}`)}`).join('&')],
    ['40 value-quantity × 100', 'Observation', repeat(40, (p) => `value-quantity=${ors(100, (i) => `${p}.${i}`)}`).join('&')],
    ['40 composite × 100', 'Observation', repeat(40, (p) => `code-value-quantity=${ors(100, (i) => `c${p}$${i}`)}`).join('&')],
    ['40 :not × 100', 'Observation', repeat(40, (p) => `status:not=${ors(100, (i) => `s${p}${i}`)}`).join('&')],
    ['40 :missing', 'Observation', repeat(40, (p) => `${p % 2 ? 'subject' : 'code'}:missing=${p % 3 ? 'true' : 'false'}`).join('&')],
    ['8 sort keys and 16 includes', 'Observation', `_sort=${['date', '-code', 'status', '-subject', 'value-quantity', 'category', '-patient', '_lastUpdated'].join(',')}&${repeat(8, () => '_include=Observation:subject&_revinclude=Observation:has-member').join('&')}`],
    ['40 reference × 100', 'Observation', repeat(40, (p) => `subject=${ors(100, (i) => `Patient/r${p}-${i}`)}`).join('&')],
    ['a 4,096-character value', 'Patient', `family=${'y'.repeat(4096)}&given=${'z'.repeat(4096)}&_tag=${'t'.repeat(4096)}`],
  ];

  it.each(shapes)('%s: never a 5xx, for every kind of token', async (_n, type, body) => {
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(64 * 1024);
    for (const token of [undefined, patientToken, granularToken]) {
      const res = await postSearch(type, body, token);
      expect(res.statusCode, `${res.statusCode} ${res.body.slice(0, 300)}`).toBeLessThan(500);
    }
  });
});
