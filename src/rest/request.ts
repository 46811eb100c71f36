import type { Access } from '../auth/authorize.ts';
import type { AuditStore } from '../audit/audit-store.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import type { StoredVersion } from '../fhir/query.ts';
import type { FhirRepository, WriteAhead } from './repository.ts';

// The interaction layer's request and result: what a transport (HTTP today, a Bundle entry
// tomorrow) hands an interaction, and what it gets back. No Fastify here.

export type EntityRole = 'domain' | 'before' | 'after';

/** What an interaction touched, noted for the request's AuditEvent as it goes (refusals keep what came before). */
export interface AuditNotes {
  /** in the order touched; `v` when the version's content is at hand (it names the patients) */
  touched: { reference: string; role: EntityRole; v?: StoredVersion }[];
  query?: string;
}

export function noteVersion(notes: AuditNotes, v: StoredVersion, role: EntityRole = 'domain'): void {
  notes.touched.push({ reference: `${v.type}/${v.id}/_history/${v.versionId}`, role, v });
}

export function noteRef(notes: AuditNotes, reference: string, role: EntityRole): void {
  notes.touched.push({ reference, role });
}

/** The headers an interaction honours. */
export type HeaderName = 'if-match' | 'if-none-exist' | 'if-none-match' | 'if-modified-since' | 'prefer';

export interface RestRequest {
  readonly type: string;
  /** the logical id of an instance-level interaction */
  readonly id?: string;
  /** the version of a vread */
  readonly vid?: string;
  /** the URL's query parameters, in order, repeats kept */
  readonly query: readonly [string, string][];
  /** the FHIR resource in the body; throws the FHIR error for a missing or non-resource body */
  body(): unknown;
  /** search parameters sent as a form body (POST _search); throws for any other body */
  form(): readonly [string, string][];
  /** a header the interaction honours; throws when one that may appear once is repeated */
  header(name: HeaderName): string | undefined;
  /** what the one authorization decision allowed this request */
  readonly access: Access;
  /** filled in as the interaction goes, for its AuditEvent */
  readonly audit: AuditNotes;
  /** for writes: the write-ahead audit the transport provides */
  readonly writeAhead?: WriteAhead;
}

export interface RestResult {
  readonly status: number;
  /** the resource, Bundle or OperationOutcome to send; none for 204 or Prefer: return=minimal */
  readonly resource?: unknown;
  /** a body that is not FHIR (a report in Markdown or HTML) */
  readonly text?: { readonly contentType: string; readonly body: string };
  /** the version the response describes: ETag */
  readonly etag?: number;
  /** Last-Modified, an ISO instant */
  readonly lastModified?: string;
  readonly location?: string;
}

export interface RestContext {
  readonly baseUrl: string;
  readonly model: FhirModel;
  readonly repository: FhirRepository;
  readonly auditStore: AuditStore;
  readonly search: { readonly defaultCount: number; readonly maxCount: number };
  readonly updateCreate: boolean;
  readonly clock: () => Date;
}

export type Interaction = (ctx: RestContext, req: RestRequest) => Promise<RestResult>;

/** ETag and Last-Modified of a version. */
export function versionOf(v: StoredVersion): Pick<RestResult, 'etag' | 'lastModified'> {
  return { etag: v.versionId, lastModified: v.lastUpdated };
}
