import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, BundleLink, FhirResource } from 'fhir/r4.js';
import type { StoredVersion } from './query.ts';
import type { Issue } from './errors.ts';
import { operationOutcome } from './errors.ts';

export type Shape = (v: StoredVersion) => Record<string, unknown>;

export function searchsetBundle(args: {
  baseUrl: string;
  matches: readonly StoredVersion[];
  included: readonly StoredVersion[];
  links: BundleLink[];
  total?: number;
  warnings: readonly Issue[];
  shape: Shape;
  includeShape: Shape;
  now: Date;
  omitEntries: boolean;
}): Bundle {
  const entry: BundleEntry[] = [];
  if (!args.omitEntries) {
    for (const m of args.matches) entry.push(entryOf(args.baseUrl, m, args.shape(m), 'match'));
    for (const i of args.included)
      entry.push(entryOf(args.baseUrl, i, args.includeShape(i), 'include'));
  }
  if (args.warnings.length > 0) {
    // See: https://hl7.org/fhir/R4/search.html#errors (what was ignored, as an outcome entry)
    entry.push({
      resource: operationOutcome(args.warnings as Issue[]) as FhirResource,
      search: { mode: 'outcome' },
    });
  }
  const bundle: Bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: args.now.toISOString() },
    type: 'searchset',
    link: args.links,
  };
  if (args.total !== undefined) bundle.total = args.total;
  if (entry.length > 0) bundle.entry = entry;
  return bundle;
}

function entryOf(
  baseUrl: string,
  v: StoredVersion,
  resource: Record<string, unknown>,
  mode: 'match' | 'include',
): BundleEntry {
  return {
    fullUrl: `${baseUrl}/${v.type}/${v.id}`,
    resource: resource as unknown as FhirResource,
    search: { mode },
  };
}

/** See: https://hl7.org/fhir/R4/http.html#history (deleted versions have a request but no resource) */
export function historyBundle(args: {
  baseUrl: string;
  versions: readonly StoredVersion[];
  links: BundleLink[];
  total?: number;
  shape: Shape;
  now: Date;
}): Bundle {
  const bundle: Bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: args.now.toISOString() },
    type: 'history',
    link: args.links,
  };
  if (args.total !== undefined) bundle.total = args.total;
  const entry = args.versions.map((v): BundleEntry => {
    const e: BundleEntry = {
      fullUrl: `${args.baseUrl}/${v.type}/${v.id}`,
      request: {
        method: v.deleted ? 'DELETE' : v.versionId === 1 ? 'POST' : 'PUT',
        url: v.versionId === 1 && !v.deleted ? v.type : `${v.type}/${v.id}`,
      },
      response: {
        status: v.deleted ? '204' : v.versionId === 1 ? '201' : '200',
        etag: `W/"${v.versionId}"`,
        lastModified: v.lastUpdated,
      },
    };
    if (!v.deleted) e.resource = args.shape(v) as unknown as FhirResource;
    return e;
  });
  if (entry.length > 0) bundle.entry = entry;
  return bundle;
}
