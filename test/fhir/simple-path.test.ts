import { describe, expect, it } from 'vitest';
import { buildAuditEvent } from '../../src/audit/audit-event.ts';
import { loadFhirModel } from '../../src/fhir/definitions.ts';
import { examples } from '../helpers/app.ts';
import { fullPrincipal } from '../helpers/audit-facts.ts';

const model = loadFhirModel({ updateCreate: false });

const audits = [
  buildAuditEvent({
    requestId: 'a1',
    recorded: new Date('2026-01-01T10:00:00Z'),
    interaction: 'read',
    resourceType: 'Patient',
    status: 200,
    principal: fullPrincipal,
    address: '10.0.0.1',
    entities: [{ reference: 'Patient/p/_history/1', role: 'domain' }],
    patients: ['Patient/p'],
    server: { baseUrl: 'http://x/fhir', name: 'Hearth' },
  }),
  buildAuditEvent({
    requestId: 'a2',
    recorded: new Date('2026-01-01T10:00:00Z'),
    interaction: 'search-type',
    resourceType: 'Observation',
    status: 401,
    issueCode: 'login',
    entities: [],
    patients: [],
    query: 'code=x',
    server: { baseUrl: 'http://x/fhir', name: 'Hearth' },
  }),
];

describe('the fast path for plain SearchParameter paths', () => {
  const resources = [...examples('Patient'), ...examples('Observation')].map((e) => e.resource).concat(audits as any[]);
  it.each([...model.types.values()].flatMap((t) => [...t.params.values()].map((p) => [t.type, p.code, p] as const)))(
    '%s.%s gives what FHIRPath gives on every example',
    (type, _code, def) => {
      const run = (f: (r: unknown) => unknown[], r: unknown) => {
        try {
          return f(r);
        } catch (err) {
          return `throws ${(err as Error).message}`;
        }
      };
      for (const r of resources.filter((x) => x.resourceType === type)) {
        const slow = run(def.evaluateFhirPath, r);
        // fhirpath.js refuses a Quantity with a comparator (`>60`) in `as Quantity`; the fast path
        // returns it, so such a value is indexed instead of leaving the resource unsearchable.
        if (slow === 'throws Cannot convert a FHIR.Quantity that has a comparator') {
          expect(run(def.evaluate, r)).toContainEqual(expect.objectContaining({ comparator: expect.any(String) }));
          continue;
        }
        expect(run(def.evaluate, r)).toEqual(slow);
        // A composite's components, relative to each node of its base.
        for (const base of Array.isArray(slow) ? slow : []) {
          for (const c of def.components ?? []) {
            const component = run(c.evaluateFhirPath, base);
            if (component === 'throws Cannot convert a FHIR.Quantity that has a comparator') continue;
            expect(run(c.evaluate, base), `${c.expression} on ${JSON.stringify(base)}`).toEqual(component);
          }
        }
      }
    },
  );

  it('takes the fast path for every Observation parameter and component but those FHIRPath needs functions for', () => {
    const observation = model.types.get('Observation')!;
    const slow = [...observation.params.values()].flatMap((p) => [
      ...(p.evaluate === p.evaluateFhirPath ? [p.code] : []),
      ...(p.components ?? []).filter((c) => c.evaluate === c.evaluateFhirPath).map((c) => `${p.code}: ${c.expression}`),
    ]);
    expect(slow).toEqual([]);
  });
});
