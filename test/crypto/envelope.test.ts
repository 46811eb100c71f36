import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ENVELOPE, openResource, rewrapResource, sealResource, sharedDataKey } from '../../src/crypto/envelope.ts';
import { LocalKeyring } from '../../src/crypto/keyring.ts';

// A keyring with fixed keys: KEK local:1 is 32 bytes of 7.
const KEK = Buffer.alloc(32, 7);
const keys = LocalKeyring.fromJson(JSON.stringify({ version: 1, current: 1, keks: { 1: KEK.toString('base64') }, retired: [], index: Buffer.alloc(32, 9).toString('base64'), prefixFrom: 1 }));
const PATHS = ['value', 'component.value', 'note', 'text'];
const observation = {
  resourceType: 'Observation',
  id: 'o1',
  status: 'final',
  code: { text: 'HbA1c' },
  subject: { reference: 'Patient/p1' },
  valueQuantity: { value: JSON.rawJSON('7.10'), unit: '%' },
  component: [{ code: { text: 'a' }, valueString: 'Zqone' }, { code: { text: 'b' } }, { code: { text: 'c' }, valueQuantity: { value: 2 } }],
  note: [{ text: 'Zqnote' }],
};
/** What opening gives: the clear elements, then the protected ones put back (7.10 as written). */
const OPENED =
  '{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"HbA1c"},"subject":{"reference":"Patient/p1"},' +
  '"component":[{"code":{"text":"a"},"valueString":"Zqone"},{"code":{"text":"b"}},{"code":{"text":"c"},"valueQuantity":{"value":2}}],' +
  '"valueQuantity":{"value":7.10,"unit":"%"},"note":[{"text":"Zqnote"}]}';

/** AES-256-GCM open of base64(nonce | ciphertext | tag) by WebCrypto: an implementation apart from the server's. */
async function gcmOpen(key: Uint8Array, sealed: string, aad: string): Promise<Buffer> {
  const raw = Buffer.from(sealed, 'base64');
  const k = await webcrypto.subtle.importKey('raw', key, 'AES-GCM', false, ['decrypt']);
  const clear = await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv: raw.subarray(0, 12), additionalData: Buffer.from(aad) }, k, raw.subarray(12));
  return Buffer.from(clear);
}

describe('the envelope of an encrypted resource version', () => {
  it('seals every protected element in one AES-GCM document: layout and AAD pinned, opened by WebCrypto', async () => {
    const stored = sealResource(keys, PATHS, 'Observation', 'o1', 3, observation);
    const envelope = stored[ENVELOPE] as Record<string, string>;
    expect(Object.keys(envelope)).toEqual(['v', 'kek', 'dek', 'c']);
    expect(envelope).toMatchObject({ v: 2, kek: 'local:1' });
    // Nothing protected stays in clear, and no element path is named outside the ciphertext.
    const text = JSON.stringify(stored);
    for (const clear of ['Zqone', 'Zqnote', '7.10', 'valueQuantity', 'valueString', '"note"']) expect(text).not.toContain(clear);
    const dek = await gcmOpen(KEK, envelope.dek, 'Observation/o1/_history/3#dek#local:1');
    expect(dek.length).toBe(32);
    const elements = (await gcmOpen(dek, envelope.c, 'Observation/o1/_history/3#v2')).toString('utf8');
    expect(elements).toBe('{"valueQuantity":{"value":7.10,"unit":"%"},"component.0.valueString":"Zqone","component.2.valueQuantity":{"value":2},"note":[{"text":"Zqnote"}]}');
    expect(JSON.stringify(openResource(keys, 'Observation', 'o1', 3, stored))).toBe(OPENED);
    // the input is left as it was
    expect(observation.component[0].valueString).toBe('Zqone');
  });

  it('of version 1 (one sealed value per element, written before 2026-12-01) still opens', () => {
    // Written by the version-1 code with the keyring above.
    const v1 = JSON.parse(
      '{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"HbA1c"},"subject":{"reference":"Patient/p1"},' +
      '"component":[{"code":{"text":"a"}},{"code":{"text":"b"}},{"code":{"text":"c"}}],"_hearthEnvelope":{"v":1,"kek":"local:1",' +
      '"dek":"b2GKjl7de2O587OYUt5rJVDSM/mWgSWfknIpOnd87yHHRskO+whUBAs88tFpvubwCzOcFDZt//W6Gaep","f":{' +
      '"valueQuantity":"RrXhecquSOjDejmTOTEnMFU/L0/LHLrmvvxbIUTeX+WZFarEod95p1BODhY4TNOjK6u7dyo=",' +
      '"component.0.valueString":"i4MvU5uHOHkrAtJim8Xl+oXhOVM0/O4rLt3iX1X6WQ/zFg8=",' +
      '"component.2.valueQuantity":"8OFCyn1UHSvpPZu9n1v1oDTojm08eZZL7JHeU0mR6fmFJXKOPMmy",' +
      '"note":"ldnDMTMZGOROli/sPitvTxSTTfQpXoaI0gOsdyCMFvl6+q9ONMYsCfKLFNnUYRc="}}}',
    );
    expect(JSON.stringify(openResource(keys, 'Observation', 'o1', 3, v1))).toBe(OPENED);
    // Key rotation re-wraps its data key under the new KEK and leaves the rest as it is.
    const rotated = LocalKeyring.fromJson(JSON.stringify({
      version: 1, current: 2, keks: { 1: KEK.toString('base64'), 2: Buffer.alloc(32, 5).toString('base64') }, retired: [], index: Buffer.alloc(32, 9).toString('base64'),
    }));
    const rewrapped = rewrapResource(rotated, 'Observation', 'o1', 3, v1)!;
    const { dek, ...rest } = rewrapped[ENVELOPE] as Record<string, unknown>;
    expect(rest).toEqual({ ...v1[ENVELOPE], dek: undefined, kek: 'local:2' });
    expect(dek).not.toBe(v1[ENVELOPE].dek);
    expect(JSON.stringify(openResource(rotated, 'Observation', 'o1', 3, rewrapped))).toBe(OPENED);
    // its elements are bound to their paths: one moved to another path fails
    const f = v1[ENVELOPE].f;
    const moved = { ...v1, [ENVELOPE]: { ...v1[ENVELOPE], f: { ...f, note: f.valueQuantity, valueQuantity: f.note } } };
    expect(() => openResource(keys, 'Observation', 'o1', 3, moved)).toThrow('integrity failure: Observation/o1 version 3 cannot be decrypted');
  });

  it('fails closed when moved, edited, downgraded or emptied', () => {
    const stored = sealResource(keys, PATHS, 'Observation', 'o1', 3, observation);
    const envelope = stored[ENVELOPE] as Record<string, unknown>;
    const flipped = Buffer.from(envelope.c as string, 'base64');
    flipped[20] ^= 1;
    const damaged: [string, string, number, Record<string, unknown>][] = [
      ['another version', 'o1', 4, stored],
      ['another id', 'o2', 3, stored],
      ['one flipped byte', 'o1', 3, { ...stored, [ENVELOPE]: { ...envelope, c: flipped.toString('base64') } }],
      ['marked version 1', 'o1', 3, { ...stored, [ENVELOPE]: { ...envelope, v: 1 } }],
      ['marked version 1 with no elements', 'o1', 3, { ...stored, [ENVELOPE]: { ...envelope, v: 1, f: {} } }],
      ['its sealed elements removed', 'o1', 3, { ...stored, [ENVELOPE]: { ...envelope, c: undefined } }],
      ['marked version 3', 'o1', 3, { ...stored, [ENVELOPE]: { ...envelope, v: 3, key: 'k' } }],
      ['an unknown version', 'o1', 3, { ...stored, [ENVELOPE]: { ...envelope, v: 4 } }],
    ];
    for (const [what, id, version, body] of damaged) {
      expect(() => openResource(keys, 'Observation', id, version, body), what).toThrow(`integrity failure: Observation/${id} version ${version} cannot be decrypted`);
    }
  });

  it('a data key unwrapped before is reused only for the same wrapped key, record and keyring', () => {
    const a = sealResource(keys, PATHS, 'Observation', 'o1', 3, observation);
    const b = sealResource(keys, PATHS, 'Observation', 'o2', 3, { ...observation, id: 'o2' });
    // both opened once: their data keys are now held
    for (const [id, body] of [['o1', a], ['o2', b]] as const) expect(openResource(keys, 'Observation', id, 3, body).note).toEqual([{ text: 'Zqnote' }]);
    const envA = a[ENVELOPE] as Record<string, string>;
    const envB = b[ENVELOPE] as Record<string, string>;
    const flipped = Buffer.from(envA.dek, 'base64');
    flipped[14] ^= 1;
    const refused: [string, string, number, Record<string, unknown>][] = [
      ['A\'s wrapped key on B', 'o2', 3, { ...b, [ENVELOPE]: { ...envB, dek: envA.dek } }],
      ['A opened as another version', 'o1', 4, a],
      ['A\'s wrapped key edited', 'o1', 3, { ...a, [ENVELOPE]: { ...envA, dek: flipped.toString('base64') } }],
    ];
    for (const [what, id, version, body] of refused) {
      expect(() => openResource(keys, 'Observation', id, version, body), what).toThrow(`integrity failure: Observation/${id} version ${version} cannot be decrypted`);
    }
    // Another keyring whose KEK has the same id and other bytes: nothing it opens comes from what this one unwrapped.
    const other = LocalKeyring.fromJson(JSON.stringify({ version: 1, current: 1, keks: { 1: Buffer.alloc(32, 8).toString('base64') }, retired: [], index: Buffer.alloc(32, 9).toString('base64') }));
    expect(() => openResource(other, 'Observation', 'o1', 3, a)).toThrow('integrity failure: Observation/o1 version 3 cannot be decrypted');
    expect(JSON.stringify(openResource(keys, 'Observation', 'o1', 3, a))).toBe(OPENED);
  });
});

// Envelope version 3: the versions one store transaction writes share one data key, wrapped once
// with AAD `key/<key id>#dek#<kek>`; each version's elements are sealed under it with AAD
// `Type/id/_history/version#v3`.
describe('the envelope of a version written in a transaction (a shared data key)', () => {
  const rotated = LocalKeyring.fromJson(JSON.stringify({
    version: 1, current: 2, keks: { 1: KEK.toString('base64'), 2: Buffer.alloc(32, 5).toString('base64') }, retired: [], index: Buffer.alloc(32, 9).toString('base64'),
  }));

  it('names the key it shares and seals each version under its own AAD: layout pinned, opened by WebCrypto', async () => {
    const shared = sharedDataKey(keys);
    const a = sealResource(keys, PATHS, 'Observation', 'o1', 3, observation, undefined, shared);
    const b = sealResource(keys, PATHS, 'Observation', 'o2', 1, { ...observation, id: 'o2' }, undefined, shared);
    const [envA, envB] = [a[ENVELOPE], b[ENVELOPE]] as Record<string, string>[];
    expect(Object.keys(envA)).toEqual(['v', 'kek', 'key', 'dek', 'c']);
    expect(envA).toMatchObject({ v: 3, kek: 'local:1', key: shared.id, dek: shared.dek });
    expect(envA.key).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(envB).toMatchObject({ key: envA.key, dek: envA.dek });
    expect(envB.c).not.toBe(envA.c);
    const dek = await gcmOpen(KEK, envA.dek, `key/${envA.key}#dek#local:1`);
    expect(dek.length).toBe(32);
    const elements = (await gcmOpen(dek, envA.c, 'Observation/o1/_history/3#v3')).toString('utf8');
    expect(elements).toBe('{"valueQuantity":{"value":7.10,"unit":"%"},"component.0.valueString":"Zqone","component.2.valueQuantity":{"value":2},"note":[{"text":"Zqnote"}]}');
    expect(JSON.stringify(openResource(keys, 'Observation', 'o1', 3, a))).toBe(OPENED);
    expect(openResource(keys, 'Observation', 'o2', 1, b).note).toEqual([{ text: 'Zqnote' }]);
  });

  it('written on 2026-12-02 still opens', () => {
    const v3 = JSON.parse(
      '{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"HbA1c"},"subject":{"reference":"Patient/p1"},"_hearthEnvelope":{"v":3,' +
      '"kek":"local:1","key":"IokayfnmAqrUF7J3sP4bnQ","dek":"IpW7cZwUyCkeGNoxSuaXpNoWTIVEM3KHw4LKw/KHsr/m6A+9Cb/UbBD4pwlLJrqwqeoXH5EQDGieq5vN",' +
      '"c":"8Q0FeLtKsGJ5q5EixYmqRXSAz0ZQ1XP7SwpyseuFwtji8Nj0ba4+5v/vdIsDKbgnUVu39ctqLiJ+CEEstaTPEjSjmHAjJ7+ipKxKKrKhfasvF7xH6GQAS7nvO2fysL5reA=="}}',
    );
    expect(openResource(keys, 'Observation', 'o1', 3, v3)).toEqual({ ...observation, component: undefined, valueQuantity: { value: 7.1, unit: '%' } });
  });

  it('fails closed when a version\'s sealed elements are swapped with another\'s under the same key, moved, or its key id edited', () => {
    const shared = sharedDataKey(keys);
    const a = sealResource(keys, PATHS, 'Observation', 'o1', 3, observation, undefined, shared);
    const b = sealResource(keys, PATHS, 'Observation', 'o2', 3, { ...observation, id: 'o2' }, undefined, shared);
    const [envA, envB] = [a[ENVELOPE], b[ENVELOPE]] as Record<string, unknown>[];
    const other = sharedDataKey(keys);
    const damaged: [string, string, number, Record<string, unknown>][] = [
      ['B\'s elements on A', 'o1', 3, { ...a, [ENVELOPE]: { ...envA, c: envB.c } }],
      ['A opened as another version', 'o1', 4, a],
      ['A opened as another record', 'o2', 3, a],
      ['another key\'s id and wrapped key', 'o1', 3, { ...a, [ENVELOPE]: { ...envA, key: other.id, dek: other.dek } }],
      ['its key id edited', 'o1', 3, { ...a, [ENVELOPE]: { ...envA, key: other.id } }],
      ['its key id removed', 'o1', 3, { ...a, [ENVELOPE]: { ...envA, key: undefined } }],
      ['marked version 2', 'o1', 3, { ...a, [ENVELOPE]: { ...envA, v: 2 } }],
    ];
    for (const [what, id, version, body] of damaged) {
      expect(() => openResource(keys, 'Observation', id, version, body), what).toThrow(`integrity failure: Observation/${id} version ${version} cannot be decrypted`);
    }
  });

  it('a rotation re-wraps the shared key once: the versions that shared it still share one wrapped key, under the new KEK', () => {
    const shared = sharedDataKey(keys);
    const versions = ['o1', 'o2', 'o3'].map((id) => sealResource(keys, PATHS, 'Observation', id, 1, { ...observation, id }, undefined, shared));
    const rewrapped = versions.map((v, i) => rewrapResource(rotated, 'Observation', `o${i + 1}`, 1, v)!);
    const envelopes = rewrapped.map((v) => v[ENVELOPE] as Record<string, string>);
    expect(new Set(envelopes.map((e) => e.dek)).size).toBe(1);
    expect(envelopes[0]).toMatchObject({ v: 3, kek: 'local:2', key: shared.id });
    expect(envelopes[0].dek).not.toBe(shared.dek);
    envelopes.forEach((e, i) => expect(e.c).toBe((versions[i][ENVELOPE] as Record<string, string>).c));
    rewrapped.forEach((v, i) => expect(openResource(rotated, 'Observation', `o${i + 1}`, 1, v).note).toEqual([{ text: 'Zqnote' }]));
    expect(rewrapResource(rotated, 'Observation', 'o1', 1, rewrapped[0])).toBeUndefined();
    // A wrapped key that does not unwrap under the old KEK is not re-wrapped, shared or not.
    const flipped = Buffer.from(shared.dek, 'base64');
    flipped[14] ^= 1;
    const bad = { ...versions[0], [ENVELOPE]: { ...(versions[0][ENVELOPE] as object), dek: flipped.toString('base64') } };
    expect(() => rewrapResource(rotated, 'Observation', 'o1', 1, bad)).toThrow('integrity failure: Observation/o1 version 1: data key cannot be unwrapped');
  });
});
