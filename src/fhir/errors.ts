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
  | 'transient';

export interface Issue {
  code: IssueCode;
  diagnostics: string;
  expression?: string;
  severity?: 'fatal' | 'error' | 'warning' | 'information';
}

/**
 * The one error type of the FHIR layer. `code` is a stable machine-readable name (HEARTH_*),
 * `issues` become the OperationOutcome; the message is shown to clients only below 500.
 */
export class FhirError extends Error {
  readonly status: number;
  readonly code: string;
  readonly issues: Issue[];
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, issues: Issue | Issue[], headers: Record<string, string> = {}) {
    const list = Array.isArray(issues) ? issues : [issues];
    super(list.map((i) => i.diagnostics).join('; '));
    this.name = 'FhirError';
    this.status = status;
    this.code = code;
    this.issues = list;
    this.headers = headers;
  }
}

export const badRequest = (code: string, diagnostics: string, expression?: string, issueCode: IssueCode = 'invalid') =>
  new FhirError(400, code, { code: issueCode, diagnostics, expression });

export const notFound = (diagnostics: string) =>
  new FhirError(404, 'HEARTH_NOT_FOUND', { code: 'not-found', diagnostics });

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
