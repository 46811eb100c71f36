import type { FastifyInstance } from 'fastify';
import type { AuditStore } from '../audit/audit-store.ts';
import { auditReport } from '../audit/report.ts';
import { renderReport, reportOptions } from '../audit/report-request.ts';
import { badRequest } from '../fhir/errors.ts';
import { onlyParams } from './route-helpers.ts';

/**
 * GET /fhir/AuditEvent/$report?start=&end=: the periodic report for auditors. Declared as an
 * operation, so the one authorization decision applies (authorizeOperation: unrestricted search on
 * AuditEvent, since the report covers every patient and user) and the audit hook records it.
 */
export function registerReportRoute(app: FastifyInstance, auditStore: AuditStore): void {
  app.get(
    '/AuditEvent/$report',
    { config: { fhir: { type: 'AuditEvent', interaction: 'search-type', operation: '$report' } } },
    async (request, reply) => {
      onlyParams(request, new Set(['start', 'end', 'top', 'burst', 'format', '_format']));
      const query = Object.fromEntries(request.fhirQuery);
      if (request.fhirQuery.length !== Object.keys(query).length) throw badRequest('HEARTH_REPORT_PARAM', 'each parameter may appear only once');
      const { format, options } = reportOptions(query);
      const report = auditReport(auditStore.eventsBetween(options.from.toISOString(), options.to.toISOString()), options);
      const out = renderReport(report, format);
      return reply.code(200).header('content-type', out.type).send(out.body);
    },
  );
}
