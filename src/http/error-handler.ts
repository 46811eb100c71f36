import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, FhirError, type IssueCode, operationOutcome, shownToClient } from '../fhir/errors.ts';
import { knownError } from '../rest/store-errors.ts';
import { sendResource } from './respond.ts';

// Fastify's own errors that are the client's fault, as catalogue entries.
const FRAMEWORK_ERRORS: Record<string, { code: ErrorCode; issue?: IssueCode; text: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'HEARTH_BODY_TOO_LARGE', text: 'request body is larger than the limit' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'HEARTH_MEDIA_TYPE', text: 'Content-Type must be application/fhir+json or application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'HEARTH_BAD_REQUEST', issue: 'structure', text: 'Content-Length does not match the body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'HEARTH_BAD_REQUEST', issue: 'structure', text: 'the request body is empty' },
  FST_ERR_CTP_INVALID_TYPE: { code: 'HEARTH_MEDIA_TYPE', text: 'Content-Type is malformed' },
  FST_ERR_BAD_URL: { code: 'HEARTH_BAD_REQUEST', issue: 'structure', text: 'the URL is malformed (an invalid percent-encoding)' },
  FST_ERR_MAX_PARAM_LENGTH: { code: 'HEARTH_URI_TOO_LONG', text: 'a segment of the URL path is longer than 200 characters' },
};

/**
 * The one mapper: whatever was thrown — a catalogue error, a storage adapter's failure, one of
 * Fastify's refusals, or an unknown fault — as a catalogue error. Unknown faults are 500.
 */
export function toFhirError(error: unknown): FhirError {
  const known = knownError(error);
  if (known) return known;
  const e = error as FastifyError;
  const framework = FRAMEWORK_ERRORS[e.code ?? ''];
  if (framework) return new FhirError(framework.code, { code: framework.issue, diagnostics: framework.text });
  if (e.validation) {
    const v = e.validation[0];
    const where = v?.instancePath?.replace(/^\//, '') || v?.params?.missingProperty || 'request';
    return new FhirError('HEARTH_BAD_REQUEST', `invalid ${e.validationContext ?? 'request'} ${where}: ${v?.message ?? 'invalid'}`);
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
    // Fastify's other refusals (a malformed URL, ...) keep the status Fastify chose.
    return Object.assign(new FhirError('HEARTH_BAD_REQUEST', 'the request is malformed'), { status: e.statusCode });
  }
  return new FhirError('HEARTH_INTERNAL', 'internal server error');
}

/** The only place an error becomes an HTTP response. 5xx bodies are generic and carry the request id. */
export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const e = toFhirError(error);
  request.auditIssue = e.issues[0]?.code;
  const shown = shownToClient(e);
  if (!shown) logFault(request, error as Error);
  else request.log[e.status >= 500 ? 'warn' : 'info']({ code: (error as FastifyError).code ?? e.code, status: e.status }, 'request refused');
  reply.headers(e.headers);
  sendResource(request, reply, e.status, operationOutcome(shown ? e.issues : generic(request)));
}

function generic(request: FastifyRequest) {
  return [{ code: 'exception' as const, diagnostics: `internal server error; request id ${request.id}` }];
}

/** A fault in the log, with what else names where it happened (a Bundle entry). */
export function logFault(request: FastifyRequest, error: Error, where: Record<string, string> = {}): void {
  // The stack and error class go to the log; messages of unknown errors may quote data, so they stay out.
  const frames = (error.stack ?? '').split('\n').slice(1).join('\n');
  request.log.error({ err: { type: error.name, code: (error as FastifyError).code, frames }, ...where }, 'server fault');
}
