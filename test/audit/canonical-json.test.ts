import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type AuditFacts, buildAuditEvent } from '../../src/audit/audit-event.ts';
import { canonicalize, canonicalJson } from '../../src/audit/canonical-json.ts';
import { fullPrincipal } from '../helpers/audit-facts.ts';

describe('canonical JSON', () => {
  it('orders keys by UTF-16 code unit, leaves undefined keys out and writes undefined in an array as null', () => {
    const value = { z: 1, a: [{ y: true, b: undefined }, undefined, 'x'], é: { d: null, c: 2.5 }, '\u{1F600}': 0, '\uFFFF': 1, B: 'b' };
    const expected = '{"B":"b","a":[{"y":true},null,"x"],"z":1,"é":{"c":2.5,"d":null},"\u{1F600}":0,"\uFFFF":1}';
    expect(canonicalJson(value)).toBe(expected);
    expect(JSON.stringify(canonicalize(value))).toBe(expected);
  });

  it('returns what is already in canonical order as it is, and copies the rest without changing it', () => {
    const ordered = { a: [{ b: 1, c: { d: 2 } }], e: undefined, f: 'x' };
    expect(canonicalize(ordered)).toBe(ordered);
    const nested = { a: 1, b: { d: 1, c: 2 }, e: [3] };
    const copy = canonicalize(nested);
    expect(copy).not.toBe(nested);
    expect(JSON.stringify(copy)).toBe('{"a":1,"b":{"c":2,"d":1},"e":[3]}');
    expect(copy.e).toBe(nested.e);
    expect(Object.keys(nested.b)).toEqual(['d', 'c']);
  });
});

// Every shape of facts the builder distinguishes: with and without each part of a principal, an
// attempt, a failure, a query, an entry of a Bundle, a login, each kind of address.
const variants: AuditFacts[] = [];
const principals: AuditFacts['principal'][] = [
  undefined,
  fullPrincipal,
  { issuer: 'https://i', clientId: 'c', grants: [], scopes: ['system/*.rs'], expiresAt: 1 },
];
for (const principal of principals) {
  for (const [interaction, status] of [['read', 200], ['create', 201], ['conditional-update', 412], ['login', 500]] as const) {
    for (const extra of [{}, { phase: 'attempt' as const }, { query: 'name=Smith' }, { partOf: 'b1' }, { claimedBy: 'bob', issueCode: 'login' }]) {
      variants.push({
        requestId: 'r1',
        recorded: new Date('2026-01-01T10:00:00Z'),
        interaction,
        resourceType: 'Patient',
        status,
        principal,
        address: ['10.0.0.1', '::1', 'host.example', undefined][variants.length % 4],
        entities: [{ reference: 'Patient/p/_history/2', role: 'after' }, { reference: 'Patient/p/_history/1', role: 'before' }],
        patients: ['Patient/p'],
        server: { baseUrl: 'http://x/fhir', name: 'Hearth' },
        ...extra,
      });
    }
  }
}

describe('the AuditEvents the builder makes', () => {
  // Pinned as the builder made them on 2026-12-02 (before it made its keys in canonical order):
  // what the chain hashes, so a change must be on purpose.
  it('are exactly what they were, in canonical JSON', () => {
    const digest = createHash('sha256');
    for (const f of variants) digest.update(canonicalJson(buildAuditEvent(f)));
    expect({ variants: variants.length, digest: digest.digest('hex') }).toEqual({ variants: 60, digest: '9931c70ce4d6519f2003ef5d7ec82f3df4b820827e6b7a5ecf9175a64b4b24c2' });
  });

  it('are in canonical order as made, so the writer serializes them without a sorted copy', () => {
    for (const f of variants) {
      const event = buildAuditEvent(f);
      expect(canonicalize(event)).toBe(event);
      expect(JSON.stringify(event)).toBe(canonicalJson(event));
    }
  });
});
