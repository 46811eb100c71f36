import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { FhirError, operationOutcome } from '../fhir/errors.ts';
import { sendResource } from './respond.ts';

// Fastify's own errors that are the client's fault, and how each reads as an OperationOutcome.
const FRAMEWORK_ERRORS: Record<string, { status: number; code: FhirError['issues'][number]['code']; text: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'too-long', text: 'request body is larger than the limit' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'not-supported',
    text: 'Content-Type must be application/fhir+json or application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'structure',
    text: 'Content-Length does not match the body',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'structure', text: 'the request body is empty' },
  FST_ERR_CTP_INVALID_TYPE: { status: 415, code: 'not-supported', text: 'Content-Type is malformed' },
};

/** The only place an error becomes an HTTP response. 5xx bodies are generic and carry the request id. */
export function errorHandler(error: FastifyError | FhirError, request: FastifyRequest, reply: FastifyReply): void {
  if (error instanceof FhirError) {
    request.auditIssue = error.issues[0]?.code;
    if (error.status >= 500) logFault(request, error);
    else request.log.info({ code: error.code, status: error.status }, 'request refused');
    reply.headers(error.headers);
    sendResource(request, reply, error.status, operationOutcome(error.status >= 500 ? generic(request) : error.issues));
    return;
  }
  const known = FRAMEWORK_ERRORS[(error as FastifyError).code ?? ''];
  if (known) {
    request.auditIssue = known.code;
    request.log.info({ code: (error as FastifyError).code, status: known.status }, 'request refused');
    sendResource(request, reply, known.status, operationOutcome([{ code: known.code, diagnostics: known.text }]));
    return;
  }
  if ((error as FastifyError).validation) {
    const v = (error as FastifyError).validation?.[0];
    const where = v?.instancePath?.replace(/^\//, '') || v?.params?.missingProperty || 'request';
    request.log.info({ code: 'FST_ERR_VALIDATION', status: 400 }, 'request refused');
    sendResource(
      request,
      reply,
      400,
      operationOutcome([
        {
          code: 'invalid',
          diagnostics: `invalid ${(error as FastifyError).validationContext ?? 'request'} ${where}: ${v?.message ?? 'invalid'}`,
        },
      ]),
    );
    return;
  }
  const status = (error as FastifyError).statusCode;
  if (status && status >= 400 && status < 500) {
    request.log.info({ code: (error as FastifyError).code, status }, 'request refused');
    sendResource(
      request,
      reply,
      status,
      operationOutcome([{ code: 'invalid', diagnostics: 'the request is malformed' }]),
    );
    return;
  }
  logFault(request, error);
  request.auditIssue = 'exception';
  sendResource(request, reply, 500, operationOutcome(generic(request)));
}

function generic(request: FastifyRequest) {
  return [{ code: 'exception' as const, diagnostics: `internal server error; request id ${request.id}` }];
}

function logFault(request: FastifyRequest, error: Error): void {
  // The stack and error class go to the log; messages of unknown errors may quote data, so they stay out.
  const frames = (error.stack ?? '').split('\n').slice(1).join('\n');
  request.log.error({ err: { type: error.name, code: (error as FastifyError).code, frames } }, 'server fault');
}
