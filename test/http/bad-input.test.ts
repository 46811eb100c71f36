import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { create, json, type TestApp, testApp } from '../helpers/app.ts';

interface Case {
  name: string;
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  url?: string;
  headers?: Record<string, string>;
  /** an object is sent as JSON; a string or bytes are sent as they are */
  body?: unknown;
  status: number;
  code: string;
  expression?: string;
  says?: string | RegExp;
  /** public routes (metadata) and unknown paths are outside the audited API */
  unaudited?: true;
}

const P = (extra: Record<string, unknown>) => ({ resourceType: 'Patient', ...extra });
const O = (extra: Record<string, unknown>) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'x' },
  ...extra,
});
const nested = (depth: number) =>
  `{"resourceType":"Patient","extension":[${'{"extension":['.repeat(depth)}${']}'.repeat(depth)}]}`;

// {P} is replaced by the id of a stored patient.
const cases: Case[] = [
  // schema: unknown elements, wrong types, bad primitives
  {
    name: 'unknown element',
    body: P({ foo: 1 }),
    status: 400,
    code: 'structure',
    expression: 'Patient.foo',
    says: 'unknown element "foo"',
  },
  {
    name: 'unknown nested element',
    body: P({ name: [{ surname: 'x' }] }),
    status: 400,
    code: 'structure',
    expression: 'Patient.name[0].surname',
  },
  {
    name: 'element of wrong type',
    body: P({ name: 'Smith' }),
    status: 400,
    code: 'structure',
    expression: 'Patient.name',
    says: 'must be array',
  },
  {
    name: 'number where a string belongs',
    body: P({ name: [{ family: 3 }] }),
    status: 400,
    code: 'structure',
    expression: 'Patient.name[0].family',
  },
  {
    name: 'impossible month',
    body: P({ birthDate: '1990-13-01' }),
    status: 400,
    code: 'value',
    expression: 'Patient.birthDate',
    says: 'not a valid FHIR date',
  },
  {
    name: 'date with a time',
    body: P({ birthDate: '1990-01-01T00:00:00Z' }),
    status: 400,
    code: 'value',
    expression: 'Patient.birthDate',
  },
  {
    name: 'date in another format',
    body: P({ birthDate: '01/02/1990' }),
    status: 400,
    code: 'value',
    expression: 'Patient.birthDate',
  },
  {
    name: 'code outside its value set',
    body: P({ gender: 'robot' }),
    status: 400,
    code: 'value',
    expression: 'Patient.gender',
    says: 'male',
  },
  {
    name: 'boolean as a string',
    body: P({ active: 'yes' }),
    status: 400,
    code: 'structure',
    expression: 'Patient.active',
  },
  {
    name: 'fractional integer',
    body: P({ multipleBirthInteger: 1.5 }),
    status: 400,
    code: 'structure',
    expression: 'Patient.multipleBirthInteger',
    says: 'integer',
  },
  {
    name: 'integer beyond 32 bits',
    body: P({ multipleBirthInteger: 3000000000 }),
    status: 400,
    code: 'structure',
    expression: 'Patient.multipleBirthInteger',
  },
  {
    name: 'two types of one choice',
    body: P({ multipleBirthBoolean: true, multipleBirthInteger: 2 }),
    status: 400,
    code: 'structure',
    expression: 'Patient.multipleBirthInteger',
    says: 'choice',
  },
  {
    name: 'empty string',
    body: P({ name: [{ family: '' }] }),
    status: 400,
    code: 'value',
    expression: 'Patient.name[0].family',
  },
  {
    name: 'array expected, object sent',
    body: P({ identifier: { system: 'a', value: 'b' } }),
    status: 400,
    code: 'structure',
    expression: 'Patient.identifier',
  },
  {
    name: 'contact point system outside its value set',
    body: P({ telecom: [{ system: 'beeper', value: '1' }] }),
    status: 400,
    code: 'value',
    expression: 'Patient.telecom[0].system',
  },
  {
    name: 'uri with spaces',
    body: P({ identifier: [{ system: 'not a uri', value: '1' }] }),
    status: 400,
    code: 'value',
    expression: 'Patient.identifier[0].system',
  },
  // resourceType and references
  {
    name: 'missing resourceType',
    body: { gender: 'male' },
    status: 400,
    code: 'invalid',
    expression: 'Patient.resourceType',
  },
  {
    name: 'resourceType of another type',
    body: O({}),
    status: 400,
    code: 'invalid',
    expression: 'Patient.resourceType',
    says: 'must be "Patient"',
  },
  {
    name: 'unknown resourceType',
    body: { resourceType: 'Spaceship' },
    status: 400,
    code: 'invalid',
    expression: 'Patient.resourceType',
  },
  {
    name: 'reference without id',
    body: P({ managingOrganization: { reference: 'Organization/' } }),
    status: 400,
    code: 'value',
    expression: 'Patient.managingOrganization.reference',
  },
  {
    name: 'reference with a space',
    body: P({ generalPractitioner: [{ reference: 'Practitioner/ 1' }] }),
    status: 400,
    code: 'value',
    expression: 'Patient.generalPractitioner[0].reference',
  },
  {
    name: 'reference to a lowercase type',
    body: P({ managingOrganization: { reference: 'organization/1' } }),
    status: 400,
    code: 'value',
    expression: 'Patient.managingOrganization.reference',
  },
  {
    name: 'contained resource of unknown type',
    body: P({ contained: [{ resourceType: 'Nope', id: 'a' }] }),
    status: 400,
    code: 'structure',
    expression: 'Patient.contained[0]',
  },
  {
    name: 'contained resource with unknown element',
    body: P({ contained: [{ resourceType: 'Patient', id: 'a', foo: 1 }] }),
    status: 400,
    code: 'structure',
    expression: 'Patient.contained[0].foo',
  },
  // Observation rules
  {
    name: 'Observation without status',
    url: '/fhir/Observation',
    body: { resourceType: 'Observation', code: { text: 'x' } },
    status: 400,
    code: 'required',
    expression: 'Observation.status',
    says: 'missing required element "status"',
  },
  {
    name: 'Observation without code',
    url: '/fhir/Observation',
    body: { resourceType: 'Observation', status: 'final' },
    status: 400,
    code: 'required',
    expression: 'Observation.code',
  },
  {
    name: 'Observation status outside its value set',
    url: '/fhir/Observation',
    body: O({ status: 'done' }),
    status: 400,
    code: 'value',
    expression: 'Observation.status',
  },
  {
    name: 'quantity value as a string',
    url: '/fhir/Observation',
    body: O({ valueQuantity: { value: '80' } }),
    status: 400,
    code: 'structure',
    expression: 'Observation.valueQuantity.value',
  },
  {
    name: 'two value[x] at once',
    url: '/fhir/Observation',
    body: O({ valueQuantity: { value: 1 }, valueString: 'x' }),
    status: 400,
    code: 'structure',
    says: 'only one of valueQuantity, valueString',
  },
  {
    name: 'dateTime without seconds',
    url: '/fhir/Observation',
    body: O({ effectiveDateTime: '2020-01-01T10:00' }),
    status: 400,
    code: 'value',
    expression: 'Observation.effectiveDateTime',
  },
  // JSON itself
  { name: 'JSON array body', body: '[]', status: 400, code: 'structure', says: 'JSON object' },
  { name: 'JSON string body', body: '"Patient"', status: 400, code: 'structure' },
  { name: 'JSON null body', body: 'null', status: 400, code: 'structure' },
  { name: 'malformed JSON', body: '{"resourceType":', status: 400, code: 'structure', says: 'malformed JSON' },
  {
    name: 'trailing garbage',
    body: '{"resourceType":"Patient"} x',
    status: 400,
    code: 'structure',
    says: 'malformed JSON',
  },
  {
    name: 'duplicate keys',
    body: '{"resourceType":"Patient","gender":"male","gender":"female"}',
    status: 400,
    code: 'structure',
    says: 'duplicate JSON key "gender"',
  },
  {
    name: 'duplicate keys hidden by escapes',
    body: '{"resourceType":"Patient","gender":"male","gend\\u0065r":"female"}',
    status: 400,
    code: 'structure',
    says: 'duplicate',
  },
  {
    name: '__proto__ key',
    body: '{"resourceType":"Patient","__proto__":{"x":1}}',
    status: 400,
    code: 'structure',
    says: '__proto__',
  },
  {
    name: 'constructor key nested',
    body: '{"resourceType":"Patient","name":[{"constructor":{}}]}',
    status: 400,
    code: 'structure',
    says: 'constructor',
  },
  { name: 'nesting past the limit', body: nested(60), status: 400, code: 'too-long', says: 'nesting exceeds' },
  {
    name: 'number beyond a double',
    url: '/fhir/Observation',
    body: '{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}',
    status: 400,
    code: 'value',
    expression: 'Observation.valueQuantity.value',
    says: 'out of range',
  },
  {
    name: 'integer beyond 2^53',
    body: '{"resourceType":"Patient","multipleBirthInteger":9007199254740993}',
    status: 400,
    code: 'value',
    says: 'losing digits',
  },
  {
    name: 'decimal beyond 18 digits',
    url: '/fhir/Observation',
    body: '{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.2345678901234567891}}',
    status: 400,
    code: 'value',
    says: 'significant digits',
  },
  {
    name: 'number that underflows to 0',
    url: '/fhir/Observation',
    body: '{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e-400}}',
    status: 400,
    code: 'value',
    expression: 'Observation.valueQuantity.value',
    says: 'too small',
  },
  // strings R4 forbids, named by element
  {
    name: 'control character in a string',
    body: '{"resourceType":"Patient","name":[{"family":"a\\u0001b"}]}',
    status: 400,
    code: 'value',
    expression: 'Patient.name[0].family',
    says: 'control character U+0001',
  },
  {
    name: 'NUL in a string',
    body: '{"resourceType":"Patient","name":[{"given":["Ann","a\\u0000"]}]}',
    status: 400,
    code: 'value',
    expression: 'Patient.name[0].given[1]',
    says: 'U+0000',
  },
  {
    name: 'backspace escape in a string',
    body: '{"resourceType":"Patient","gender":"male","name":[{"text":"a\\bb"}]}',
    status: 400,
    code: 'value',
    expression: 'Patient.name[0].text',
    says: 'U+0008',
  },
  {
    name: 'lone high surrogate',
    body: '{"resourceType":"Patient","name":[{"family":"a\\ud800b"}]}',
    status: 400,
    code: 'value',
    expression: 'Patient.name[0].family',
    says: 'lone surrogate',
  },
  {
    name: 'lone low surrogate',
    body: '{"name":[{"family":"\\udc00"}],"resourceType":"Patient"}',
    status: 400,
    code: 'value',
    expression: 'Patient.name[0].family',
    says: 'lone surrogate',
  },
  {
    name: 'string over 1 MB',
    body: JSON.stringify(P({ name: [{ text: 'x'.repeat(1024 * 1024 + 1) }] })),
    status: 400,
    code: 'too-long',
    expression: 'Patient.name[0].text',
    says: '1048576 characters',
  },
  // encodings
  {
    name: 'Latin-1 body',
    headers: { 'content-type': 'application/fhir+json; charset=iso-8859-1' },
    body: Buffer.from('{"resourceType":"Patient","name":[{"family":"M\u00fcller"}]}', 'latin1'),
    status: 415,
    code: 'not-supported',
    says: 'charset iso-8859-1',
  },
  {
    name: 'invalid UTF-8',
    body: Buffer.concat([Buffer.from('{"resourceType":"Patient","name":[{"family":"M'), Buffer.from([0xfc]), Buffer.from('ller"}]}')]),
    status: 400,
    code: 'structure',
    says: 'not valid UTF-8',
  },
  {
    name: 'UTF-8 encoded surrogate (CESU)',
    body: Buffer.concat([Buffer.from('{"resourceType":"Patient","name":[{"family":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]}')]),
    status: 400,
    code: 'structure',
    says: 'not valid UTF-8',
  },
  {
    name: 'unknown Content-Encoding',
    headers: { 'content-encoding': 'compress' },
    body: P({ gender: 'male' }),
    status: 415,
    code: 'not-supported',
    says: 'Content-Encoding compress',
  },
  {
    name: 'stacked Content-Encodings',
    headers: { 'content-encoding': 'gzip, gzip' },
    body: gzipSync(gzipSync(JSON.stringify(P({ gender: 'male' })))),
    status: 415,
    code: 'not-supported',
  },
  {
    name: 'gzip header on a plain body',
    headers: { 'content-encoding': 'gzip' },
    body: P({ gender: 'male' }),
    status: 400,
    code: 'structure',
    says: 'not valid gzip',
  },
  {
    name: 'gzip bomb (3 MiB of spaces in 3 KB)',
    headers: { 'content-encoding': 'gzip' },
    body: gzipSync(Buffer.alloc(3 * 1024 * 1024, 0x20)),
    status: 413,
    code: 'too-long',
  },
  { name: 'empty body', body: '', status: 400, code: 'structure', says: 'empty' },
  {
    name: 'no body at all',
    body: undefined,
    status: 400,
    code: 'required',
    says: 'required in the request body',
  },
  {
    name: 'body over the size limit',
    body: JSON.stringify(P({ name: [{ text: 'x'.repeat(3 * 1024 * 1024) }] })),
    status: 413,
    code: 'too-long',
  },
  // media types
  {
    name: 'text/plain body',
    headers: { 'content-type': 'text/plain' },
    body: '{}',
    status: 415,
    code: 'not-supported',
  },
  {
    name: 'XML body',
    headers: { 'content-type': 'application/fhir+xml' },
    body: '<Patient/>',
    status: 415,
    code: 'not-supported',
  },
  {
    name: 'form body for a create',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'a=b',
    status: 415,
    code: 'not-supported',
  },
  {
    name: 'XML asked for',
    method: 'GET',
    url: '/fhir/Patient/{P}',
    headers: { accept: 'application/fhir+xml' },
    status: 406,
    code: 'not-supported',
    says: 'XML',
  },
  { name: '_format=xml', method: 'GET', url: '/fhir/Patient?_format=xml', status: 406, code: 'not-supported' },
  {
    name: 'Accept for an image only',
    method: 'GET',
    url: '/fhir/metadata',
    headers: { accept: 'image/png' },
    unaudited: true,
    status: 406,
    code: 'not-supported',
  },
  // updates
  {
    name: 'update without id in the body',
    method: 'PUT',
    url: '/fhir/Patient/{P}',
    body: P({}),
    status: 400,
    code: 'invalid',
    expression: 'Patient.id',
  },
  {
    name: 'update with another id',
    method: 'PUT',
    url: '/fhir/Patient/{P}',
    body: P({ id: 'other' }),
    status: 400,
    code: 'invalid',
    expression: 'Patient.id',
    says: 'does not match',
  },
  {
    name: 'update with an invalid URL id',
    method: 'PUT',
    url: '/fhir/Patient/bad$id',
    body: P({ id: 'bad$id' }),
    status: 400,
    code: 'invalid',
    says: 'invalid resource id',
  },
  {
    name: 'malformed If-Match',
    method: 'PUT',
    url: '/fhir/Patient/{P}',
    headers: { 'if-match': 'abc' },
    body: P({ id: '{P}' }),
    status: 400,
    code: 'invalid',
    says: 'If-Match',
  },
  {
    name: 'stale If-Match',
    method: 'PUT',
    url: '/fhir/Patient/{P}',
    headers: { 'if-match': 'W/"9"' },
    body: P({ id: '{P}', gender: 'female' }),
    status: 412,
    code: 'conflict',
  },
  {
    name: 'invalid update body',
    method: 'PUT',
    url: '/fhir/Patient/{P}',
    body: P({ id: '{P}', gender: 'x' }),
    status: 400,
    code: 'value',
    expression: 'Patient.gender',
  },
  {
    name: 'conditional update without criteria',
    method: 'PUT',
    url: '/fhir/Patient',
    body: P({}),
    status: 400,
    code: 'invalid',
    says: 'search criteria',
  },
  {
    name: 'conditional update with an unknown parameter',
    method: 'PUT',
    url: '/fhir/Patient?shoe=9',
    body: P({}),
    status: 400,
    code: 'invalid',
    says: 'shoe',
  },
  {
    name: 'Prefer with an unknown return',
    headers: { prefer: 'return=everything' },
    body: P({}),
    status: 400,
    code: 'invalid',
    says: 'Prefer return',
  },
  {
    name: 'If-None-Exist with an unknown parameter',
    headers: { 'if-none-exist': 'shoe=9' },
    body: P({}),
    status: 400,
    code: 'invalid',
    says: 'shoe',
  },
  {
    name: 'If-None-Exist with a bad date',
    headers: { 'if-none-exist': 'birthdate=yesterday' },
    body: P({}),
    status: 400,
    code: 'invalid',
    says: 'yesterday',
  },
  // routes and ids
  {
    name: 'id longer than 64',
    method: 'GET',
    url: `/fhir/Patient/${'a'.repeat(65)}`,
    status: 400,
    code: 'invalid',
    says: 'invalid resource id',
  },
  {
    name: 'unknown resource type',
    method: 'GET',
    url: '/fhir/Spaceship/1',
    status: 404,
    code: 'not-found',
    says: 'Spaceship is not served',
  },
  { name: 'unknown type search', method: 'GET', url: '/fhir/Spaceship', status: 404, code: 'not-found' },
  {
    name: 'malformed percent-encoding',
    method: 'GET',
    url: '/fhir/Patient/%E0%A4%A',
    status: 400,
    code: 'structure',
    says: 'percent-encoding',
  },
  { name: 'id over 200 characters', method: 'GET', url: `/fhir/Patient/${'a'.repeat(201)}`, status: 414, code: 'too-long', says: '200 characters' },
  { name: 'unsupported method on an instance', method: 'PATCH', url: '/fhir/Patient/{P}', status: 404, code: 'not-found', says: 'PATCH' },
  { name: 'path outside the API', method: 'GET', url: '/admin/config', status: 404, code: 'not-found', says: '/admin/config' },
  {
    name: 'version id not a number',
    method: 'GET',
    url: '/fhir/Patient/{P}/_history/abc',
    status: 400,
    code: 'invalid',
    says: 'version id',
  },
  {
    name: 'version id zero',
    method: 'GET',
    url: '/fhir/Patient/{P}/_history/0',
    status: 400,
    code: 'invalid',
    says: 'version id',
  },
  {
    name: 'conditional delete',
    method: 'DELETE',
    url: '/fhir/Patient?gender=male',
    status: 405,
    code: 'not-supported',
  },
  {
    name: 'create an AuditEvent',
    url: '/fhir/AuditEvent',
    body: { resourceType: 'AuditEvent' },
    status: 405,
    code: 'not-supported',
  },
  {
    name: 'unknown parameter on read',
    method: 'GET',
    url: '/fhir/Patient/{P}?shoe=9',
    status: 400,
    code: 'invalid',
    says: 'shoe',
  },
  // search parameters
  {
    name: 'unknown search parameter',
    method: 'GET',
    url: '/fhir/Patient?shoe=9',
    status: 400,
    code: 'invalid',
    says: 'unknown search parameter "shoe"',
  },
  {
    name: 'malformed date',
    method: 'GET',
    url: '/fhir/Patient?birthdate=notadate',
    status: 400,
    code: 'invalid',
    says: 'notadate',
  },
  { name: 'impossible date', method: 'GET', url: '/fhir/Patient?birthdate=2020-02-30', status: 400, code: 'invalid' },
  { name: 'unknown date prefix', method: 'GET', url: '/fhir/Patient?birthdate=xx2020', status: 400, code: 'invalid' },
  {
    name: 'negative _count',
    method: 'GET',
    url: '/fhir/Patient?_count=-1',
    status: 400,
    code: 'invalid',
    says: '_count',
  },
  {
    name: '_count not a number',
    method: 'GET',
    url: '/fhir/Patient?_count=ten',
    status: 400,
    code: 'invalid',
    says: '_count',
  },
  {
    name: '_count twice',
    method: 'GET',
    url: '/fhir/Patient?_count=1&_count=2',
    status: 400,
    code: 'invalid',
    says: 'only once',
  },
  {
    name: 'sort by an unknown parameter',
    method: 'GET',
    url: '/fhir/Patient?_sort=shoe',
    status: 400,
    code: 'invalid',
    says: 'shoe',
  },
  {
    name: 'bad _total',
    method: 'GET',
    url: '/fhir/Patient?_total=maybe',
    status: 400,
    code: 'invalid',
    says: '_total',
  },
  {
    name: 'unsupported modifier',
    method: 'GET',
    url: '/fhir/Patient?family:fuzzy=x',
    status: 400,
    code: 'invalid',
    says: ':fuzzy',
  },
  {
    name: 'modifier of another type',
    method: 'GET',
    url: '/fhir/Patient?gender:exact=male',
    status: 400,
    code: 'invalid',
    says: ':exact',
  },
  {
    name: 'empty value',
    method: 'GET',
    url: '/fhir/Patient?family=',
    status: 400,
    code: 'invalid',
    says: 'empty value',
  },
  {
    name: 'empty OR value',
    method: 'GET',
    url: '/fhir/Patient?family=a,,b',
    status: 400,
    code: 'invalid',
    says: 'empty value',
  },
  {
    name: 'unsupported _include',
    method: 'GET',
    url: '/fhir/Patient?_include=Patient:shoe',
    status: 400,
    code: 'invalid',
    says: '_include',
  },
  {
    name: 'unsupported _revinclude',
    method: 'GET',
    url: '/fhir/Patient?_revinclude=Spaceship:pilot',
    status: 400,
    code: 'invalid',
    says: '_revinclude',
  },
  {
    name: 'bad _summary',
    method: 'GET',
    url: '/fhir/Patient?_summary=bogus',
    status: 400,
    code: 'invalid',
    says: '_summary',
  },
  {
    name: 'unknown _elements name',
    method: 'GET',
    url: '/fhir/Patient?_elements=shoe',
    status: 400,
    code: 'invalid',
    says: 'shoe',
  },
  {
    name: '_summary with _elements',
    method: 'GET',
    url: '/fhir/Patient?_summary=true&_elements=name',
    status: 400,
    code: 'invalid',
    says: 'cannot be combined',
  },
  {
    name: 'quantity that is not a number',
    method: 'GET',
    url: '/fhir/Observation?value-quantity=abc',
    status: 400,
    code: 'invalid',
    says: 'not a number',
  },
  {
    name: 'quantity with two parts',
    method: 'GET',
    url: '/fhir/Observation?value-quantity=1|mg',
    status: 400,
    code: 'invalid',
    says: 'quantity',
  },
  {
    name: 'composite with one part',
    method: 'GET',
    url: '/fhir/Observation?code-value-quantity=x',
    status: 400,
    code: 'invalid',
    says: 'joined by $',
  },
  {
    name: 'chain on a token',
    method: 'GET',
    url: '/fhir/Observation?code.family=x',
    status: 400,
    code: 'invalid',
    says: 'cannot be chained',
  },
  {
    name: 'chain to an unserved type',
    method: 'GET',
    url: '/fhir/Observation?subject:Device.name=x',
    status: 400,
    code: 'invalid',
    says: 'not served',
  },
  {
    name: 'forged cursor',
    method: 'GET',
    url: '/fhir/Patient?_cursor=garbage',
    status: 400,
    code: 'invalid',
    says: '_cursor',
  },
  {
    name: 'token with three parts',
    method: 'GET',
    url: '/fhir/Patient?identifier=a|b|c',
    status: 400,
    code: 'invalid',
    says: 'token',
  },
  {
    name: 'bad :missing value',
    method: 'GET',
    url: '/fhir/Patient?gender:missing=maybe',
    status: 400,
    code: 'invalid',
    says: 'true or false',
  },
  {
    name: '_has is not supported',
    method: 'GET',
    url: '/fhir/Patient?_has:Observation:subject:code=1',
    status: 400,
    code: 'invalid',
    says: '_has',
  },
  {
    name: 'reference of bad shape',
    method: 'GET',
    url: '/fhir/Observation?subject=Patient/a/b',
    status: 400,
    code: 'invalid',
    says: 'not a reference',
  },
  {
    name: 'Prefer with an unknown handling',
    method: 'GET',
    url: '/fhir/Patient',
    headers: { prefer: 'handling=sloppy' },
    status: 400,
    code: 'invalid',
    says: 'handling',
  },
  { name: 'POST _search with JSON', url: '/fhir/Patient/_search', body: P({}), status: 415, code: 'not-supported' },
  // history parameters
  {
    name: '_since that is not an instant',
    method: 'GET',
    url: '/fhir/Patient/_history?_since=yesterday',
    status: 400,
    code: 'invalid',
    says: '_since',
  },
  {
    name: '_since without a zone',
    method: 'GET',
    url: '/fhir/Patient/_history?_since=2020-01-01T00:00:00',
    status: 400,
    code: 'invalid',
    says: '_since',
  },
  {
    name: 'history _count not a number',
    method: 'GET',
    url: '/fhir/Patient/_history?_count=x',
    status: 400,
    code: 'invalid',
    says: '_count',
  },
  {
    name: 'history with an unknown parameter',
    method: 'GET',
    url: '/fhir/Patient/{P}/_history?_at=2020',
    status: 400,
    code: 'invalid',
    says: '_at',
  },
];

describe('bad input: a clear 4xx OperationOutcome, and nothing stored', () => {
  let t: TestApp;
  let pid: string;
  const snapshot = async () => {
    const out: unknown[] = [];
    for (const type of ['Patient', 'Observation']) {
      const h = await t.store.history({ type, count: 1000 });
      out.push(
        h.total,
        h.versions.map((v) => [v.id, v.versionId, v.resource]),
      );
    }
    return out;
  };

  beforeAll(async () => {
    t = await testApp();
    pid = (await create(t.app, P({ gender: 'male', name: [{ family: 'Seed' }] }))).id;
  });

  it('has at least 60 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  it.each(cases)('$name → $status', async (c) => {
    const before = await snapshot();
    const fill = (s: string) => s.replaceAll('{P}', pid);
    const payload =
      c.body === undefined || typeof c.body === 'string' || Buffer.isBuffer(c.body) ? c.body : fill(JSON.stringify(c.body));
    const res = await t.app.inject({
      method: c.method ?? 'POST',
      url: fill(c.url ?? '/fhir/Patient'),
      headers: { ...(payload !== undefined ? { 'content-type': 'application/fhir+json' } : {}), ...c.headers },
      ...(payload !== undefined ? { payload } : {}),
    });
    expect(res.statusCode, res.body).toBe(c.status);
    expect(res.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
    const outcome = json(res);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0].severity).toBe('error');
    expect(outcome.issue[0].code).toBe(c.code);
    if (c.expression) expect(outcome.issue.map((i: any) => i.expression?.[0])).toContain(c.expression);
    if (c.says) expect(outcome.issue.map((i: any) => i.diagnostics).join(' | ')).toMatch(c.says);
    expect(await snapshot()).toEqual(before);
    // ...and the refusal itself is audited, as a failure with the issue code.
    const audit = await t.store.read('AuditEvent', res.headers['x-request-id'] as string);
    if (c.unaudited) expect(audit).toBeUndefined();
    else expect(audit?.resource).toMatchObject({ outcome: '4', outcomeDesc: `${c.status} ${c.code}` });
  });
});
