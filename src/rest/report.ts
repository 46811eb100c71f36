import { auditReport } from '../audit/report.ts';
import { renderReport, reportOptions } from '../audit/report-request.ts';
import { badRequest } from '../fhir/errors.ts';
import { forbidden } from './repository.ts';
import { onlyParams } from './params.ts';
import type { Interaction } from './request.ts';

const REPORT_PARAMS = new Set(['start', 'end', 'top', 'burst', 'format', '_format']);

/**
 * AuditEvent/$report?start=&end=: the periodic report for auditors, over every event of the
 * period. The decision for it (authorizeOperation) demands unrestricted search on AuditEvent.
 */
export const report: Interaction = async ({ auditStore }, req) => {
  // The report reads the audit store itself: it holds the access it was given to the same rule.
  if (req.access.restriction('AuditEvent', 's') !== null) throw forbidden('$report needs unrestricted search on AuditEvent');
  onlyParams(req, REPORT_PARAMS);
  const query = Object.fromEntries(req.query);
  if (req.query.length !== Object.keys(query).length) throw badRequest('HEARTH_REPORT_PARAM', 'each parameter may appear only once');
  const { format, options } = reportOptions(query);
  const events = auditStore.eventsBetween(options.from.toISOString(), options.to.toISOString());
  const out = renderReport(await auditReport(events, options), format);
  return { status: 200, text: { contentType: out.type, body: out.body } };
};
