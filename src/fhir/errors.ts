import type { OperationOutcome, OperationOutcomeIssue } from 'fhir/r4.js';

// See: https://hl7.org/fhir/R4/valueset-issue-type.html
export type IssueCode =
  | 'invalid'
  | 'structure'
  | 'required'
  | 'value'
  | 'invariant'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'processing'
  | 'not-supported'
  | 'duplicate'
  | 'multiple-matches'
  | 'not-found'
  | 'deleted'
  | 'too-long'
  | 'conflict'
  | 'exception'
  | 'throttled'
  | 'informational'
  | 'incomplete'
  | 'too-costly'
  | 'timeout'
  | 'transient';

export interface Issue {
  code: IssueCode;
  diagnostics: string;
  expression?: string;
  severity?: 'fatal' | 'error' | 'warning' | 'information';
}

/**
 * The error catalogue: every refusal and fault the server answers with, by its stable code — the
 * HTTP status and the OperationOutcome issue type it always has. The diagnostics say which
 * element, parameter or limit.
 * See: https://hl7.org/fhir/R4/operationoutcome.html and https://hl7.org/fhir/R4/http.html
 */
export const ERRORS = {
  HEARTH_BAD_REQUEST: { status: 400, issue: 'invalid' },
  HEARTH_BAD_HEADER: { status: 400, issue: 'invalid' },
  HEARTH_BAD_QUERY: { status: 400, issue: 'invalid' },
  HEARTH_BAD_FORM: { status: 400, issue: 'structure' },
  HEARTH_EMPTY_BODY: { status: 400, issue: 'structure' },
  HEARTH_NO_BODY: { status: 400, issue: 'required' },
  HEARTH_MALFORMED_JSON: { status: 400, issue: 'structure' },
  HEARTH_JSON_TOO_DEEP: { status: 400, issue: 'structure' },
  HEARTH_FORBIDDEN_KEY: { status: 400, issue: 'structure' },
  HEARTH_DUPLICATE_KEY: { status: 400, issue: 'structure' },
  HEARTH_NUMBER_RANGE: { status: 400, issue: 'value' },
  HEARTH_BAD_STRING: { status: 400, issue: 'value' },
  HEARTH_BAD_ENCODING: { status: 400, issue: 'structure' },
  HEARTH_NUMBER_PRECISION: { status: 400, issue: 'value' },
  HEARTH_INVALID_RESOURCE: { status: 400, issue: 'invalid' },
  HEARTH_ID_MISMATCH: { status: 400, issue: 'invalid' },
  HEARTH_UNKNOWN_PARAM: { status: 400, issue: 'invalid' },
  HEARTH_SEARCH_PARAM: { status: 400, issue: 'invalid' },
  HEARTH_SEARCH_LIMIT: { status: 400, issue: 'too-costly' },
  HEARTH_PROTECTED_SEARCH: { status: 400, issue: 'not-supported' },
  HEARTH_NOT_SUPPORTED: { status: 400, issue: 'not-supported' },
  HEARTH_HISTORY_PARAM: { status: 400, issue: 'invalid' },
  HEARTH_REPORT_PARAM: { status: 400, issue: 'invalid' },
  HEARTH_SUBSET: { status: 400, issue: 'invalid' },
  HEARTH_BAD_CRITERIA: { status: 400, issue: 'invalid' },
  HEARTH_NO_CRITERIA: { status: 400, issue: 'invalid' },
  HEARTH_INVALID_TOKEN: { status: 401, issue: 'login' },
  HEARTH_FORBIDDEN: { status: 403, issue: 'forbidden' },
  HEARTH_MASKED_PARAMETER: { status: 403, issue: 'forbidden' },
  HEARTH_NOT_FOUND: { status: 404, issue: 'not-found' },
  HEARTH_NOT_ALLOWED: { status: 405, issue: 'not-supported' },
  HEARTH_NOT_ACCEPTABLE: { status: 406, issue: 'not-supported' },
  HEARTH_GONE: { status: 410, issue: 'deleted' },
  HEARTH_VERSION_CONFLICT: { status: 412, issue: 'conflict' },
  HEARTH_TRANSACTION_CONFLICT: { status: 409, issue: 'conflict' },
  HEARTH_MULTIPLE_MATCHES: { status: 412, issue: 'multiple-matches' },
  HEARTH_BODY_TOO_LARGE: { status: 413, issue: 'too-long' },
  HEARTH_BUNDLE_TOO_LARGE: { status: 413, issue: 'too-long' },
  HEARTH_URI_TOO_LONG: { status: 414, issue: 'too-long' },
  HEARTH_RATE_LIMITED: { status: 429, issue: 'throttled' },
  HEARTH_MEDIA_TYPE: { status: 415, issue: 'not-supported' },
  HEARTH_INTEGRITY: { status: 500, issue: 'security' },
  HEARTH_INTERNAL: { status: 500, issue: 'exception' },
  HEARTH_AUDIT_UNAVAILABLE: { status: 503, issue: 'transient' },
  // A condition, not a fault: its message (which names no data) is shown, with Retry-After.
  HEARTH_AUDIT_INDEX_BEHIND: { status: 503, issue: 'transient', shown: true },
} as const satisfies Record<string, { status: number; issue: IssueCode; shown?: true }>;

/** Whether the message of an error is shown to the client: always below 500, and for the 5xx conditions marked so. */
export const shownToClient = (e: FhirError): boolean => e.status < 500 || 'shown' in ERRORS[e.code];

export type ErrorCode = keyof typeof ERRORS;

/** An issue of an error; its type defaults to the catalogue's for the error's code. */
export type IssueInput = Omit<Issue, 'code'> & { code?: IssueCode };

/**
 * The one error type of every layer: a catalogue entry (`code`, which fixes the status) with
 * issues that become the OperationOutcome; the message is shown to clients only below 500.
 */
export class FhirError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  readonly issues: Issue[];
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, issues: string | IssueInput | IssueInput[], headers: Record<string, string> = {}) {
    const entry = ERRORS[code];
    const list = (typeof issues === 'string' ? [{ diagnostics: issues }] : Array.isArray(issues) ? issues : [issues]).map(
      (i): Issue => ({ ...i, code: i.code ?? entry.issue }),
    );
    super(list.map((i) => i.diagnostics).join('; '));
    this.name = 'FhirError';
    this.status = entry.status;
    this.code = code;
    this.issues = list;
    this.headers = headers;
  }
}

export const badRequest = (code: ErrorCode, diagnostics: string, expression?: string, issueCode?: IssueCode) =>
  new FhirError(code, { code: issueCode, diagnostics, expression });

export const notFound = (diagnostics: string) => new FhirError('HEARTH_NOT_FOUND', diagnostics);

/** See: https://hl7.org/fhir/R4/http.html#concurrency (412 when If-Match names another version) */
export const versionConflict = (type: string, id: string, ifMatch: number) =>
  new FhirError('HEARTH_VERSION_CONFLICT', `If-Match version ${ifMatch} is not the current version of ${type}/${id}`);

export function operationOutcome(issues: Issue[]): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: issues.map((i): OperationOutcomeIssue => {
      const issue: OperationOutcomeIssue = {
        severity: i.severity ?? 'error',
        code: i.code,
        diagnostics: i.diagnostics,
      };
      if (i.expression) issue.expression = [i.expression];
      return issue;
    }),
  };
}
