import type { Access, Policy } from '../auth/authorize.ts';
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
  /** the interaction when the route does not say it alone (a Bundle: batch or transaction) */
  interaction?: string;
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
  /** for a batch or transaction: how the transport audits each entry */
  readonly entries?: EntryTransport;
}

/** What one Bundle entry did, for its own AuditEvent. */
export interface EntryFacts {
  /** the entry's request id: the Bundle request's id and the entry's index */
  readonly requestId: string;
  readonly interaction: string;
  readonly type?: string;
  readonly status: number;
  readonly issueCode?: string;
  readonly audit: AuditNotes;
  /** the search's query string (GET entries) */
  readonly query?: string;
}

/** AuditEvents handed over ahead of their outcome: `commit` records them (once committed), `discard` drops them. */
export interface StagedRecords {
  commit(): Promise<void>;
  discard(): void;
}

/**
 * How a transport audits the entries of a batch or transaction: each entry leaves its own
 * AuditEvent, linked to the Bundle's. A batch's write entry leaves its write-ahead attempt
 * first; a transaction's entries share the Bundle request's one attempt (rest/bundle.ts).
 */
export interface EntryTransport {
  /** the id of entry `index`'s AuditEvent (and of its write, for recovery) */
  requestId(index: number): string;
  /** a batch entry's write-ahead attempt */
  attempt(facts: EntryFacts): Promise<void>;
  record(facts: EntryFacts): Promise<void>;
  /**
   * Entries' AuditEvents whose outcome waits on a commit: built meanwhile, recorded on `commit`
   * (resolving once committed), dropped on `discard`; one of the two must follow.
   */
  stage(facts: readonly EntryFacts[]): StagedRecords;
  /** an unexpected fault in an entry: logged by the transport, answered with a generic 500 */
  fault(err: unknown, requestId: string): void;
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
  /** the authorization policy: Bundle entries pass the same decision as routes (rest/routes.ts) */
  readonly policy: Policy;
  readonly bundles: { readonly maxEntries: number };
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
