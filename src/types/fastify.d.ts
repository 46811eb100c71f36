import 'fastify';
import type { Access, Principal } from '../auth/authorize.ts';
import type { Interaction } from '../fhir/definitions.ts';
import type { AuditNotes } from '../rest/request.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What a FHIR route is: the one hook that decides whether reads this, never the handler. */
    fhir?: {
      type: string;
      interaction: Interaction | 'capabilities' | 'conditional-update' | 'conditional-delete' | 'patch' | 'method-not-allowed';
      operation?: string;
      /** the methods this URL offers for the type (the Allow header of a 405 or an OPTIONS answer) */
      allow?: string;
    };
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
    /** The FHIR issue code of the error response, if any (set by the error handler). */
    auditIssue?: string;
  }
}
