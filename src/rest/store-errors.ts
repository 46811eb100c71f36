import { FhirError, notFound, versionConflict } from '../fhir/errors.ts';
import { StoreError, type StoreFailure } from '../store/resource-store.ts';

/** A refusal as a catalogue error: one of ours, or a storage adapter's; undefined for a fault. */
export function knownError(err: unknown): FhirError | undefined {
  if (err instanceof FhirError) return err;
  if (err instanceof StoreError) return fromStoreFailure(err.failure);
  return undefined;
}

/** The one mapping from what a storage adapter reports to the error catalogue. */
export function fromStoreFailure(f: StoreFailure): FhirError {
  switch (f.kind) {
    case 'version-conflict':
      return versionConflict(f.type, f.id, f.ifMatch);
    case 'not-found':
      return notFound(`${f.type}/${f.id} does not exist and this server does not create resources with client-assigned ids`);
    case 'multiple-matches':
      // See: https://hl7.org/fhir/R4/http.html#cond-update (several matches: 412)
      return new FhirError('HEARTH_MULTIPLE_MATCHES', `${f.what} criteria match more than one resource`);
    case 'changed':
      // See: https://hl7.org/fhir/R4/http.html#concurrency (the transaction is not applied; resend it)
      return new FhirError(
        'HEARTH_TRANSACTION_CONFLICT',
        `${f.type}/${f.id} changed while the transaction was being prepared; nothing was written: send it again`,
      );
    case 'too-costly':
      return new FhirError(
        'HEARTH_SEARCH_LIMIT',
        `this search would order or resolve more than ${f.limit} ${f.type} resources in memory: narrow it (a patient, subject, code or date)`,
      );
  }
}
