// The FHIR readings of the request headers an interaction honours.
import { FhirError } from '../fhir/errors.ts';

export interface Preferences {
  readonly return: 'minimal' | 'representation' | 'OperationOutcome';
  readonly handling: 'strict' | 'lenient';
}

const badHeader = (diagnostics: string) => new FhirError('HEARTH_BAD_HEADER', { code: 'invalid', diagnostics });

/**
 * See: https://hl7.org/fhir/R4/http.html#ops (Prefer: return) and https://hl7.org/fhir/R4/search.html#errors
 * (Prefer: handling). Unknown preferences are ignored as RFC 7240 says; bad values of known ones are 400.
 */
export function parsePrefer(header: string | string[] | undefined): Preferences {
  let ret: Preferences['return'] = 'representation';
  let handling: Preferences['handling'] = 'strict';
  const raw = Array.isArray(header) ? header.join(',') : (header ?? '');
  for (const part of raw.split(/[,;]/)) {
    const [k, v] = part.split('=').map((s) => s?.trim().replace(/^"|"$/g, ''));
    if (k === 'return') {
      if (v !== 'minimal' && v !== 'representation' && v !== 'OperationOutcome') {
        throw badHeader(
          `Prefer return must be minimal, representation or OperationOutcome, got "${String(v).slice(0, 40)}"`,
        );
      }
      ret = v;
    } else if (k === 'handling') {
      if (v !== 'strict' && v !== 'lenient')
        throw badHeader(`Prefer handling must be strict or lenient, got "${String(v).slice(0, 40)}"`);
      handling = v;
    }
  }
  return { return: ret, handling };
}

/** `W/"3"` or `"3"` → 3. See: https://hl7.org/fhir/R4/http.html#concurrency */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(?:W\/)?"([1-9][0-9]{0,9})"\s*$/.exec(header);
  if (!m) throw badHeader(`If-Match must be an ETag such as W/"1", got "${header.slice(0, 40)}"`);
  return Number(m[1]);
}

/**
 * Conditional read: whether the client's copy (If-None-Match, else If-Modified-Since) is the
 * current one, so that a 304 answers. See: https://hl7.org/fhir/R4/http.html#cread and
 * https://www.rfc-editor.org/rfc/rfc9110#section-13.2.2 (If-None-Match first; an If-Modified-Since
 * that is not an HTTP-date is ignored; ETags compare weakly).
 */
export function notModified(
  ifNoneMatch: string | undefined,
  ifModifiedSince: string | undefined,
  versionId: number,
  lastUpdated: string,
): boolean {
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true;
    return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === `"${versionId}"`);
  }
  if (ifModifiedSince === undefined || !/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(ifModifiedSince.trim())) return false;
  const since = Date.parse(ifModifiedSince);
  // HTTP dates have whole seconds: the version's instant is compared at that precision.
  return !Number.isNaN(since) && Math.floor(Date.parse(lastUpdated) / 1000) * 1000 <= since;
}
