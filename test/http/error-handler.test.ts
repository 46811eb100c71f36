import { describe, expect, it } from 'vitest';
import { ERRORS, FhirError, operationOutcome, versionConflict } from '../../src/fhir/errors.ts';
import { toFhirError } from '../../src/http/error-handler.ts';
import { fromStoreFailure } from '../../src/rest/store-errors.ts';
import { StoreError } from '../../src/store/resource-store.ts';

describe('the error catalogue', () => {
  it('fixes the status and issue type of each code', () => {
    const e = new FhirError('HEARTH_SEARCH_LIMIT', 'the search has 41 parameters; the limit is 40');
    expect(e.status).toBe(400);
    expect(e.issues).toEqual([{ code: 'too-costly', diagnostics: 'the search has 41 parameters; the limit is 40' }]);
    expect(new FhirError('HEARTH_NO_BODY', { diagnostics: 'x', expression: 'Patient' }).issues[0]).toEqual({ code: 'required', diagnostics: 'x', expression: 'Patient' });
    for (const [code, entry] of Object.entries(ERRORS)) {
      expect(code, code).toMatch(/^HEARTH_[A-Z_]+$/);
      expect(entry.status, code).toBeGreaterThanOrEqual(400);
    }
  });

  it('builds the version conflict in one place', () => {
    expect(operationOutcome(versionConflict('Patient', 'p1', 3).issues)).toEqual({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'conflict', diagnostics: 'If-Match version 3 is not the current version of Patient/p1' }],
    });
  });

  it.each([
    [{ kind: 'version-conflict', type: 'Patient', id: 'p1', ifMatch: 2 } as const, 412, 'conflict', 'If-Match version 2 is not the current version of Patient/p1'],
    [{ kind: 'not-found', type: 'Patient', id: 'c1' } as const, 404, 'not-found', 'Patient/c1 does not exist and this server does not create resources with client-assigned ids'],
    [{ kind: 'multiple-matches', type: 'Patient', what: 'conditional update' } as const, 412, 'multiple-matches', 'conditional update criteria match more than one resource'],
  ])('maps the storage failure %o to %i %s', (failure, status, issue, diagnostics) => {
    const direct = fromStoreFailure(failure);
    const mapped = toFhirError(new StoreError(failure));
    for (const e of [direct, mapped]) {
      expect(e.status).toBe(status);
      expect(e.issues).toEqual([{ code: issue, diagnostics }]);
    }
  });

  it('maps an unknown fault to a 500 that says nothing of it', () => {
    const e = toFhirError(new TypeError('secret Bcanary value'));
    expect(e.status).toBe(500);
    expect(e.code).toBe('HEARTH_INTERNAL');
    expect(JSON.stringify(e.issues)).not.toContain('Bcanary');
  });
});
