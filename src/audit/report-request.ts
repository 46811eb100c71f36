import { badRequest } from '../fhir/errors.ts';
import { dateRange } from '../fhir/search-values.ts';
import { type AuditReport, reportHtml, reportMarkdown } from './report.ts';

// The parameters of an audit report and its renderings, shared by GET AuditEvent/$report and
// `hearth audit report`.
const FORMATS = { json: 'application/json', md: 'text/markdown', html: 'text/html' } as const;

/** The report's period, size and format from its parameters; a mistake is a 400 naming the parameter. */
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

export function renderReport(report: AuditReport, format: keyof typeof FORMATS): { type: string; body: string } {
  const body = format === 'json' ? JSON.stringify(report) : format === 'md' ? reportMarkdown(report) : reportHtml(report);
  return { type: `${FORMATS[format]}; charset=utf-8`, body };
}
