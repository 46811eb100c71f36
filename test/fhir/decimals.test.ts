import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { beforeAll, describe, expect, it } from 'vitest';
import { cloneJson, isLossy, numberValue, parseExact, parseStored, withNumbers } from '../../src/fhir/json.ts';
import { parseStrictJson } from '../../src/http/strict-json.ts';
import { ids, json, ON_MONGODB, post, put, type TestApp, tempDir, testApp } from '../helpers/app.ts';

describe('numbers kept as written (fhir/json.ts)', () => {
  it('parses, holds and writes back exactly the text of every number a double would change', () => {
    const text = '{"a":1.50,"b":[6.0,-0,1e3,0.4,100,0.40],"c":{"d":-1.230,"e":9007199254740993},"f":"x:1.50,"}';
    const doc = parseStored(text) as any;
    expect(JSON.stringify(doc)).toBe(text);
    expect(numberValue(doc.a)).toBe(1.5);
    expect(doc.b[3]).toBe(0.4); // already exact: an ordinary number
    expect(numberValue(doc.c.e)).toBe(9007199254740992);
    expect(JSON.stringify(withNumbers(doc))).toBe('{"a":1.5,"b":[6,0,1000,0.4,100,0.4],"c":{"d":-1.23,"e":9007199254740992},"f":"x:1.50,"}');
    expect(JSON.stringify(cloneJson(doc))).toBe(text);
    expect(JSON.stringify(parseStrictJson(text, 20))).toBe(text);
    // a document with nothing to keep is left as it is
    const plain = { a: [1, 2.5] };
    expect(withNumbers(plain)).toBe(plain);
  });

  it('the fast check of stored text never misses a number that must be kept (20,000 random numbers)', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let kept = 0;
    for (let i = 0; i < 20_000; i++) {
      let digits = '';
      const length = 1 + Math.floor(random() * 19);
      for (let d = 0; d < length; d++) digits += Math.floor(random() * 10);
      digits = digits.replace(/^0+(?=\d)/, '');
      const cut = Math.floor(random() * (digits.length + 1));
      let token = random() < 0.6 && cut < digits.length ? `${digits.slice(0, cut) || '0'}.${digits.slice(cut)}` : digits;
      if (random() < 0.3) token = `-${token}`;
      if (random() < 0.1) token = `${token}e${Math.floor(random() * 5)}`;
      if (!isLossy(token)) continue;
      kept++;
      for (const doc of [`{"v":${token}}`, `[1,${token}]`, `{"a":[${token}]}`, token]) {
        expect(JSON.stringify(parseStored(doc)), doc).toBe(doc);
      }
    }
    expect(kept).toBeGreaterThan(4_000);
  });

  it('without a number to keep, parses as JSON.parse does', () => {
    const text = '{"a":[1,2.5,-3,1e+21,0.30000000000000004]}';
    expect(parseExact(text, false)).toEqual(JSON.parse(text));
    expect(JSON.stringify(parseStored(text))).toBe(text);
  });
});

describe('decimals exact through the API: storage, encryption, search, subsetting, history', () => {
  let t: TestApp;
  let dataDir: string;
  // value (and component.value) are encrypted; referenceRange and the extension are not.
  const observation = `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"subject":{"reference":"Patient/dec1"},"valueQuantity":{"value":7.50,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},"component":[{"code":{"text":"ratio"},"valueQuantity":{"value":0.40}}],"referenceRange":[{"low":{"value":4.0,"unit":"%"},"high":{"value":5.60,"unit":"%"}}],"extension":[{"url":"http://example.org/precise","valueDecimal":1.000}]}`;
  // in any order: decrypted elements come back after the clear ones
  const numbers = (text: string) => [...text.matchAll(/"(value|valueDecimal)":(-?[\d.eE+]+)/g)].map((m) => m[2]).sort();
  let id: string;

  beforeAll(async () => {
    dataDir = tempDir();
    t = await testApp({}, { dataDir });
    const created = await post(t.app, '/fhir/Observation', observation);
    expect(created.statusCode, created.body).toBe(201);
    id = json(created).id;
    expect(numbers(created.body)).toEqual(['0.40', '1.000', '4.0', '5.60', '7.50']);
  });

  it('read, vread, history and search give back every number as sent', async () => {
    for (const url of [`/fhir/Observation/${id}`, `/fhir/Observation/${id}/_history/1`, `/fhir/Observation/${id}/_history`, `/fhir/Observation?_id=${id}`]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(numbers(res.body), url).toEqual(['0.40', '1.000', '4.0', '5.60', '7.50']);
    }
  });

  it('reaches the database as written: in the clear where not protected, inside the ciphertext where protected', async () => {
    if (ON_MONGODB) return; // the MongoDB canary tests read its documents
    const db = new DatabaseSync(join(dataDir, 'hearth.db'), { readOnly: true });
    const body = (db.prepare('SELECT body FROM resource_versions WHERE id = ?').get(id) as { body: string }).body;
    db.close();
    expect(numbers(body)).toEqual(['1.000', '4.0', '5.60']);
    expect(body).not.toContain('7.50');
  });

  it('compares numerically in search, over the encrypted value too', async () => {
    const found = async (q: string) => ids(json(await t.app.inject({ method: 'GET', url: `/fhir/Observation?subject=Patient/dec1&${q}` })));
    expect(await found('value-quantity=7.5')).toEqual([id]);
    expect(await found('value-quantity=7.50')).toEqual([id]);
    expect(await found('value-quantity=gt7.4')).toEqual([id]);
    expect(await found('value-quantity=gt7.5')).toEqual([]);
    expect(await found('component-value-quantity=0.4')).toEqual([id]);
    expect(await found('component-value-quantity=lt0.40')).toEqual([]);
  });

  it('_elements and _summary keep the text of the numbers they return', async () => {
    const res = await t.app.inject({ method: 'GET', url: `/fhir/Observation/${id}?_elements=value,referenceRange` });
    expect(numbers(res.body)).toEqual(['4.0', '5.60', '7.50']);
  });

  it('an update keeps them, and an integer element written as 1.0 is refused, not rounded', async () => {
    const updated = await put(t.app, `/fhir/Observation/${id}`, observation.replace('{"resourceType":"Observation",', `{"resourceType":"Observation","id":"${id}",`).replace('7.50', '7.500'));
    expect(updated.statusCode, updated.body).toBe(200);
    expect(numbers(updated.body)).toEqual(['0.40', '1.000', '4.0', '5.60', '7.500']);
    const integer = await post(t.app, '/fhir/Observation', observation.replace('"valueQuantity":{"value":7.50,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}', '"valueInteger":6.0'));
    expect(integer.statusCode).toBe(400);
    expect(json(integer).issue[0]).toMatchObject({ code: 'structure', expression: ['Observation.valueInteger'] });
    expect(json(integer).issue[0].diagnostics).toContain('integer');
    const six = await post(t.app, '/fhir/Observation', observation.replace('"valueQuantity":{"value":7.50,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}', '"valueInteger":6'));
    expect(six.statusCode).toBe(201);
    // 17 significant digits, more than a double keeps: stored and returned as sent
    const long = await post(t.app, '/fhir/Observation', observation.replace('7.50', '12345678.123456789'));
    expect(long.statusCode).toBe(201);
    expect(numbers(long.body)).toContain('12345678.123456789');
  });
});
