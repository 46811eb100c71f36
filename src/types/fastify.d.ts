import 'fastify';
import type { Access, Principal } from '../auth/authorize.ts';
import type { RouteMeaning } from '../rest/routes.ts';
import type { AuditNotes, EntryTransport } from '../rest/request.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What a FHIR route is: the one hook that decides whether reads this, never the handler. */
    fhir?: RouteMeaning;
  }
  interface FastifyInstance {
    /** every route registered, with its declared FHIR interaction (see app.ts) */
    readonly registeredRoutes: readonly { readonly method: string; readonly url: string; readonly fhir?: FastifyContextConfig['fhir'] }[];
    /** how far the audit log is committed and indexed (the audit indexer's lag) */
    readonly auditProgress: import('../audit/progress.ts').AuditProgress;
  }
  interface FastifyRequest {
    /** Query string as ordered name/value pairs (repeats kept, as FHIR search needs). */
    fhirQuery: [string, string][];
    /** `_format` asked for, normalised to a MIME type. */
    fhirFormat?: string;
    /** `_pretty=true`: the JSON indented */
    fhirPretty: boolean;
    /** Set by the authentication hook on every protected route. */
    principal: Principal;
    /** Set by the authorization decision: what this request may touch. */
    access: Access;
    /** What the handler touched, for the request's AuditEvent. */
    auditNotes: AuditNotes;
    /** Makes this request's write-ahead AuditEvent durable (set by the audit plugin). */
    auditAttempt: () => Promise<void>;
    /** For a batch or transaction: how its entries are audited (set by the audit plugin). */
    entryAudit: EntryTransport | null;
    /** The FHIR issue code of the error response, if any (set by the error handler). */
    auditIssue?: string;
  }
}
