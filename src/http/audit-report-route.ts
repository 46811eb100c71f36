import type { FastifyInstance } from 'fastify';
import type { AuditStore } from '../audit/audit-store.ts';
import { auditReport, reportHtml, reportMarkdown } from '../audit/report.ts';
import { badRequest } from '../fhir/errors.ts';
import { dateRange } from '../fhir/search-values.ts';
import { onlyParams } from './route-helpers.ts';

const FORMATS = { json: 'application/json', md: 'text/markdown', html: 'text/html' } as const;

export function reportOptions(query: Record<string, string | undefined>) {
  const start = query.start && dateRange(query.start);
  const end = query.end && dateRange(query.end);
  if (!start) throw badRequest('HEARTH_REPORT_PARAM', 'start must be a FHIR date or dateTime, e.g. 2026-01-01');
  if (!end) throw badRequest('HEARTH_REPORT_PARAM', 'end must be a FHIR date or dateTime, e.g. 2026-02-01');
  if (end.lo <= start.lo) throw badRequest('HEARTH_REPORT_PARAM', 'end must come after start');
  const top = query.top === undefined ? 10 : Number(query.top);
  if (!Number.isInteger(top) || top < 1 || top > 1000) throw badRequest('HEARTH_REPORT_PARAM', 'top must be a whole number from 1 to 1000');
  const burst = query.burst === undefined ? 60 : Number(query.burst);
  if (!Number.isInteger(burst) || burst < 2 || burst > 100000) throw badRequest('HEARTH_REPORT_PARAM', 'burst must be a whole number from 2 to 100000');
  const format = (query.format ?? 'json') as keyof typeof FORMATS;
  if (!(format in FORMATS)) throw badRequest('HEARTH_REPORT_PARAM', 'format must be json, md or html');
  return {
    format,
    options: {
      from: new Date(start.lo),
      to: new Date(end.lo),
      top,
      workingHours: { start: 8, end: 18 },
      burstPerMinute: burst,
    },
  };
}

export function renderReport(report: ReturnType<typeof auditReport>, format: keyof typeof FORMATS): { type: string; body: string } {
  const body = format === 'json' ? JSON.stringify(report) : format === 'md' ? reportMarkdown(report) : reportHtml(report);
  return { type: `${FORMATS[format]}; charset=utf-8`, body };
}

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
